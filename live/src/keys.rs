//! The label and annotation keys live mode reads and writes, in one place so that the view
//! builder, the applier and the snapshot agree on them.

// Written by NVIDIA's GPU Feature Discovery (GFD) / the GPU Operator; read by gpusched.
pub const GPU_PRODUCT: &str = "nvidia.com/gpu.product";
pub const GPU_COUNT: &str = "nvidia.com/gpu.count";
pub const GPU_MEMORY_MIB: &str = "nvidia.com/gpu.memory";
pub const GPU_REPLICAS: &str = "nvidia.com/gpu.replicas";
/// The resource name the device plugin advertises.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// The node label the device plugin reads to pick its config entry from the ConfigMap.
pub const DEVICE_PLUGIN_CONFIG: &str = "nvidia.com/device-plugin.config";

/// Optional node label: the pool a node belongs to (default: its GPU model).
pub const POOL: &str = "gpusched.io/pool";
/// Node annotation the agent publishes: a compact JSON [`crate::nvml::NodeSummary`].
pub const GPU_METRICS: &str = "gpusched.io/gpu-metrics";
/// Node annotation recording the sharing config in force before gpusched changed it (JSON
/// [`crate::rollback::RollbackRecord`]), so any replica of the controller can roll back.
pub const ROLLBACK: &str = "gpusched.io/rollback";
/// Node annotation present while a rollout on the node is under way (its start time). Found by a
/// leader at the start of a reconcile it can only be left by a replica that stopped mid-change:
/// the leader rolls the node back with the recorded values.
pub const ROLLOUT_IN_PROGRESS: &str = "gpusched.io/rollout-in-progress";

/// The scheduler name pods opt in with (`spec.schedulerName`).
pub const SCHEDULER_NAME: &str = "gpusched";

// Pod annotations a user sets to describe the workload (inputs to the engine's PreFilter).
pub const WORKLOAD: &str = "gpusched.io/workload";
pub const MODEL_MEMORY_GB: &str = "gpusched.io/model-memory-gb";
pub const PRIORITY: &str = "gpusched.io/priority";
pub const LATENCY_SLA_MS: &str = "gpusched.io/latency-sla-ms";
pub const KIND: &str = "gpusched.io/kind";
pub const REQUIRED_GPU_MODELS: &str = "gpusched.io/required-gpu-models";
/// Input: override of the class's share. Output (after binding): the share granted.
pub const SHARE_PCT: &str = "gpusched.io/share-pct";
/// Optional: mean request time on an exclusive H100, ms (used by `live snapshot`).
pub const SERVICE_TIME_MS: &str = "gpusched.io/service-time-ms";

// Pod annotations the controller writes when it binds (the cluster view is rebuilt from them).
pub const GPU_INDEX: &str = "gpusched.io/gpu-index";
/// Every GPU index of a tensor-parallel pod (`nvidia.com/gpu: N`, N > 1), comma-separated and
/// ascending (`0,1,2,3`); `gpu-index` keeps the first, so single-GPU pods are written as before.
pub const GPU_INDICES: &str = "gpusched.io/gpu-indices";
pub const REPLICA: &str = "gpusched.io/replica";
pub const CLASS: &str = "gpusched.io/class";
pub const MEMORY_GB: &str = "gpusched.io/memory-gb";
/// The MIG instance a pod holds (`<profile>@<start>`, e.g. `3g.40gb@4`) and its GPU's whole
/// layout when it was bound (comma-separated, the same form): a MIG placement survives a restart.
/// (Owned by the MIG mode, `gpusched_policies::modes::mig`.)
pub const MIG_INSTANCE: &str = gpusched_policies::modes::mig::INSTANCE_ANNOTATION;
pub const MIG_LAYOUT: &str = gpusched_policies::modes::mig::LAYOUT_ANNOTATION;
/// Node annotation prefix: `gpusched.io/mig-layout.<gpu>` records GPU `<gpu>`'s MIG layout (the
/// same form as [`MIG_LAYOUT`]) from the binding that configured it until a placement that is not
/// a MIG instance takes the free GPU, so a MIG GPU whose pods have all left keeps its layout (as
/// the simulator's cluster state does). One key per GPU, so concurrent bindings on one node each
/// merge-patch their own GPU's key.
pub const NODE_MIG_LAYOUT_PREFIX: &str = "gpusched.io/mig-layout.";
/// A time-sliced pod's weight (seed 004's fairness) and its GPU's time-slicing replicas (owned by
/// the time-slicing mode, `gpusched_policies::modes::time_slicing`).
pub const TIME_SLICE_WEIGHT: &str = gpusched_policies::modes::time_slicing::WEIGHT_ANNOTATION;
pub const TIME_SLICE_REPLICAS: &str = gpusched_policies::modes::time_slicing::REPLICAS_ANNOTATION;
/// Per-client MPS limits, read by the pod's own env through the downward API
/// (`valueFrom.fieldRef: metadata.annotations['…']`), resolved by the kubelet at container start.
pub const MPS_ACTIVE_THREAD_PCT: &str = "gpusched.io/mps-active-thread-percentage";
pub const MPS_PINNED_MEM_LIMIT: &str = "gpusched.io/mps-pinned-device-mem-limit";

/// The namespace gpusched never reads pods from for scheduling and never writes to.
pub const KUBE_SYSTEM: &str = "kube-system";

// Autoscaling (issue 7): Deployments opt in, and say their bounds and (optionally) their policy.
/// Deployment label: `"true"` opts the Deployment in to gpusched's autoscaler (`"false"` or
/// absent: left alone). A label rather than an annotation so it can be listed with a selector
/// (`kubectl get deploy -l gpusched.io/autoscale=true`).
pub const AUTOSCALE: &str = "gpusched.io/autoscale";
/// Deployment annotation: the fewest replicas the autoscaler may leave (default 1).
pub const MIN_REPLICAS: &str = "gpusched.io/min-replicas";
/// Deployment annotation: the most replicas the autoscaler may create (required).
pub const MAX_REPLICAS: &str = "gpusched.io/max-replicas";
/// Deployment annotation: `seeds`, `hpa` or `none`, overriding the controller-wide policy.
pub const AUTOSCALER: &str = "gpusched.io/autoscaler";
/// Pod annotations naming where the serving process exposes Prometheus metrics. gpusched's own
/// keys win over the conventional `prometheus.io/*` ones.
pub const METRICS_PORT: &str = "gpusched.io/metrics-port";
pub const METRICS_PATH: &str = "gpusched.io/metrics-path";
pub const PROMETHEUS_PORT: &str = "prometheus.io/port";
pub const PROMETHEUS_PATH: &str = "prometheus.io/path";
