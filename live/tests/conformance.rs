//! Conformance: the same cluster built through the simulator's view and through live mode's view
//! (from Kubernetes objects, through the controller's own reconcile loop in dry-run) gives the
//! same engine decisions, placement after placement, for every placement policy and every
//! sharing mode (whole GPU, MPS uniform and per client, MIG instances, time-slicing): the pod
//! annotations live writes read back into the identical view.

use gpusched_live::apply::placement_annotations;
use gpusched_live::apply::{Action, Applier, ApplyError, Scope};
use gpusched_live::codec;
use gpusched_live::controller::Controller;
use gpusched_live::dryrun::DryRunApplier;
use gpusched_live::keys;
use gpusched_live::testutil::{gpu_node, pending_pod};
use gpusched_live::view;
use gpusched_policies::admission::SharingPolicy;
use gpusched_policies::config::PolicyName;
use gpusched_policies::decision::Decision;
use gpusched_policies::view::{AllocSlice, NodeView};
use gpusched_policies::{ClusterState, Engine, EngineConfig, GpuModel};
use gpusched_sim::LoadedScenario;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Pools listed in natural name order, so the simulator's ordinals (pool order) and live mode's
/// (natural node-name order) coincide. Background load and a cordon exercise the filters.
const SCENARIO: &str = r#"
name = "conformance"
duration_h = 1.0
[traffic]
kind = "poisson"
qps = 1.0
[[pools]]
name = "a100"
gpu_model = "A100-40GB"
nodes = 5
[[pools]]
name = "a100x"
gpu_model = "A100-80GB"
nodes = 1
gpus_per_node = 2
[[pools]]
name = "h100"
gpu_model = "H100-80GB"
nodes = 3
[[node_state]]
node = "a100-2"
background_utilisation = 0.95
[[node_state]]
node = "h100-3"
cordoned = true
[[node_state]]
node = "a100-4"
background_utilisation = 0.35
[[services]]
name = "chat-tiny"
model_memory_gb = 3.0
service_time_ms = 15.0
[[services]]
name = "code-medium"
model_memory_gb = 8.0
latency_sla_ms = 800.0
service_time_ms = 30.0
[[services]]
name = "llm-large"
model_memory_gb = 40.0
priority = "high"
service_time_ms = 60.0
[[services]]
name = "odd-share"
model_memory_gb = 2.0
share_pct = 20
service_time_ms = 10.0
"#;

/// The simulator's view: the nodes `Sim::new` starts from.
fn sim_nodes(sc: &LoadedScenario) -> Vec<NodeView> {
    gpusched_sim::sim::cluster_nodes(sc)
}

/// The same cluster as Kubernetes objects: GFD labels, the agent's metrics annotation, cordons.
fn k8s_nodes(sc: &LoadedScenario, now: f64) -> Vec<Node> {
    let s = &sc.scenario;
    let mut out = Vec::new();
    for pool in &s.pools {
        let product = match pool.gpu_model {
            GpuModel::H100_80GB => "NVIDIA-H100-80GB-HBM3",
            GpuModel::A100_40GB => "NVIDIA-A100-SXM4-40GB",
            GpuModel::A100_80GB => "NVIDIA-A100-SXM4-80GB",
        };
        for i in 1..=pool.nodes {
            let name = format!("{}-{}", pool.name, i);
            let mut n = gpu_node(&name, product, pool.gpus_per_node);
            n.metadata
                .labels
                .as_mut()
                .unwrap()
                .insert(keys::POOL.into(), pool.name.clone());
            let state = s.node_state.iter().find(|x| x.node == name);
            if let Some(st) = state {
                n.spec.as_mut().unwrap().unschedulable = Some(st.cordoned);
                let gpus: Vec<_> = (0..pool.gpus_per_node)
                    .map(|g| serde_json::json!({"i": g, "util": st.background_utilisation, "mem_used_mib": 0, "mem_total_mib": 40960}))
                    .collect();
                let summary = serde_json::json!({"t": now - 10.0, "gpus": gpus});
                n.metadata.annotations =
                    Some([(keys::GPU_METRICS.to_string(), summary.to_string())].into());
            }
            out.push(n);
        }
    }
    out
}

fn pending_pods(sc: &LoadedScenario, order: &[usize]) -> Vec<Pod> {
    order
        .iter()
        .enumerate()
        .map(|(i, &svc)| {
            let s = &sc.scenario.services[svc];
            let mut p = pending_pod("ml", &format!("{}-{i:03}", s.name), s.model_memory_gb);
            p.metadata.creation_timestamp = Some(Time(
                k8s_openapi::jiff::Timestamp::from_second(1_600_000_000 + i as i64).unwrap(),
            ));
            let a = p.metadata.annotations.as_mut().unwrap();
            a.insert(keys::WORKLOAD.into(), s.name.clone());
            a.insert(
                keys::PRIORITY.into(),
                serde_json::to_value(s.priority)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .into(),
            );
            if let Some(l) = s.latency_sla_ms {
                a.insert(keys::LATENCY_SLA_MS.into(), l.to_string());
            }
            if let Some(sh) = s.share_pct {
                a.insert(keys::SHARE_PCT.into(), sh.to_string());
            }
            p
        })
        .collect()
}

/// The simulator's side: Engine::place on the simulator's view, applied as `Sim::try_place` does.
/// Returns the decisions and the view before each one.
fn sim_run(
    sc: &LoadedScenario,
    cfg: &EngineConfig,
    order: &[usize],
) -> (Vec<Decision>, Vec<ClusterState>) {
    let mut nodes = ClusterState::new(sim_nodes(sc));
    let mut engine = Engine::new(cfg.clone(), sc.catalog.clone(), nodes.len() as u32).unwrap();
    let mut decisions = Vec::new();
    let mut views = Vec::new();
    for (i, &svc) in order.iter().enumerate() {
        let w = sc.scenario.services[svc].workload();
        let replica = i as u64 + 1;
        views.push(nodes.clone());
        let d = engine.place(&nodes, &w, replica, false);
        if let Decision::Place(p) = &d {
            // The engine crate's one cluster state applies it, as in the simulator.
            nodes.apply(p, w.memory_per_gpu_gb());
        }
        decisions.push(d);
    }
    (decisions, views)
}

const NOW: f64 = 1_700_000_000.0;

/// Live side, step by step: before every placement the view is rebuilt from Kubernetes objects
/// alone (nodes + pods carrying the annotations the applier writes when it binds), the pod's
/// workload is read from its annotations, and the engine decides from that view.
fn run_policy(policy: PolicyName) {
    run_policy_sharing(policy, SharingPolicy::default());
}

/// As [`run_policy`] under one sharing policy: MIG instances and time-slice weights must survive
/// the round trip through pod annotations (`gpusched_live::slices`) for the views to agree.
fn run_policy_sharing(policy: PolicyName, sharing: SharingPolicy) {
    let sc = gpusched_sim::scenario::load_str(SCENARIO, "<conformance>", ".".into(), &[]).unwrap();
    let cfg = EngineConfig {
        policy,
        sharing,
        ..Default::default()
    };
    // Services interleaved, enough to fill the cluster and overflow it.
    let order: Vec<usize> = (0..40).map(|i| [0, 1, 0, 2, 3, 1, 0][i % 7]).collect();
    let (sim_decisions, sim_views) = sim_run(&sc, &cfg, &order);
    let placed = sim_decisions
        .iter()
        .filter(|d| matches!(d, Decision::Place(_)))
        .count();
    assert!(placed > 5, "{sharing:?}: only {placed} placed");
    // The modes whose slices need more than index and share really produce them.
    let has = |f: fn(&gpusched_policies::decision::Placement) -> bool| {
        sim_decisions
            .iter()
            .any(|d| matches!(d, Decision::Place(p) if f(p)))
    };
    match sharing {
        SharingPolicy::Mig => assert!(has(|p| p.mig.is_some()), "no MIG placement"),
        SharingPolicy::TimeSlicing => {
            assert!(
                has(|p| p.time_slicing.is_some()),
                "no time-sliced placement"
            )
        }
        _ => {}
    }
    if sharing == SharingPolicy::default() {
        assert!(
            placed < order.len(),
            "the sequence should fill the cluster and overflow it ({placed} placed)"
        );
    }

    let mut k8s = k8s_nodes(&sc, NOW);
    let mut engine = Engine::new(cfg, sc.catalog.clone(), k8s.len() as u32).unwrap();
    let mut pods: Vec<Pod> = Vec::new();
    for (i, pending) in pending_pods(&sc, &order).into_iter().enumerate() {
        let view = view::build_view(
            &k8s,
            &pods,
            &view::ViewOptions {
                catalog: sc.catalog.clone(),
                ..Default::default()
            },
            NOW,
        );
        assert!(view.notes.is_empty(), "{:?}", view.notes);
        assert_eq!(
            view.nodes, sim_views[i],
            "{policy:?}/{sharing:?}: views differ before decision {i}"
        );
        let w = view::workload_from_pod(&pending).unwrap();
        let d = engine.place(&view.nodes, &w, i as u64 + 1, false);
        assert_eq!(
            d, sim_decisions[i],
            "{policy:?}/{sharing:?}: decision {i} differs"
        );
        if let Decision::Place(p) = &d {
            let model = view.nodes[p.node_index].model;
            let gpu_mem = sc.catalog.spec(model).memory_gb;
            let mut bound = pending.clone();
            for (k, v) in placement_annotations(p, model, w.memory_per_gpu_gb(), gpu_mem) {
                bound
                    .metadata
                    .annotations
                    .as_mut()
                    .unwrap()
                    .insert(k, v.unwrap());
            }
            bound.spec.as_mut().unwrap().node_name = Some(p.node.clone());
            pods.push(bound);
            // The controller relabels a node whose config the placement sets.
            if let Some(c) = &p.node_config {
                let node = k8s
                    .iter_mut()
                    .find(|n| n.metadata.name.as_deref() == Some(p.node.as_str()))
                    .unwrap();
                node.metadata
                    .labels
                    .get_or_insert_default()
                    .insert(keys::DEVICE_PLUGIN_CONFIG.into(), c.label.clone());
            }
        }
    }
}

/// The device plugin's ConfigMap, with no gpusched entry yet.
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

/// The controller's own loop (dry run) over sequences whose sharing layouts never change a
/// node's config once set: only 25 % clients (uniform MPS, `gpusched-mps-4` everywhere), or only
/// exclusive large models. (Mixing them on a multi-GPU node makes the controller relabel a node
/// that runs an exclusive pod, which evicts it — a real disruption the simulator's engine view
/// does not show; `controller_evicts_on_a_config_flip` covers it.) So no rollout evicts anything and the controller must reproduce the simulator exactly, including
/// its assume-after-bind bookkeeping.
fn run_controller(policy: PolicyName, order: &[usize]) {
    run_controller_sharing(policy, SharingPolicy::default(), order)
}

fn run_controller_sharing(policy: PolicyName, sharing: SharingPolicy, order: &[usize]) {
    let sc = gpusched_sim::scenario::load_str(SCENARIO, "<conformance>", ".".into(), &[]).unwrap();
    let cfg = EngineConfig {
        policy,
        sharing,
        ..Default::default()
    };
    let (sim_decisions, _) = sim_run(&sc, &cfg, order);
    let k8s = k8s_nodes(&sc, NOW);
    let scope = Scope::new(
        ["ml".to_string()],
        "nvidia-device-plugin",
        "device-plugin-config",
    )
    .unwrap();
    let applier = DryRunApplier::new(scope.clone(), Box::new(std::io::sink()));
    let mut ctl = Controller::new(
        cfg,
        sc.catalog.clone(),
        k8s.len() as u32,
        scope,
        applier,
        None,
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report =
        rt.block_on(ctl.reconcile(&k8s, &pending_pods(&sc, order), Some(&plugin_config()), NOW));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report
        .rollouts
        .iter()
        .all(|(_, o)| *o == gpusched_live::rollback::RolloutOutcome::Done));
    for (i, (l, s)) in report.decisions.iter().zip(&sim_decisions).enumerate() {
        assert_eq!(l, s, "{policy:?}/{sharing:?}: decision {i} differs");
    }
    assert_eq!(
        report.decisions.len(),
        sim_decisions.len(),
        "{policy:?}/{sharing:?}"
    );
    let placed = sim_decisions
        .iter()
        .filter(|d| matches!(d, Decision::Place(_)))
        .count();
    let printed = ctl.applier.printed.lock().unwrap();
    assert_eq!(
        printed.iter().filter(|t| t.contains("/binding")).count(),
        placed
    );
    assert!(!printed.iter().any(|t| t.contains("/eviction")));
    // Every MIG re-layout is recorded on its node, and the dry run shows the patch.
    let relayouts = sim_decisions
        .iter()
        .filter(
            |d| matches!(d, Decision::Place(p) if p.mig.as_ref().is_some_and(|m| m.reconfigure)),
        )
        .count();
    let layout_patches = printed
        .iter()
        .filter(|t| t.contains(keys::NODE_MIG_LAYOUT_PREFIX))
        .count();
    assert!(
        layout_patches >= relayouts,
        "{policy:?}/{sharing:?}: {layout_patches} MIG layout patches for {relayouts} re-layouts"
    );
    if sharing == SharingPolicy::Mig && placed > 0 {
        assert!(
            relayouts > 0 && layout_patches > 0,
            "{policy:?}/{sharing:?}"
        );
    }
}

#[test]
fn controller_reproduces_the_simulator_without_config_flips() {
    let tiny = vec![0; 40];
    let large = vec![2; 12];
    for p in PolicyName::ALL {
        run_controller(p, &tiny);
        run_controller(p, &large);
    }
}

#[test]
fn the_controller_reproduces_the_simulator_in_every_sharing_mode() {
    let tiny = vec![0; 40];
    let large = vec![2; 12];
    for sharing in SharingPolicy::ALL {
        run_controller_sharing(PolicyName::Seeds, sharing, &tiny);
        run_controller_sharing(PolicyName::Seeds, sharing, &large);
    }
}

#[test]
fn every_sharing_mode_decides_identically_in_sim_and_live() {
    for sharing in SharingPolicy::ALL {
        run_policy_sharing(PolicyName::Seeds, sharing);
    }
}

#[test]
fn seeds_policy_decides_identically_in_sim_and_live() {
    run_policy(PolicyName::Seeds);
}

#[test]
fn packing_policies_decide_identically_in_sim_and_live() {
    for p in [
        PolicyName::BestFit,
        PolicyName::FirstFit,
        PolicyName::WorstFit,
    ] {
        run_policy(p);
    }
}

/// A 50 % client cannot join a node whose GPU runs the plugin's uniform 25 % MPS: its split
/// needs per-client limits, and switching the node's config would restart the plugin under the
/// running client. The controller leaves the pod pending and touches nothing.
#[test]
fn controller_never_flips_a_busy_nodes_config_when_placing() {
    let sc = gpusched_sim::scenario::load_str(SCENARIO, "<conformance>", ".".into(), &[]).unwrap();
    let mut k8s = k8s_nodes(&sc, NOW);
    k8s.retain(|n| n.metadata.name.as_deref() == Some("a100-1"));
    let running = gpusched_live::testutil::gpusched_pod(
        "ml",
        "chat-tiny-old",
        "chat-tiny",
        "a100-1",
        0,
        1,
        25,
        3.0,
        "tiny",
    );
    k8s[0]
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(keys::DEVICE_PLUGIN_CONFIG.into(), "gpusched-mps-4".into());
    let pods = vec![running, pending_pods(&sc, &[1]).remove(0)];
    let scope = Scope::new(
        ["ml".to_string()],
        "nvidia-device-plugin",
        "device-plugin-config",
    )
    .unwrap();
    let applier = DryRunApplier::new(scope.clone(), Box::new(std::io::sink()));
    let mut ctl = Controller::new(
        EngineConfig::default(),
        sc.catalog.clone(),
        1,
        scope,
        applier,
        None,
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(ctl.reconcile(&k8s, &pods, Some(&plugin_config()), NOW));
    // The engine never flips the config of a node with GPU pods as a side effect of placing one
    // (the simulator does not either): changing it is a planned rollout, not a placement. The
    // pod stays pending, nothing is evicted and nothing is sent.
    assert!(report.rollouts.is_empty(), "{:?}", report.rollouts);
    let printed = ctl.applier.printed.lock().unwrap();
    assert!(
        printed.iter().all(|t| !t.contains("/eviction")),
        "no eviction: {printed:?}"
    );
    assert!(printed.iter().all(|t| !t.contains("/binding")), "not bound");
}

// ---------------------------------------------------------------------------------------------
// Sequences with releases, preemption and tensor-parallel pods, and the codec's round trip.

/// Whole GPUs, multi-GPU (tensor-parallel) pods and preemption: four-GPU nodes filled by
/// low-priority pods until a high-priority TP2 replica must evict some.
const SCENARIO_TP: &str = r#"
name = "conformance-tp"
duration_h = 1.0
[traffic]
kind = "poisson"
qps = 1.0
[[pools]]
name = "h100"
gpu_model = "H100-80GB"
nodes = 2
gpus_per_node = 4
[[pools]]
name = "h100s"
gpu_model = "H100-80GB"
nodes = 1
gpus_per_node = 2
[[services]]
name = "batch-low"
model_memory_gb = 30.0
priority = "low"
service_time_ms = 50.0
[[services]]
name = "llm-tp"
model_memory_gb = 120.0
tensor_parallel = 2
priority = "high"
service_time_ms = 80.0
[[services]]
name = "chat-tiny"
model_memory_gb = 3.0
service_time_ms = 15.0
[[services]]
name = "batch-high"
model_memory_gb = 30.0
priority = "high"
service_time_ms = 50.0
"#;

/// One step of a sequence: place a replica of service `s`, or release the `k`-th replica still
/// placed (modulo their number).
#[derive(Debug, Clone, Copy)]
enum Op {
    Place(usize),
    Release(usize),
}

/// A pending pod for replica `r` of service `s` (TP pods ask for `nvidia.com/gpu: N`).
fn pending_for(sc: &LoadedScenario, s: usize, r: u64) -> Pod {
    let mut p = pending_pods(sc, &[s]).remove(0);
    p.metadata.name = Some(format!("{}-r{r}", sc.scenario.services[s].name));
    let n = sc.scenario.services[s].workload().gpus;
    if n > 1 {
        let c = &mut p.spec.as_mut().unwrap().containers[0];
        let res = c.resources.get_or_insert_default();
        res.limits.get_or_insert_default().insert(
            keys::GPU_RESOURCE.into(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity(n.to_string()),
        );
    }
    p
}

/// The pods and node labels live writes for a state, through the one codec (`codec::
/// pods_of_state`, `pod_annotations`, `node_sharing_label`), on top of the bare nodes.
fn objects_of_state(
    sc: &LoadedScenario,
    state: &ClusterState,
    service_of: &std::collections::BTreeMap<u64, usize>,
) -> (Vec<Node>, Vec<Pod>) {
    let mut nodes = k8s_nodes(sc, NOW);
    for (n, v) in nodes.iter_mut().zip(state.iter()) {
        if let Some((k, val)) = codec::node_sharing_label(v.sharing) {
            n.metadata.labels.as_mut().unwrap().insert(k.into(), val);
        }
        let a = n.metadata.annotations.get_or_insert_default();
        a.extend(codec::node_mig_annotations(v));
    }
    let pods = codec::pods_of_state(state)
        .into_iter()
        .map(|(node, pa)| {
            let model = state[state.index_of(&node).unwrap()].model;
            let mut p = pending_for(sc, service_of[&pa.alloc.replica], pa.alloc.replica);
            codec::annotate(&mut p.metadata, &codec::pod_annotations(&pa, model));
            p.spec.as_mut().unwrap().node_name = Some(node);
            p
        })
        .collect();
    (nodes, pods)
}

fn build(sc: &LoadedScenario, nodes: &[Node], pods: &[Pod]) -> ClusterState {
    let v = view::build_view(
        nodes,
        pods,
        &view::ViewOptions {
            catalog: sc.catalog.clone(),
            ..Default::default()
        },
        NOW,
    );
    assert!(v.notes.is_empty(), "{:?}", v.notes);
    v.nodes
}

/// Runs `ops` twice: on the simulator's cluster state (decisions applied with
/// `ClusterState::apply_decision`, preemption's victims released and the replica placed again
/// as `Sim::try_place` does) and on Kubernetes objects alone (live's view rebuilt before every
/// decision, bound pods annotated as the applier writes them, victims and released pods deleted,
/// nodes relabelled). The views must agree before every decision, the decisions must be equal,
/// and the state written back out as objects must read back into the identical state.
fn run_sequence(toml: &str, cfg: &EngineConfig, ops: &[Op]) -> Vec<Decision> {
    run_sequence_counted(toml, cfg, ops).0
}

/// What a sequence did to pods on MIG instances: released, preempted.
#[derive(Debug, Default, Clone, Copy)]
struct MigCounts {
    released: usize,
    preempted: usize,
}

fn holds_mig(state: &ClusterState, node: usize, r: u64) -> bool {
    state[node].gpus.iter().any(|g| {
        g.allocations
            .iter()
            .any(|a| a.replica == r && matches!(a.slice, AllocSlice::Mig { .. }))
    })
}

/// [`run_sequence`], counting the pods on MIG instances it released and preempted.
fn run_sequence_counted(toml: &str, cfg: &EngineConfig, ops: &[Op]) -> (Vec<Decision>, MigCounts) {
    let mut counts = MigCounts::default();
    let sc = gpusched_sim::scenario::load_str(toml, "<conformance>", ".".into(), &[]).unwrap();
    let mut state = ClusterState::new(sim_nodes(&sc));
    let mut sim_engine = Engine::new(cfg.clone(), sc.catalog.clone(), state.len() as u32).unwrap();
    let mut live_nodes = k8s_nodes(&sc, NOW);
    let mut live_pods: Vec<Pod> = Vec::new();
    let mut live_engine = Engine::new(cfg.clone(), sc.catalog.clone(), state.len() as u32).unwrap();
    let mut service_of = std::collections::BTreeMap::new();
    let mut placed: Vec<u64> = Vec::new();
    let mut all = Vec::new();
    let mut next = 1u64;
    for (step, op) in ops.iter().enumerate() {
        let here = format!("{:?}/{:?} step {step} {op:?}", cfg.policy, cfg.sharing);
        // The codec's round trip: the state as objects reads back into itself.
        let (n, p) = objects_of_state(&sc, &state, &service_of);
        assert_eq!(build(&sc, &n, &p), state, "{here}: round trip");
        // Live's own objects give the same state.
        let live = build(&sc, &live_nodes, &live_pods);
        assert_eq!(live, state, "{here}: views differ");
        match *op {
            Op::Release(k) if !placed.is_empty() => {
                let r = placed[k % placed.len()];
                let node = state.iter().position(|n| n.gpu_of(r).is_some()).unwrap();
                counts.released += holds_mig(&state, node, r) as usize;
                placed.retain(|&x| x != r);
                state.release(node, r);
                live_pods.retain(|p| {
                    view::allocation_from_pod(p)
                        .unwrap()
                        .map(|(_, a)| a.replica)
                        != Some(r)
                });
            }
            Op::Release(_) => {}
            Op::Place(s) => {
                let r = next;
                next += 1;
                service_of.insert(r, s);
                let w = sc.scenario.services[s].workload();
                let pending = pending_for(&sc, s, r);
                // Live decides for the workload it reads from the pod (its namespace aside, the
                // simulator's).
                let wl = view::workload_from_pod(&pending).unwrap();
                assert_eq!(
                    gpusched_policies::WorkloadSpec {
                        namespace: None,
                        ..wl.clone()
                    },
                    w,
                    "{here}"
                );
                {
                    let d = sim_engine.place(&state, &w, r, false);
                    let dl = live_engine.place(&live, &wl, r, false);
                    assert_eq!(dl, d, "{here}: decision differs");
                    all.push(d.clone());
                    match &d {
                        Decision::Preempt { victims, node, .. } => {
                            let ni = state.index_of(node).unwrap();
                            counts.preempted += victims
                                .iter()
                                .filter(|v| holds_mig(&state, ni, v.replica))
                                .count();
                            state.apply_decision(&d, w.memory_per_gpu_gb()).unwrap();
                            placed.retain(|x| !victims.iter().any(|v| v.replica == *x));
                            live_pods.retain(|p| {
                                let rep = view::allocation_from_pod(p)
                                    .unwrap()
                                    .map(|(_, a)| a.replica);
                                !victims.iter().any(|v| Some(v.replica) == rep)
                            });
                            let live2 = build(&sc, &live_nodes, &live_pods);
                            assert_eq!(live2, state, "{here}: after preemption");
                            // Decide again on the freed cluster (both sides), once, as the
                            // simulator does.
                            let d2 = sim_engine.place(&state, &w, r, false);
                            let dl2 = live_engine.place(&live2, &wl, r, false);
                            assert_eq!(dl2, d2, "{here}: decision after preemption differs");
                            all.push(d2.clone());
                            if let Decision::Place(p) = &d2 {
                                bind(
                                    &sc,
                                    &mut state,
                                    &mut live_nodes,
                                    &mut live_pods,
                                    p,
                                    &w,
                                    pending.clone(),
                                );
                                placed.push(r);
                            }
                        }
                        Decision::Place(p) => {
                            bind(
                                &sc,
                                &mut state,
                                &mut live_nodes,
                                &mut live_pods,
                                p,
                                &w,
                                pending.clone(),
                            );
                            placed.push(r);
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    (all, counts)
}

/// Applies a placement on both sides: the state, and live's objects (annotated, bound pod;
/// the node relabelled when its config changes).
fn bind(
    sc: &LoadedScenario,
    state: &mut ClusterState,
    nodes: &mut [Node],
    pods: &mut Vec<Pod>,
    p: &gpusched_policies::decision::Placement,
    w: &gpusched_policies::WorkloadSpec,
    mut pod: Pod,
) {
    let gpus = if p.gpus.is_empty() {
        vec![p.gpu]
    } else {
        p.gpus.clone()
    };
    let before = codec::gpu_layouts(&state[p.node_index], &gpus);
    state.apply(p, w.memory_per_gpu_gb());
    let model = state[p.node_index].model;
    // The node's MIG layout record, as the controller patches it before binding.
    let after = codec::gpu_layouts(&state[p.node_index], &gpus);
    let n = nodes
        .iter_mut()
        .find(|n| n.metadata.name.as_deref() == Some(p.node.as_str()))
        .unwrap();
    let a = n.metadata.annotations.get_or_insert_default();
    for (k, v) in codec::mig_layout_patch(model, &before, &after) {
        match v {
            Some(v) => a.insert(k, v),
            None => a.remove(&k),
        };
    }
    let gpu_mem = sc.catalog.spec(model).memory_gb;
    for (k, v) in placement_annotations(p, model, w.memory_per_gpu_gb(), gpu_mem) {
        pod.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(k, v.unwrap());
    }
    pod.spec.as_mut().unwrap().node_name = Some(p.node.clone());
    pods.push(pod);
    if let Some(c) = &p.node_config {
        let n = nodes
            .iter_mut()
            .find(|n| n.metadata.name.as_deref() == Some(p.node.as_str()))
            .unwrap();
        n.metadata
            .labels
            .get_or_insert_default()
            .insert(keys::DEVICE_PLUGIN_CONFIG.into(), c.label.clone());
    }
}

/// A deterministic pseudo-random sequence of places and releases over `services`.
fn ops(seed: u64, len: usize, services: &[usize], release_every: u64) -> Vec<Op> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = x >> 33;
            if v.is_multiple_of(release_every) {
                Op::Release((v / 7) as usize)
            } else {
                Op::Place(services[(v / 3) as usize % services.len()])
            }
        })
        .collect()
}

#[test]
fn preemption_and_multi_gpu_pods_decide_identically_and_round_trip() {
    let cfg = EngineConfig::default();
    // Fill with low-priority pods, then the high-priority TP2 replica must preempt.
    let mut seq: Vec<Op> = (0..10).map(|_| Op::Place(0)).collect();
    seq.extend([
        Op::Place(1),
        Op::Place(1),
        Op::Place(2),
        Op::Release(3),
        Op::Place(1),
    ]);
    let ds = run_sequence(SCENARIO_TP, &cfg, &seq);
    assert!(
        ds.iter().any(|d| matches!(d, Decision::Preempt { .. })),
        "the sequence must preempt: {ds:#?}"
    );
    assert!(
        ds.iter()
            .any(|d| matches!(d, Decision::Place(p) if p.gpus.len() == 2)),
        "a TP2 replica must be placed"
    );
    for policy in PolicyName::ALL {
        let cfg = EngineConfig {
            policy,
            ..Default::default()
        };
        for seed in 0..4 {
            run_sequence(SCENARIO_TP, &cfg, &ops(seed, 30, &[0, 1, 2], 5));
        }
    }
}

#[test]
fn every_sharing_mode_round_trips_through_places_and_releases() {
    for sharing in SharingPolicy::ALL {
        let cfg = EngineConfig {
            sharing,
            ..Default::default()
        };
        // Replicas on MIG instances are released like any other: an emptied MIG GPU keeps its
        // layout on both sides. (Preemption off MIG instances:
        // `pods_on_mig_instances_are_released_and_preempted_identically`.)
        let mut mig = MigCounts::default();
        for seed in 0..6 {
            for (len, services, every) in [(40, &[0, 1, 3][..], 4), (60, &[0, 1, 2, 3][..], 3)] {
                let (_, c) = run_sequence_counted(SCENARIO, &cfg, &ops(seed, len, services, every));
                mig.released += c.released;
                mig.preempted += c.preempted;
            }
        }
        if sharing == SharingPolicy::Mig {
            assert!(
                mig.released > 0,
                "no pod released off a MIG instance: {mig:?}"
            );
        }
    }
}

/// A MIG GPU whose pods have all left keeps its layout in the cluster state, and in live's
/// objects too: the node annotation `gpusched.io/mig-layout.<gpu>` the controller writes when a
/// placement configures the layout reads back into the identical state.
#[test]
fn an_empty_mig_gpu_keeps_its_layout_in_live() {
    let sc = gpusched_sim::scenario::load_str(SCENARIO, "<conformance>", ".".into(), &[]).unwrap();
    let cfg = EngineConfig {
        sharing: SharingPolicy::Mig,
        ..Default::default()
    };
    let mut state = ClusterState::new(sim_nodes(&sc));
    let mut e = Engine::new(cfg, sc.catalog.clone(), state.len() as u32).unwrap();
    let w = sc.scenario.services[0].workload();
    let Decision::Place(p) = e.place(&state, &w, 1, false) else {
        panic!("fits")
    };
    assert!(
        p.mig.as_ref().is_some_and(|m| m.reconfigure),
        "a MIG re-layout"
    );
    // Live's side: the objects the controller writes for the placement, then the pod deleted.
    let mut live_nodes = k8s_nodes(&sc, NOW);
    let mut live_pods = Vec::new();
    let pending = pending_for(&sc, 0, 1);
    bind(
        &sc,
        &mut state,
        &mut live_nodes,
        &mut live_pods,
        &p,
        &w,
        pending,
    );
    assert_eq!(build(&sc, &live_nodes, &live_pods), state);
    state.release(p.node_index, 1);
    live_pods.clear();
    let layout = &state[p.node_index].gpus[p.gpu as usize].mig;
    assert!(!layout.is_empty(), "the simulator keeps the layout");
    let back = build(&sc, &live_nodes, &live_pods);
    assert_eq!(&back[p.node_index].gpus[p.gpu as usize].mig, layout);
    assert_eq!(back, state);
    // And the state written out through the codec reads back into itself.
    let service_of = [(1u64, 0usize)].into();
    let (n, pods) = objects_of_state(&sc, &state, &service_of);
    assert!(pods.is_empty());
    assert_eq!(build(&sc, &n, &pods), state);
    // A placement that is not a MIG instance on the empty GPU clears the record on both sides.
    let cfg = EngineConfig::default();
    let mut e = Engine::new(cfg, sc.catalog.clone(), state.len() as u32).unwrap();
    let Decision::Place(mut q) = e.place(&state, &w, 2, false) else {
        panic!("fits")
    };
    q.node = p.node.clone();
    q.node_index = p.node_index;
    q.gpu = p.gpu;
    q.gpus = vec![p.gpu];
    q.node_config = None;
    bind(
        &sc,
        &mut state,
        &mut live_nodes,
        &mut live_pods,
        &q,
        &w,
        pending_for(&sc, 0, 2),
    );
    assert!(state[p.node_index].gpus[p.gpu as usize].mig.is_empty());
    assert_eq!(build(&sc, &live_nodes, &live_pods), state);
}

/// Records every action and refuses every binding (a 409, as when the pod was bound elsewhere).
struct RefusesBindings(std::sync::Mutex<Vec<Action>>);

impl Applier for RefusesBindings {
    async fn apply(&self, a: &Action) -> Result<(), ApplyError> {
        self.0.lock().unwrap().push(a.clone());
        if matches!(a, Action::BindPod { .. }) {
            return Err(ApplyError::Api {
                what: a.describe(),
                code: 409,
                message: "Operation cannot be fulfilled: pod is already assigned".into(),
            });
        }
        Ok(())
    }
    async fn node_capacity(
        &self,
        _node: &str,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>, ApplyError> {
        Ok(None)
    }
    fn is_dry_run(&self) -> bool {
        true
    }
}

/// The controller records a MIG re-layout on the node before it binds, and when the binding
/// fails it restores the node's previous record (none): the write is undone.
#[test]
fn a_failed_binding_undoes_its_mig_layout_record() {
    let sc = gpusched_sim::scenario::load_str(SCENARIO, "<conformance>", ".".into(), &[]).unwrap();
    let cfg = EngineConfig {
        sharing: SharingPolicy::Mig,
        ..Default::default()
    };
    let k8s = k8s_nodes(&sc, NOW);
    let scope = Scope::new(
        ["ml".to_string()],
        "nvidia-device-plugin",
        "device-plugin-config",
    )
    .unwrap();
    let applier = RefusesBindings(Default::default());
    let mut ctl = Controller::new(
        cfg,
        sc.catalog.clone(),
        k8s.len() as u32,
        scope,
        applier,
        None,
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report =
        rt.block_on(ctl.reconcile(&k8s, &pending_pods(&sc, &[0]), Some(&plugin_config()), NOW));
    assert!(
        report.errors.iter().any(|e| e.contains("already assigned")),
        "{:?}",
        report.errors
    );
    let actions = ctl.applier.0.lock().unwrap().clone();
    let layout_patches: Vec<(usize, &std::collections::BTreeMap<String, Option<String>>)> = actions
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match a {
            Action::PatchNodeMeta { annotations, .. }
                if annotations
                    .keys()
                    .any(|k| k.starts_with(keys::NODE_MIG_LAYOUT_PREFIX)) =>
            {
                Some((i, annotations))
            }
            _ => None,
        })
        .collect();
    let bind_at = actions
        .iter()
        .position(|a| matches!(a, Action::BindPod { .. }))
        .expect("a binding was tried");
    assert_eq!(layout_patches.len(), 2, "{actions:#?}");
    let ((before, written), (after, undone)) = (layout_patches[0], layout_patches[1]);
    assert!(before < bind_at && bind_at < after, "{actions:#?}");
    assert_eq!(written.len(), 1);
    let (key, value) = written.iter().next().unwrap();
    assert!(
        value.as_deref().is_some_and(|v| v.contains('@')),
        "{value:?}"
    );
    assert_eq!(undone, &[(key.clone(), None)].into());
}

/// Pods on MIG instances released and preempted (low-priority replicas fill every GPU's MIG
/// instances, high-priority ones of the same size evict them), in every placement policy: the
/// views agree before every decision, the decisions are equal, and every state (emptied MIG
/// GPUs included) reads back from the objects live writes.
#[test]
fn pods_on_mig_instances_are_released_and_preempted_identically() {
    let mig = EngineConfig {
        sharing: SharingPolicy::Mig,
        ..Default::default()
    };
    let mut seq: Vec<Op> = (0..20).map(|_| Op::Place(0)).collect();
    seq.extend([
        Op::Place(3),
        Op::Place(3),
        Op::Release(0),
        Op::Release(5),
        Op::Place(2),
        Op::Place(3),
        Op::Release(2),
        Op::Place(0),
        Op::Place(3),
    ]);
    let (ds, c) = run_sequence_counted(SCENARIO_TP, &mig, &seq);
    assert!(c.preempted > 0 && c.released > 0, "{c:?}: {ds:#?}");
    let mut total = MigCounts::default();
    for policy in PolicyName::ALL {
        let cfg = EngineConfig {
            policy,
            ..mig.clone()
        };
        for seed in 0..4 {
            let (_, c) = run_sequence_counted(SCENARIO_TP, &cfg, &ops(seed, 60, &[0, 0, 2, 3], 4));
            total.released += c.released;
            total.preempted += c.preempted;
        }
    }
    assert!(total.preempted > 0 && total.released > 0, "{total:?}");
}
