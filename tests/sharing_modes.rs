//! Issue 10: sharing modes as the real stack allows them, seed 004's packing examples, the
//! admission flow, fallback, preemption, and what decisions.jsonl carries for the live adapter.

mod common;

use gpusched_policies::admission::SharingPolicy;
use gpusched_policies::decision::Placement;
use gpusched_policies::sharing::NodeSharing;
use gpusched_policies::view::{AllocSlice, AllocationView, NodeView};
use gpusched_policies::workload::WorkloadKind;
use gpusched_policies::{
    ClusterState, Decision, Engine, EngineConfig, GpuCatalog, GpuModel, WorkloadSpec,
};

fn cluster(model: GpuModel, nodes: u32, gpus: u8) -> Vec<NodeView> {
    let mem = GpuCatalog::default().spec(model).memory_gb;
    (0..nodes)
        .map(|i| NodeView::new(format!("n{i}"), i, "pool", model, gpus, mem))
        .collect()
}

/// Places `n` replicas one after another like the simulator does; returns the placements.
fn pack(
    engine: &mut Engine,
    nodes: &mut Vec<NodeView>,
    w: &WorkloadSpec,
    n: u64,
) -> Vec<Placement> {
    // The engine crate's cluster state applies each placement (config, MIG, allocation).
    let mut state = ClusterState::new(std::mem::take(nodes));
    let mut out = Vec::new();
    for r in 0..n {
        let Decision::Place(p) = engine.place(&state, w, r, false) else {
            panic!("replica {r} of {} did not fit", w.name)
        };
        state.apply(&p, w.memory_per_gpu_gb());
        out.push(p);
    }
    *nodes = state.into_nodes();
    out
}

fn gpus_used(nodes: &[NodeView]) -> usize {
    nodes
        .iter()
        .flat_map(|n| &n.gpus)
        .filter(|g| !g.is_free())
        .count()
}

fn engine(sharing: SharingPolicy, nodes: &[NodeView], f: impl FnOnce(&mut EngineConfig)) -> Engine {
    let mut cfg = EngineConfig {
        sharing,
        policy: gpusched_policies::config::PolicyName::BestFit,
        ..Default::default()
    };
    f(&mut cfg);
    Engine::new(cfg, GpuCatalog::default(), nodes.len() as u32).unwrap()
}

#[test]
fn seed_004_example_1_ten_inference_pods_on_two_gpus_with_mps() {
    let mut nodes = cluster(GpuModel::A100_40GB, 10, 1);
    let mut e = engine(SharingPolicy::MpsPerClient, &nodes, |_| {});
    let mut w = WorkloadSpec::new("inference", 3.0);
    w.share_pct = Some(20);
    let placed = pack(&mut e, &mut nodes, &w, 10);
    assert_eq!(
        gpus_used(&nodes),
        2,
        "10 pods at 20 % pack onto 2 GPUs instead of 10"
    );
    assert!(placed
        .iter()
        .all(|p| matches!(p.slice, AllocSlice::Mps { pct: 20 })));
}

#[test]
fn seed_004_example_2_twenty_batch_jobs_on_three_a100s_with_1g5gb() {
    let mut nodes = cluster(GpuModel::A100_40GB, 20, 1);
    let mut e = engine(SharingPolicy::Mig, &nodes, |_| {});
    let mut w = WorkloadSpec::new("batch", 4.0);
    w.kind = WorkloadKind::Batch;
    let placed = pack(&mut e, &mut nodes, &w, 20);
    assert_eq!(gpus_used(&nodes), 3, "7 + 7 + 6 jobs");
    assert!(placed
        .iter()
        .all(|p| p.mig.as_ref().unwrap().profile == "1g.5gb"));
    assert_eq!(
        placed
            .iter()
            .filter(|p| p.mig.as_ref().unwrap().reconfigure)
            .count(),
        3,
        "one re-layout per GPU"
    );
}

#[test]
fn seed_004_example_3_sixteen_notebooks_on_four_gpus_with_4x_time_slicing() {
    let mut nodes = cluster(GpuModel::A100_80GB, 16, 1);
    let mut e = engine(SharingPolicy::TimeSlicing, &nodes, |c| {
        c.time_slicing.a100_replicas = 4
    });
    let mut w = WorkloadSpec::new("notebook", 6.0);
    w.kind = WorkloadKind::Development;
    let placed = pack(&mut e, &mut nodes, &w, 16);
    assert_eq!(gpus_used(&nodes), 4);
    let ts = placed[0].time_slicing.as_ref().unwrap();
    assert_eq!(ts.replicas, 4);
    assert!(placed[0]
        .node_config
        .as_ref()
        .unwrap()
        .device_plugin_config
        .contains("timeSlicing:\n"));
}

#[test]
fn time_slicing_replicas_follow_seed_003_per_family() {
    let mut nodes = cluster(GpuModel::H100_80GB, 1, 1);
    nodes.extend(cluster(GpuModel::A100_80GB, 1, 1).into_iter().map(|mut n| {
        n.name = "a".into();
        n.ordinal = 1;
        n
    }));
    let mut e = engine(SharingPolicy::TimeSlicing, &nodes, |_| {});
    let w = WorkloadSpec::new("dev", 6.0);
    let placed = pack(&mut e, &mut nodes, &w, 5);
    let h100 = placed.iter().filter(|p| p.node == "n0").count();
    assert_eq!(h100, 2, "H100: 2 replicas");
    assert_eq!(placed.len() - h100, 3, "A100: 3 replicas");
}

#[test]
fn the_real_stack_forbids_mixing_methods_and_mps_on_mig() {
    // A node running time-slicing pods takes no MPS client: one plugin config per node.
    let mut nodes = cluster(GpuModel::A100_40GB, 1, 2);
    let mut e = engine(SharingPolicy::TimeSlicing, &nodes, |_| {});
    pack(&mut e, &mut nodes, &WorkloadSpec::new("dev", 4.0), 1);
    let mut mps = engine(SharingPolicy::MpsPerClient, &nodes, |_| {});
    let Decision::Unschedulable { reason, .. } =
        mps.place(&nodes, &WorkloadSpec::new("inf", 3.0), 9, false)
    else {
        panic!("must refuse")
    };
    assert!(
        reason.contains("time-slicing") && reason.contains("restart the device plugin"),
        "{reason}"
    );
    // A pool pinned to MIG takes no MPS client (the plugin's MPS does not run on MIG devices).
    let mut nodes = cluster(GpuModel::A100_80GB, 1, 1);
    nodes[0].designated = Some(NodeSharing::Mig);
    nodes[0].sharing = NodeSharing::Mig;
    let mut uni = engine(SharingPolicy::MpsUniform, &nodes, |_| {});
    let Decision::Unschedulable { reason, .. } =
        uni.place(&nodes, &WorkloadSpec::new("inf", 3.0), 1, false)
    else {
        panic!("must refuse")
    };
    assert!(
        reason.contains("designated for gpusched-mig-mixed"),
        "{reason}"
    );
}

#[test]
fn uniform_mps_caps_clients_and_memory_at_the_plugin_split() {
    // Under the plugin's MPS with 4 replicas each client gets 25 % and 10 of 40 GB.
    let mut nodes = cluster(GpuModel::A100_40GB, 1, 1);
    let mut e = engine(SharingPolicy::MpsUniform, &nodes, |_| {});
    let w = WorkloadSpec::new("tiny", 3.0);
    let placed = pack(&mut e, &mut nodes, &w, 4);
    let plan = placed[3].mps.as_ref().unwrap();
    assert_eq!(plan.thread_percentages, vec![25, 25, 25, 25]);
    assert!(plan.clients.iter().all(|c| c.pinned_mem_limit_mib == 10240));
    assert!(
        matches!(
            e.place(&nodes, &w, 5, false),
            Decision::Unschedulable { .. }
        ),
        "a fifth client exceeds the 4 replicas"
    );
    // A 12 GB model does not fit a 10 GB uniform slot even though the GPU has memory.
    let mut nodes = cluster(GpuModel::A100_40GB, 1, 1);
    let Decision::Unschedulable { reason, .. } = e.place(
        &nodes,
        &WorkloadSpec::new("tiny-but-big", 3.9)
            .tap(|w| w.model_memory_gb = 12.0)
            .with_share(25),
        1,
        false,
    ) else {
        panic!("must refuse")
    };
    assert!(reason.contains("MemoryFits"), "{reason}");
    nodes.clear();
}

trait Tap: Sized {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}
impl Tap for WorkloadSpec {}
trait WithShare {
    fn with_share(self, pct: u8) -> Self;
}
impl WithShare for WorkloadSpec {
    fn with_share(mut self, pct: u8) -> Self {
        self.share_pct = Some(pct);
        self
    }
}

#[test]
fn mig_workloads_never_fall_back_but_time_sliced_ones_do() {
    let mut nodes = cluster(GpuModel::A100_40GB, 1, 1);
    nodes.push(NodeView::new("h", 1, "h100", GpuModel::H100_80GB, 1, 80.0));
    // Fill the only A100 with a whole-GPU job.
    nodes[0].gpus[0].add_allocation(
        AllocationView {
            workload: "x".into(),
            replica: 99,
            class: gpusched_policies::workload::SizeClass::Large,
            share_pct: 100,
            memory_gb: 30.0,
            slice: AllocSlice::Whole,
            priority_class: 2000,
        },
        gpusched_policies::SharingMode::Exclusive,
    );
    nodes[0].sharing = NodeSharing::Exclusive;
    let mut mig = engine(SharingPolicy::Mig, &nodes, |_| {});
    let w = WorkloadSpec::new("small", 3.0); // tiny: prefers A100
    let Decision::Unschedulable { reason, .. } = mig.place(&nodes, &w, 1, false) else {
        panic!("MIG must not fall back to the H100")
    };
    assert!(
        reason.contains("do not fall back") || reason.contains("rejected"),
        "{reason}"
    );
    let mut ts = engine(SharingPolicy::TimeSlicing, &nodes, |_| {});
    let Decision::Place(p) = ts.place(&nodes, &w, 1, false) else {
        panic!("time-sliced work falls back")
    };
    assert_eq!(p.node, "h");
}

#[test]
fn higher_priority_preempts_lower_and_says_whom() {
    let mut nodes = cluster(GpuModel::H100_80GB, 1, 1);
    let mut e = engine(SharingPolicy::Classes, &nodes, |_| {});
    let mut research = WorkloadSpec::new("research", 40.0);
    research.priority_class = Some(100);
    pack(&mut e, &mut nodes, &research, 1);
    let mut prod = WorkloadSpec::new("production", 40.0);
    prod.priority_class = Some(1000);
    let Decision::Preempt {
        victims, reason, ..
    } = e.place(&nodes, &prod, 7, false)
    else {
        panic!("must preempt")
    };
    assert_eq!(victims.len(), 1);
    assert_eq!(
        (victims[0].workload.as_str(), victims[0].priority_class),
        ("research", 100)
    );
    assert!(reason.contains("research#0"), "{reason}");
    // Equal priority never preempts.
    research.name = "other-research".into();
    assert!(matches!(
        e.place(&nodes, &research, 8, false),
        Decision::Unschedulable { .. }
    ));
}

#[test]
fn preemption_in_the_simulator_fails_in_flight_requests_with_their_cause() {
    let r = common::run(&common::scenario("preemption.toml", &[]));
    let s = &r.summary;
    assert!(s.preemptions >= 1, "{s:?}");
    let json: Vec<serde_json::Value> = r
        .decisions
        .iter()
        .map(|d| serde_json::to_value(d).unwrap())
        .collect();
    let pre = json
        .iter()
        .find(|d| d["decision"] == "preempt")
        .expect("a preempt decision");
    assert_eq!(pre["victims"][0]["workload"], "research-batch");
    assert!(
        s.requests
            .failed_by_cause
            .get("preempted")
            .copied()
            .unwrap_or(0)
            > 0
    );
    let c = &s.requests;
    assert_eq!(
        c.served + c.failed + c.queued_at_end + c.in_service_at_end,
        c.arrived
    );
}

#[test]
fn sharing_decisions_carry_what_the_live_adapter_applies() {
    for (mode, key) in [
        ("mig", "mig"),
        ("time_slicing", "time_slicing"),
        ("mps_per_client", "mps"),
        ("mps_uniform", "mps"),
    ] {
        let set = format!("engine.sharing={mode}");
        let r = common::run(&common::scenario(
            "default.toml",
            &["duration_h=0.05", &set],
        ));
        let first: Vec<serde_json::Value> = r
            .decisions
            .iter()
            .map(|d| serde_json::to_value(d).unwrap())
            .filter(|d| d["decision"] == "place" && d["class"] != "large")
            .collect();
        assert!(!first.is_empty(), "{mode}");
        for d in &first {
            assert!(d.get(key).is_some(), "{mode}: {d}");
        }
        assert!(
            first.iter().any(|d| d.get("node_config").is_some()),
            "{mode}: the node's device-plugin config is named"
        );
    }
}

#[test]
fn consolidation_report_finds_underused_nodes() {
    let r = common::run(&common::scenario(
        "default.toml",
        &["duration_h=0.1", "engine.policy=worst_fit"],
    ));
    let report = &r.summary.consolidation;
    assert!(report.gpus_allocated > 0);
    assert!(report
        .recommendations
        .iter()
        .all(|l| l.contains("underutilized")));
    assert!(report
        .summary_line()
        .starts_with("Consolidation opportunities found: underutilizedNodes="));
}
