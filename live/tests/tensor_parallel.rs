//! Tensor-parallel pods in live mode: a pod asking for `nvidia.com/gpu: N` (N > 1) is one
//! replica of N whole GPUs of one node. The controller binds it to a node with N free GPUs,
//! writes all N indices, and a view rebuilt from the annotations (a controller restart) holds
//! all N GPUs exactly as the engine's own bookkeeping does.

use gpusched_live::apply::{placement_annotations, Scope};
use gpusched_live::controller::Controller;
use gpusched_live::dryrun::DryRunApplier;
use gpusched_live::keys;
use gpusched_live::testutil::{gpu_node, gpusched_pod, pending_pod};
use gpusched_live::view::{build_view, ViewOptions};
use gpusched_policies::decision::{Decision, Placement};
use gpusched_policies::view::{AllocationView, SharingMode};
use gpusched_policies::{EngineConfig, GpuCatalog, GpuModel};
use k8s_openapi::api::core::v1::{Node, Pod, PodStatus, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

const NOW: f64 = 1_000.0;

/// A pending pod asking for `gpus` whole GPUs for a model of `memory_gb` in all.
fn tp_pod(name: &str, memory_gb: f64, gpus: u32) -> Pod {
    let mut p = pending_pod("ml", name, memory_gb);
    p.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(keys::WORKLOAD.into(), "llama-70b".into());
    p.spec.as_mut().unwrap().containers[0].resources = Some(ResourceRequirements {
        limits: Some([(keys::GPU_RESOURCE.to_string(), Quantity(gpus.to_string()))].into()),
        ..Default::default()
    });
    p
}

/// h100-1: 8 GPUs, 7 held by exclusive gpusched pods (one free); a100-1: one GPU;
/// h100-2: 4 GPUs, GPU 1 held (three free). Only h100-2 can take a TP2 replica.
fn cluster() -> (Vec<Node>, Vec<Pod>) {
    let mut nodes = vec![
        gpu_node("a100-1", "NVIDIA-A100-SXM4-80GB", 1),
        gpu_node("h100-1", "NVIDIA-H100-80GB-HBM3", 8),
        gpu_node("h100-2", "NVIDIA-H100-80GB-HBM3", 4),
    ];
    // The exclusive pods run under the plugin's exclusive config (no relabel needed).
    for n in &mut nodes {
        n.metadata.labels.as_mut().unwrap().insert(
            keys::DEVICE_PLUGIN_CONFIG.into(),
            "gpusched-exclusive".into(),
        );
    }
    let mut pods: Vec<Pod> = (0..7u8)
        .map(|g| {
            let name = format!("big-{g}");
            gpusched_pod(
                "ml",
                &name,
                "big",
                "h100-1",
                g,
                100 + g as u64,
                100,
                40.0,
                "large",
            )
        })
        .collect();
    pods.push(gpusched_pod(
        "ml", "other", "big", "h100-2", 1, 200, 100, 40.0, "large",
    ));
    (nodes, pods)
}

fn plugin_config() -> k8s_openapi::api::core::v1::ConfigMap {
    k8s_openapi::api::core::v1::ConfigMap {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("device-plugin-config".into()),
            namespace: Some("nvidia-device-plugin".into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn controller(nodes: usize) -> Controller<DryRunApplier> {
    let scope = Scope::new(
        ["ml".to_string()],
        "nvidia-device-plugin",
        "device-plugin-config",
    )
    .unwrap();
    let applier = DryRunApplier::new(scope.clone(), Box::new(std::io::sink()));
    Controller::new(
        EngineConfig::default(),
        GpuCatalog::default(),
        nodes as u32,
        scope,
        applier,
        None,
    )
    .unwrap()
}

fn reconcile(ctl: &mut Controller<DryRunApplier>, nodes: &[Node], pods: &[Pod]) -> Vec<Decision> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(ctl.reconcile(nodes, pods, Some(&plugin_config()), NOW));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    report.decisions
}

/// The pod as the API server holds it once bound: gpusched's annotations, the node, running.
fn bound(mut pod: Pod, p: &Placement, memory_per_gpu_gb: f64) -> Pod {
    let a = pod.metadata.annotations.get_or_insert_default();
    for (k, v) in placement_annotations(p, GpuModel::H100_80GB, memory_per_gpu_gb, 80.0) {
        if let Some(v) = v {
            a.insert(k, v);
        }
    }
    pod.spec.as_mut().unwrap().node_name = Some(p.node.clone());
    pod.status = Some(PodStatus {
        phase: Some("Running".into()),
        ..Default::default()
    });
    pod
}

#[test]
fn a_pod_asking_for_two_gpus_is_bound_to_a_node_with_two_free_and_round_trips() {
    let (nodes, mut pods) = cluster();
    let pending = tp_pod("llama-0", 140.0, 2);
    pods.push(pending.clone());
    let mut ctl = controller(nodes.len());
    let decisions = reconcile(&mut ctl, &nodes, &pods);
    let [Decision::Place(p)] = decisions.as_slice() else {
        panic!("one placement expected: {decisions:?}")
    };
    assert_eq!(p.node, "h100-2");
    assert_eq!(
        p.gpus,
        vec![0, 2],
        "two free whole GPUs of h100-2, GPU 1 is taken"
    );
    {
        let printed = ctl.applier.printed.lock().unwrap();
        let all = printed.join("\n");
        assert!(all.contains("/binding"), "{all}");
        assert!(
            all.contains(keys::GPU_INDICES) && all.contains("0,2"),
            "{all}"
        );
        assert!(
            !all.contains("/eviction"),
            "nothing running is disturbed: {all}"
        );
    }

    // Restart: the view rebuilt from the annotations holds both GPUs, as the engine's own
    // bookkeeping does after applying the placement.
    pods.pop();
    pods.push(bound(pending, p, 70.0));
    let view = build_view(&nodes, &pods, &ViewOptions::default(), NOW);
    assert!(view.notes.is_empty(), "{:?}", view.notes);
    let h2 = view.nodes.iter().find(|n| n.name == "h100-2").unwrap();
    assert_eq!(h2.gpus_of(p.replica), vec![0, 2]);
    for g in [0usize, 2] {
        let gv = &h2.gpus[g];
        assert_eq!(gv.mode, SharingMode::Exclusive);
        assert_eq!(gv.memory_allocated_gb, 70.0, "140 GB over TP2");
        assert_eq!(gv.share_allocated_pct, 100);
        let a: &AllocationView = &gv.allocations[0];
        assert_eq!((a.replica, a.workload.as_str()), (p.replica, "llama-70b"));
    }
    assert!(h2.gpus[3].is_free());

    // The restarted controller sees no room for another TP2 replica (h100-2 has one free GPU,
    // h100-1 one, a100-1 one: never split across nodes) and says why.
    pods.push(tp_pod("llama-1", 140.0, 2));
    let mut ctl = controller(nodes.len());
    let decisions = reconcile(&mut ctl, &nodes, &pods);
    let [Decision::Unschedulable { reason, .. }] = decisions.as_slice() else {
        panic!("{decisions:?}")
    };
    assert!(reason.contains("tensor_parallel = 2"), "{reason}");
    assert!(!ctl
        .applier
        .printed
        .lock()
        .unwrap()
        .join("\n")
        .contains("/binding"));
}

#[test]
fn bad_gpu_indices_annotations_are_noted_not_trusted() {
    let (nodes, _) = cluster();
    let mut p = gpusched_pod("ml", "x", "w", "h100-2", 0, 1, 100, 40.0, "large");
    p.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(keys::GPU_INDICES.into(), "1,0".into());
    let view = build_view(&nodes, &[p], &ViewOptions::default(), NOW);
    assert!(
        view.notes.iter().any(|n| n.contains(keys::GPU_INDICES)),
        "{:?}",
        view.notes
    );
}

#[test]
fn a_tp_pods_gpu_share_counts_all_its_gpus() {
    let mut node = gpu_node("h100-2", "NVIDIA-H100-80GB-HBM3", 4);
    node.metadata.annotations = Some(
        [(
            keys::GPU_METRICS.to_string(),
            r#"{"t":1000,"gpus":[{"i":0,"util":0.8,"mem_used_mib":1,"mem_total_mib":81559,"power_w":500},{"i":1,"util":0.1,"mem_used_mib":1,"mem_total_mib":81559,"power_w":100},{"i":2,"util":0.6,"mem_used_mib":1,"mem_total_mib":81559,"power_w":400}]}"#
                .to_string(),
        )]
        .into(),
    );
    let mut pod = gpusched_pod("ml", "llama-0", "llama", "h100-2", 0, 1, 100, 70.0, "large");
    pod.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(keys::GPU_INDICES.into(), "0,2".into());
    let share =
        gpusched_live::signals::gpu_share(&pod, &[node], &[pod.clone()], NOW, 120.0).unwrap();
    assert_eq!(share.gpus, 2);
    assert!(
        (share.util.unwrap() - 0.7).abs() < 1e-12,
        "mean of GPUs 0 and 2"
    );
    assert_eq!(share.power_w, Some(900.0), "sum of GPUs 0 and 2");
}
