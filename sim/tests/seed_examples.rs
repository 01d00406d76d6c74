//! The seeds' three example scenarios, run through the simulator from their shipped files, with
//! the outcomes the seeds state.

mod common;

use gpusched_policies::decision::Placement;
use gpusched_policies::mps::MpsRealisation;
use gpusched_policies::workload::SizeClass;
use gpusched_policies::{Decision, SharingMode};

fn placements(r: &gpusched_sim::RunResult) -> Vec<Placement> {
    r.decisions
        .iter()
        .filter_map(|d| match &d.decision {
            Decision::Place(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn seed_1_large_high_priority_goes_to_an_h100_exclusive() {
    let r = common::run(&common::scenario("seed-1-large-high-priority.toml", &[]));
    let p = placements(&r);
    assert_eq!(p.len(), 1);
    let p = &p[0];
    assert!(p.node.starts_with("h100-"), "placed on {}", p.node);
    assert_eq!(p.class, SizeClass::Large);
    assert_eq!(p.share_pct, 100);
    assert_eq!(p.sharing, SharingMode::Exclusive);
    assert!(
        p.mps.is_none(),
        "exclusive placements carry no MPS partition"
    );
    // The A100s were feasible (40 GB fits a 40 GB A100) yet lost on the matrix: the H100 won on
    // affinity and the high-priority power bonus even though the A100s are more efficient.
    let m = p.matrix.as_ref().expect("matrix recorded");
    let a100 = m.rows.iter().find(|r| r.node.starts_with("a100-")).unwrap();
    let h100 = m.rows.iter().find(|r| r.node == p.node).unwrap();
    assert!(a100.feasible);
    let eff = |row: &gpusched_policies::framework::CandidateRow| {
        row.terms
            .iter()
            .find(|t| t.plugin == "Efficiency")
            .unwrap()
            .normalized
    };
    assert!(
        eff(a100) > eff(h100),
        "the A100 is the more efficient by the seeds' figures"
    );
    assert!(h100.total > a100.total);
}

#[test]
fn seed_2_batch_goes_to_an_a100_at_50_percent_shared_with_a_similar_workload() {
    let r = common::run(&common::scenario("seed-2-batch.toml", &[]));
    let p = placements(&r);
    assert_eq!(p.len(), 2);
    for x in &p {
        assert!(
            x.node.starts_with("a100-"),
            "{} placed on {}",
            x.workload,
            x.node
        );
        assert_eq!(x.class, SizeClass::Medium);
        assert_eq!(x.share_pct, 50);
        assert_eq!(x.sharing, SharingMode::Mps);
    }
    assert_eq!(
        (&p[0].node, p[0].gpu),
        (&p[1].node, p[1].gpu),
        "the two similar batches share one GPU"
    );
    let plan = p[1].mps.as_ref().unwrap();
    assert_eq!(plan.thread_percentages, vec![50, 50]);
    assert_eq!(
        plan.realisation,
        MpsRealisation::DevicePluginUniform { replicas: 2 }
    );
    // Both batches of 100 finish.
    assert_eq!(r.summary.requests.arrived, 200);
    assert_eq!(r.summary.requests.served, 200);
}

#[test]
fn seed_3_medium_model_goes_to_the_least_utilised_a100() {
    let r = common::run(&common::scenario("seed-3-mixed.toml", &[]));
    let p = placements(&r);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].node, "a100-4", "a100-4 is at 55 %, the others 58–65 %");
    assert_eq!(p[0].share_pct, 50);
    let m = p[0].matrix.as_ref().unwrap();
    for row in &m.rows {
        if row.node.starts_with("h100-") {
            let rej = row.rejection.as_ref().expect("busy H100s are filtered");
            assert_eq!(rej.plugin, "UtilisationBelow");
        }
    }
}

#[test]
fn seeds_mps_example_partition_from_the_engine() {
    // 50 % + 25 % in use on one A100, a 25 % tiny request fits: 4 replicas at [50,25,25,0].
    use gpusched_policies::view::{AllocSlice, AllocationView, NodeView};
    use gpusched_policies::{Engine, EngineConfig, GpuCatalog, GpuModel, WorkloadSpec};
    let mut node = NodeView::new("a100-1", 0, "a100", GpuModel::A100_40GB, 1, 40.0);
    let g = &mut node.gpus[0];
    for (w, r, s, gb) in [("medium", 1u64, 50u8, 8.0), ("tiny", 2, 25, 3.0)] {
        let a = AllocationView {
            workload: w.into(),
            replica: r,
            class: SizeClass::Medium,
            share_pct: s,
            memory_gb: gb,
            slice: AllocSlice::Mps { pct: s },
            priority_class: 500,
        };
        g.add_allocation(a, SharingMode::Mps);
    }
    node.sharing = gpusched_policies::sharing::NodeSharing::MpsPerClient;
    let mut e = Engine::new(EngineConfig::default(), GpuCatalog::default(), 1).unwrap();
    let w = WorkloadSpec::new("tiny-2", 2.0);
    let Decision::Place(p) = e.place(&[node.clone()], &w, 3, false) else {
        panic!("the tiny request fits")
    };
    let plan = p.mps.unwrap();
    assert_eq!(plan.replicas, 4);
    assert_eq!(plan.thread_percentages, vec![50, 25, 25, 0]);
    assert!(
        matches!(plan.realisation, MpsRealisation::PerClientEnv { .. }),
        "uneven split needs per-client limits"
    );
    // A 50 % request no longer fits the remaining 25 %.
    let big = WorkloadSpec {
        model_memory_gb: 8.0,
        ..w
    };
    let mut full = node;
    full.gpus[0].share_allocated_pct = 100;
    assert!(matches!(
        e.place(&[full], &big, 4, false),
        Decision::Unschedulable { .. }
    ));
}
