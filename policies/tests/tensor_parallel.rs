//! Tensor-parallel replicas (`WorkloadSpec::gpus = N`): N whole GPUs of one node, under every
//! placement policy; refused with the reason where no node has N free GPUs, and under sharing
//! modes that slice one GPU.

use gpusched_policies::admission::SharingPolicy;
use gpusched_policies::config::PolicyName;
use gpusched_policies::decision::Placement;
use gpusched_policies::view::{AllocSlice, AllocationView, NodeView, SharingMode};
use gpusched_policies::workload::SizeClass;
use gpusched_policies::{Decision, Engine, EngineConfig, GpuCatalog, GpuModel, WorkloadSpec};

fn node(name: &str, ordinal: u32, model: GpuModel, gpus: u8) -> NodeView {
    let mem = GpuCatalog::default().spec(model).memory_gb;
    NodeView::new(name, ordinal, model.as_str(), model, gpus, mem)
}

/// Occupies GPU `g` of `n` with an exclusive single-GPU replica.
fn occupy(n: &mut NodeView, g: u8, replica: u64, priority_class: i32) {
    let mem = n.gpus[g as usize].memory_total_gb;
    n.gpus[g as usize].add_allocation(
        AllocationView {
            workload: "other".into(),
            replica,
            class: SizeClass::Large,
            share_pct: 100,
            memory_gb: mem,
            slice: AllocSlice::Whole,
            priority_class,
        },
        SharingMode::Exclusive,
    );
}

fn engine(policy: PolicyName, sharing: SharingPolicy, nodes: usize) -> Engine {
    let cfg = EngineConfig {
        policy,
        sharing,
        ..EngineConfig::default()
    };
    Engine::new(cfg, GpuCatalog::default(), nodes as u32).unwrap()
}

fn tp(name: &str, memory_gb: f64, gpus: u32) -> WorkloadSpec {
    let mut w = WorkloadSpec::new(name, memory_gb);
    w.gpus = gpus;
    w
}

fn placed(d: Decision) -> Placement {
    match d {
        Decision::Place(p) => p,
        other => panic!("expected a placement, got {other:?}"),
    }
}

/// A cluster where only one node has room for a TP2 replica: an 8-GPU node with 7 busy, a
/// 1-GPU node, a 4-GPU node with GPUs 1 and 3 free, and a 2-GPU node with one busy.
fn mixed_cluster() -> Vec<NodeView> {
    let mut a = node("big-1", 0, GpuModel::H100_80GB, 8);
    for g in 0..7 {
        occupy(&mut a, g, 100 + g as u64, 500);
    }
    let b = node("one-1", 1, GpuModel::A100_80GB, 1);
    let mut c = node("four-1", 2, GpuModel::H100_80GB, 4);
    occupy(&mut c, 0, 200, 500);
    occupy(&mut c, 2, 201, 500);
    let mut d = node("two-1", 3, GpuModel::A100_80GB, 2);
    occupy(&mut d, 1, 300, 500);
    vec![a, b, c, d]
}

#[test]
fn tp2_takes_two_whole_gpus_of_the_one_node_with_room_under_every_policy() {
    for policy in PolicyName::ALL {
        let nodes = mixed_cluster();
        let mut e = engine(policy, SharingPolicy::Classes, nodes.len());
        let p = placed(e.place(&nodes, &tp("llama-70b", 140.0, 2), 1, true));
        assert_eq!(p.node, "four-1", "{policy:?}");
        assert_eq!(p.gpus, vec![1, 3], "{policy:?}");
        assert_eq!(p.gpu, 1);
        assert_eq!(p.slice, AllocSlice::Whole);
        assert_eq!(p.sharing, SharingMode::Exclusive);
        assert!(p.reason.contains("GPUs 1,3"), "{}", p.reason);
        let line = serde_json::to_string(&Decision::Place(p)).unwrap();
        assert!(line.contains(r#""gpus":[1,3]"#), "{line}");
    }
}

#[test]
fn tp4_on_eight_gpu_nodes_under_every_policy_and_gpu_selection() {
    use gpusched_policies::plugins::fit::GpuSelection;
    for policy in PolicyName::ALL {
        for sel in [
            GpuSelection::BestFit,
            GpuSelection::FirstFit,
            GpuSelection::WorstFit,
        ] {
            let mut a = node("h100-1", 0, GpuModel::H100_80GB, 8);
            for g in [0, 2, 4, 6, 7] {
                occupy(&mut a, g, 10 + g as u64, 500);
            }
            let mut b = node("h100-2", 1, GpuModel::H100_80GB, 8);
            occupy(&mut b, 5, 30, 500);
            let nodes = vec![a, b];
            let cfg = EngineConfig {
                policy,
                gpu_selection: sel,
                ..EngineConfig::default()
            };
            let mut e = Engine::new(cfg, GpuCatalog::default(), 2).unwrap();
            let p = placed(e.place(&nodes, &tp("big", 200.0, 4), 1, false));
            assert_eq!(
                p.node, "h100-2",
                "{policy:?} {sel:?}: only h100-2 has 4 free"
            );
            assert_eq!(p.gpus.len(), 4);
            assert!(
                p.gpus.windows(2).all(|w| w[0] < w[1]),
                "sorted: {:?}",
                p.gpus
            );
            assert!(!p.gpus.contains(&5), "GPU 5 is busy: {:?}", p.gpus);
            assert_eq!(p.gpu, p.gpus[0]);
        }
    }
}

#[test]
fn no_node_with_enough_free_gpus_is_unschedulable_with_the_reason_never_split() {
    // Two free GPUs in the cluster, but on different nodes.
    let mut a = node("a-1", 0, GpuModel::H100_80GB, 2);
    occupy(&mut a, 0, 10, 1000);
    let mut b = node("b-1", 1, GpuModel::H100_80GB, 2);
    occupy(&mut b, 1, 11, 1000);
    let nodes = vec![a, b];
    for policy in PolicyName::ALL {
        let mut e = engine(policy, SharingPolicy::Classes, 2);
        match e.place(&nodes, &tp("llm", 100.0, 2), 1, false) {
            Decision::Unschedulable { reason, .. } => {
                assert!(reason.contains("tensor_parallel = 2"), "{reason}");
                assert!(reason.contains("1 of the node's 2 GPUs"), "{reason}");
            }
            other => panic!("{policy:?}: {other:?}"),
        }
    }
    // A node with too few GPUs at all says so too.
    let one = vec![node("one-1", 0, GpuModel::A100_80GB, 1)];
    let mut e = engine(PolicyName::Seeds, SharingPolicy::Classes, 1);
    let d = e.place(&one, &tp("llm", 60.0, 2), 1, true);
    let Decision::Unschedulable { reason, matrix, .. } = d else {
        panic!("{d:?}")
    };
    assert!(
        reason.contains("0 of the node's 1 GPUs") || reason.contains("1 of the node's 1 GPUs"),
        "{reason}"
    );
    let row = &matrix.unwrap().rows[0];
    assert!(row
        .rejection
        .as_ref()
        .unwrap()
        .reason
        .contains("tensor_parallel = 2"));
}

#[test]
fn per_gpu_memory_is_the_model_sharded_over_the_gpus() {
    // 140 GB over TP2 is 70 GB per GPU: fits 80 GB GPUs, not 40 GB ones.
    let nodes = vec![
        node("a100-40-1", 0, GpuModel::A100_40GB, 8),
        node("a100-80-1", 1, GpuModel::A100_80GB, 8),
    ];
    let mut e = engine(PolicyName::Seeds, SharingPolicy::Classes, 2);
    let p = placed(e.place(&nodes, &tp("llm", 140.0, 2), 1, false));
    assert_eq!(p.node, "a100-80-1");
    // TP4 makes it 35 GB per GPU: the 40 GB GPUs qualify.
    let req = e.classify(&tp("llm", 140.0, 4));
    assert_eq!(req.memory_gb, 35.0);
    assert_eq!(
        req.class,
        SizeClass::Large,
        "the class is the whole model's"
    );
}

#[test]
fn sharing_modes_refuse_tp_with_the_reason() {
    let nodes = vec![node("h100-1", 0, GpuModel::H100_80GB, 8)];
    for sharing in [
        SharingPolicy::Mig,
        SharingPolicy::TimeSlicing,
        SharingPolicy::MpsUniform,
        SharingPolicy::MpsPerClient,
    ] {
        let mut e = engine(PolicyName::BestFit, sharing, 1);
        // A small model: every sharing mode gives it a slice of one GPU.
        let d = e.place(&nodes, &tp("small", 6.0, 2), 1, true);
        let Decision::Unschedulable { reason, .. } = &d else {
            panic!("{sharing:?}: {d:?}")
        };
        assert!(
            reason.contains("tensor_parallel = 2") && reason.contains("cannot span"),
            "{sharing:?}: {reason}"
        );
    }
    // A workload's own sharing mode is refused the same way.
    let mut w = tp("small", 6.0, 2);
    w.sharing_mode = Some(SharingPolicy::TimeSlicing);
    let mut e = engine(PolicyName::Seeds, SharingPolicy::Classes, 1);
    assert!(matches!(
        e.place(&nodes, &w, 1, false),
        Decision::Unschedulable { .. }
    ));
    // Size classes and the admission flow give a TP replica whole GPUs.
    for sharing in [
        SharingPolicy::Classes,
        SharingPolicy::Admission,
        SharingPolicy::Exclusive,
    ] {
        let mut e = engine(PolicyName::Seeds, sharing, 1);
        let p = placed(e.place(&nodes, &tp("small", 6.0, 2), 1, false));
        assert_eq!(
            (p.gpus.len(), p.slice),
            (2, AllocSlice::Whole),
            "{sharing:?}"
        );
    }
}

#[test]
fn preemption_evicts_a_tp_victim_from_all_its_gpus() {
    // One 2-GPU node held by a low-priority TP2 replica; a high-priority TP2 replica arrives.
    let mut n = node("h100-1", 0, GpuModel::H100_80GB, 2);
    occupy(&mut n, 0, 7, 100);
    occupy(&mut n, 1, 7, 100);
    let mut w = tp("prod", 100.0, 2);
    w.priority_class = Some(1000);
    let mut e = engine(PolicyName::Seeds, SharingPolicy::Classes, 1);
    match e.place(&[n], &w, 1, false) {
        Decision::Preempt { victims, .. } => {
            assert_eq!(victims.len(), 1, "one victim, not one per GPU: {victims:?}");
            assert_eq!(victims[0].replica, 7);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn single_gpu_placements_serialise_as_before() {
    let nodes = vec![node("h100-1", 0, GpuModel::H100_80GB, 2)];
    let mut e = engine(PolicyName::Seeds, SharingPolicy::Classes, 1);
    let p = placed(e.place(&nodes, &WorkloadSpec::new("w", 40.0), 1, false));
    assert_eq!(p.gpus, vec![p.gpu]);
    let line = serde_json::to_string(&Decision::Place(p)).unwrap();
    assert!(!line.contains("\"gpus\""), "{line}");
}

/// The cluster state's `apply` (the simulator, the placement bench, live mode's batch of
/// placements) allocates every GPU of a tensor-parallel placement, each with its share of the
/// model, so the next decision in a batch sees all N taken; `release` frees them all again.
#[test]
fn apply_placement_takes_every_gpu_of_a_tp_placement() {
    for policy in PolicyName::ALL {
        let mut nodes =
            gpusched_policies::ClusterState::new(vec![node("four-1", 0, GpuModel::H100_80GB, 4)]);
        let mut e = engine(policy, SharingPolicy::Classes, nodes.len());
        let w = tp("llama-70b", 140.0, 2);
        let first = placed(e.place(&nodes, &w, 1, false));
        nodes.apply(&first, w.memory_per_gpu_gb());
        assert_eq!(nodes[0].gpus_of(1), first.gpus, "{policy:?}");
        for &g in &first.gpus {
            let gv = &nodes[0].gpus[g as usize];
            assert_eq!(gv.memory_allocated_gb, 70.0, "{policy:?}");
            assert_eq!(gv.share_allocated_pct, 100, "{policy:?}");
        }
        let second = placed(e.place(&nodes, &w, 2, false));
        assert!(
            second.gpus.iter().all(|g| !first.gpus.contains(g)),
            "{policy:?}: {:?} overlaps {:?}",
            second.gpus,
            first.gpus
        );
        nodes.apply(&second, w.memory_per_gpu_gb());
        assert!(nodes[0].gpus.iter().all(|g| !g.is_free()), "{policy:?}");
        assert!(
            matches!(
                e.place(&nodes, &w, 3, false),
                Decision::Unschedulable { .. }
            ),
            "{policy:?}: the node is full"
        );
        assert_eq!(nodes.release(0, 1), first.gpus, "{policy:?}");
        assert_eq!(nodes[0].gpus_of(2), second.gpus, "{policy:?}");
    }
}
