//! Live rollouts driven by the engine crate's rollout state machine
//! (`gpusched_policies::rollout::machine`), carried out by `gpusched_live::rollout_exec` with
//! real kube clients against the fake API server: every strategy converges, a canary that fails
//! its watch is rolled back (and the other nodes are never touched), a QPS window over the
//! gate's limit holds the rollout before anything changes.

mod support;

use gpusched_live::apply::KubeApplier;
use gpusched_live::keys;
use gpusched_live::rollback::{self, Rollout, RolloutOutcome, RolloutTiming};
use gpusched_live::rollout_exec::{self, Observer};
use gpusched_live::testutil::{gpu_node, gpusched_pod};
use gpusched_policies::rollout::machine::{Command, GateSample, MachineConfig};
use gpusched_policies::rollout::{
    CircuitBreaker, GateConfig, Strategy, StrategyConfig, UpdateClass,
};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use std::sync::Mutex;
use std::time::Duration;
use support::apiserver::FakeApiServer;
use support::scope;

const NODES: usize = 4;
const FROM: &str = "gpusched-mps-2";
const TO: &str = "gpusched-timeslicing-4";
const TS4: &str = "version: v1\nsharing:\n  timeSlicing:\n    renameByDefault: false\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 4\n";

fn node_name(i: usize) -> String {
    format!("a100-{}", i + 1)
}

fn plugin_configmap() -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some("device-plugin-config".into()),
            namespace: Some("nvidia-device-plugin".into()),
            ..Default::default()
        },
        data: Some([("default".to_string(), "version: v1\n".to_string())].into()),
        ..Default::default()
    }
}

/// Four one-GPU nodes on the 2-replica MPS config, one gpusched pod each; their plugin already
/// advertises what the 4-replica time-slicing config serves (so waiting for it returns).
async fn cluster() -> (FakeApiServer, Vec<Rollout>) {
    let api = FakeApiServer::start().await;
    api.apply(&plugin_configmap());
    let cm = plugin_configmap();
    let mut rollouts = Vec::new();
    for i in 0..NODES {
        let mut n = gpu_node(&node_name(i), "NVIDIA-A100-SXM4-40GB", 1);
        n.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(keys::DEVICE_PLUGIN_CONFIG.into(), FROM.into());
        n.status.as_mut().unwrap().capacity =
            Some([(keys::GPU_RESOURCE.to_string(), Quantity("4".into()))].into());
        let pod: Pod = gpusched_pod(
            "ml",
            &format!("chat-{i}"),
            "chat",
            &node_name(i),
            0,
            i as u64,
            50,
            8.0,
            "medium",
        );
        api.apply(&n);
        api.apply(&pod);
        rollouts.push(
            rollback::plan_rollout(&n, Some(&cm), Some(TO), Some(TS4), &[pod], &scope(), 1000.0)
                .unwrap()
                .unwrap(),
        );
    }
    (api, rollouts)
}

/// Scripted readings: one gate sample for every `CheckGate`, one health answer per watch.
struct Scripted {
    qps: f64,
    health: (f64, f64),
    watches: Mutex<Vec<f64>>,
}

impl Observer for Scripted {
    async fn gate_sample(&self) -> GateSample {
        GateSample {
            now_s: 3.0 * 3600.0,
            samples: (0..15)
                .map(|k| (3.0 * 3600.0 - 60.0 * (14 - k) as f64, self.qps))
                .collect(),
            error_rate: 0.0,
            gpu_util: 0.2,
            free_capacity: 0.8,
        }
    }
    async fn watch(&self, seconds: f64) -> Result<(f64, f64), String> {
        self.watches.lock().unwrap().push(seconds);
        Ok(self.health)
    }
}

fn observer(qps: f64, health: (f64, f64)) -> Scripted {
    Scripted {
        qps,
        health,
        watches: Mutex::new(Vec::new()),
    }
}

fn timing() -> RolloutTiming {
    RolloutTiming {
        evict_retries: 0,
        retry_delay: Duration::from_millis(10),
        plugin_timeout: Duration::from_secs(2),
        poll: Duration::from_millis(20),
    }
}

fn config(strategy: Strategy) -> MachineConfig {
    MachineConfig {
        strategy,
        strategy_cfg: StrategyConfig {
            canary_fraction: 0.25,
            canary_watch_s: 60.0,
            step_watch_s: 30.0,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn label_of(api: &FakeApiServer, node: &str) -> Option<String> {
    api.get("nodes", "", node).unwrap()["metadata"]["labels"][keys::DEVICE_PLUGIN_CONFIG]
        .as_str()
        .map(str::to_string)
}

fn patched(api: &FakeApiServer, node: &str) -> usize {
    let path = format!("/api/v1/nodes/{node}");
    api.requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path == path)
        .count()
}

fn is_clean(api: &FakeApiServer, node: &str) -> bool {
    let n = api.get("nodes", "", node).unwrap();
    n["spec"]["unschedulable"] != Value::Bool(true)
        && n["metadata"]["annotations"]
            .get(keys::ROLLOUT_IN_PROGRESS)
            .is_none()
}

async fn run(
    api: &FakeApiServer,
    rollouts: &[Rollout],
    cfg: MachineConfig,
    obs: &Scripted,
) -> rollout_exec::Run {
    let ap = KubeApplier {
        client: api.client(),
        scope: scope(),
    };
    let mut breaker = CircuitBreaker::default();
    rollout_exec::run(
        &ap,
        &scope(),
        &mut breaker,
        cfg,
        rollouts,
        &timing(),
        obs,
        1000.0,
    )
    .await
}

#[tokio::test]
async fn every_strategy_converges_on_every_node() {
    for strategy in [
        Strategy::InPlace,
        Strategy::Rolling,
        Strategy::Prewarm,
        Strategy::BlueGreen,
        Strategy::Canary,
    ] {
        let (api, rollouts) = cluster().await;
        let obs = observer(0.0, (0.0, 100.0));
        let out = run(&api, &rollouts, config(strategy), &obs).await;
        assert_eq!(out.outcome, RolloutOutcome::Done, "{strategy:?}");
        for i in 0..NODES {
            assert_eq!(
                label_of(&api, &node_name(i)).as_deref(),
                Some(TO),
                "{strategy:?}"
            );
            assert!(is_clean(&api, &node_name(i)), "{strategy:?}");
        }
        let evictions = api
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/eviction"))
            .count();
        let drains = if strategy == Strategy::InPlace {
            0
        } else {
            NODES
        };
        assert_eq!(evictions, drains, "{strategy:?}");
        let watches = obs.watches.lock().unwrap().clone();
        match strategy {
            Strategy::Canary => assert_eq!(watches, [60.0]),
            // Between green's traffic steps (10 → 50 → 100 %), as the simulator watches them.
            Strategy::BlueGreen => assert_eq!(watches, [30.0, 30.0]),
            _ => assert!(watches.is_empty(), "{strategy:?}: {watches:?}"),
        }
    }
}

#[tokio::test]
async fn a_canary_that_fails_its_watch_is_rolled_back_and_nothing_else_changes() {
    let (api, rollouts) = cluster().await;
    let obs = observer(0.0, (0.2, 100.0));
    let out = run(&api, &rollouts, config(Strategy::Canary), &obs).await;
    let RolloutOutcome::RolledBack {
        error,
        rollback_errors,
    } = &out.outcome
    else {
        panic!("{:?}", out.outcome)
    };
    assert!(error.contains("canary watch"), "{error}");
    assert!(rollback_errors.is_empty(), "{rollback_errors:?}");
    // The canary (one node of four) is back on its old config, uncordoned, unmarked.
    assert_eq!(label_of(&api, "a100-1").as_deref(), Some(FROM));
    assert!(is_clean(&api, "a100-1"));
    for i in 1..NODES {
        assert_eq!(
            patched(&api, &node_name(i)),
            0,
            "{} untouched",
            node_name(i)
        );
    }
    // The rollback is the machine's own batch: the canary drained again, its old label applied.
    assert!(out.commands.iter().any(|c| matches!(
        c,
        Command::ApplyConfig { targets, rollback: true, .. }
            if targets.len() == 1
                && targets[0].node == "a100-1"
                && targets[0].to_label.as_deref() == Some(FROM)
    )));
    // The entry written for the rollout is removed again.
    let cm = api
        .get("configmaps", "nvidia-device-plugin", "device-plugin-config")
        .unwrap();
    assert!(cm["data"].get(TO).is_none(), "{cm}");
}

#[tokio::test]
async fn a_qps_window_over_the_gate_holds_the_rollout_before_any_change() {
    let (api, rollouts) = cluster().await;
    let gated = |strategy| MachineConfig {
        gate: Some((GateConfig::default(), UpdateClass::Emergency)),
        ..config(strategy)
    };
    let before = api.requests().len();
    // 250 QPS over the last 15 minutes: above the no-update level (200).
    let obs = observer(250.0, (0.0, 100.0));
    let out = run(&api, &rollouts, gated(Strategy::Rolling), &obs).await;
    let RolloutOutcome::Held {
        reason,
        failed_checks,
    } = &out.outcome
    else {
        panic!("{:?}", out.outcome)
    };
    assert!(
        failed_checks.contains(&"qps_no_update".to_string()),
        "{reason}"
    );
    assert_eq!(api.requests().len(), before, "a held rollout sends nothing");
    for i in 0..NODES {
        assert_eq!(label_of(&api, &node_name(i)).as_deref(), Some(FROM));
    }
    // Quiet traffic: the same rollout goes through, the gate asked before every batch.
    let obs = observer(5.0, (0.0, 100.0));
    let out = run(&api, &rollouts, gated(Strategy::Rolling), &obs).await;
    assert_eq!(out.outcome, RolloutOutcome::Done);
    let gates = out
        .commands
        .iter()
        .filter(|c| matches!(c, Command::CheckGate))
        .count();
    assert_eq!(
        gates, NODES,
        "one gate check per batch: 10 % of four nodes is one a batch"
    );
}
