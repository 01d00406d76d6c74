//! Cross-world rollout conformance (issue 19): the same rollout — the shipped
//! `reconfig-strategies` scenario's `[reconfig]` section, its A100 pool's eight nodes going from
//! 2 to 4 time-sliced replicas per GPU — run by the simulator's executor (`gpusched_sim::rollout`)
//! and by live mode's (`gpusched_live::rollout_exec`, real kube clients against the fake API
//! server with the device plugin played by a task) issues the identical sequence of rollout
//! machine commands, ends in the same outcome and leaves the nodes on the same labels. Every
//! strategy, an unhealthy canary (rolled back) and a gated rollout held until the gate opens.
//!
//! The two worlds measure different things (simulated windows, Prometheus): live's observer
//! replays the readings the simulator's executor gave its machine (gate samples, watched
//! windows), so what is compared is what each world *does* with the same readings. The
//! simulator runs every attempt until the breaker stops it; live runs one attempt per reconcile,
//! so the first attempt is compared (a hold ends a live run: the next run goes on, as the next
//! reconcile would).

mod support;

use gpusched_live::apply::KubeApplier;
use gpusched_live::keys;
use gpusched_live::rollback::{self, Rollout, RolloutOutcome, RolloutTiming};
use gpusched_live::rollout_exec::{self, Observer};
use gpusched_live::testutil::{gpu_node, gpusched_pod};
use gpusched_policies::rollout::machine::{Command, Event, GateSample, Outcome};
use gpusched_policies::rollout::CircuitBreaker;
use gpusched_policies::sharing::NodeSharing;
use gpusched_sim::RunResult;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use support::apiserver::FakeApiServer;
use support::scope;

const PLUGIN_NS: &str = "nvidia-device-plugin";
const PLUGIN_CM: &str = "device-plugin-config";
const POOL_NODES: usize = 8;

fn ts(replicas: u8) -> NodeSharing {
    NodeSharing::TimeSlicing { replicas }
}

/// The shipped scenario, scaled down as the simulator's own rollout tests do: the change falls
/// due at 00:30; the gate's first window opens at 02:00.
fn simulate(sets: &[&str]) -> (gpusched_sim::LoadedScenario, RunResult) {
    let mut all = vec![
        "duration_h=2.5",
        "traffic.scale=0.2",
        "reconfig.qps_gate.qps_scale=0.2",
        "reconfig.trigger.at_s=1800",
        "reconfig.params.canary_watch_s=300",
    ];
    all.extend_from_slice(sets);
    let all: Vec<String> = all.iter().map(|s| s.to_string()).collect();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("scenarios/reconfig-strategies.toml");
    let sc = gpusched_sim::load_file(&path, &all).unwrap_or_else(|e| panic!("{e}"));
    let r = gpusched_sim::run(&sc, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"));
    (sc, r)
}

/// Each node's label at the end of the simulated run: its last `apply_config` line's.
fn sim_labels(r: &RunResult) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = (1..=POOL_NODES)
        .map(|i| (format!("a100-{i}"), ts(2).config_key()))
        .collect();
    for d in &r.decisions {
        let v = serde_json::to_value(d).unwrap();
        if v["decision"] == "rollout" && v["step"] == "apply_config" {
            out.insert(
                v["node"].as_str().unwrap().to_string(),
                v["label"].as_str().unwrap().to_string(),
            );
        }
    }
    out
}

/// Replays the readings the simulator's machine was given, in order.
struct Replay {
    gates: Mutex<VecDeque<GateSample>>,
    health: Mutex<VecDeque<(f64, f64)>>,
}

impl Replay {
    fn of(transcript: &[(Event, Command)]) -> Self {
        let mut gates = VecDeque::new();
        let mut health = VecDeque::new();
        for (ev, _) in transcript {
            match ev {
                Event::Gate(s) => gates.push_back(s.clone()),
                Event::Health { error_rate, p99_ms } => health.push_back((*error_rate, *p99_ms)),
                _ => {}
            }
        }
        Self {
            gates: Mutex::new(gates),
            health: Mutex::new(health),
        }
    }
}

impl Observer for Replay {
    async fn gate_sample(&self) -> GateSample {
        self.gates
            .lock()
            .unwrap()
            .pop_front()
            .expect("live asks the gate no more often than the simulator")
    }
    async fn watch(&self, _seconds: f64) -> Result<(f64, f64), String> {
        self.health
            .lock()
            .unwrap()
            .pop_front()
            .ok_or_else(|| "no reading left".to_string())
    }
}

/// Plays the device plugin: a node advertises `gpus × replicas` of the ConfigMap entry its
/// label names (what the real plugin does after it restarts).
fn emulate_device_plugin(api: &FakeApiServer) -> tokio::task::JoinHandle<()> {
    let api = api.clone();
    tokio::spawn(async move {
        loop {
            for n in api.list("nodes") {
                let mut node: Node = serde_json::from_value(n).unwrap();
                let labels = node.metadata.labels.clone().unwrap_or_default();
                let gpus: u32 = labels[keys::GPU_COUNT].parse().unwrap();
                let replicas = labels
                    .get(keys::DEVICE_PLUGIN_CONFIG)
                    .and_then(|k| {
                        let cm = api.get("configmaps", PLUGIN_NS, PLUGIN_CM)?;
                        cm["data"][k.as_str()].as_str().map(str::to_string)
                    })
                    .and_then(|e| {
                        e.lines()
                            .find_map(|l| l.trim().strip_prefix("replicas:"))
                            .and_then(|n| n.trim().parse::<u32>().ok())
                    })
                    .unwrap_or(1);
                let want = (gpus * replicas).to_string();
                let cap = node.status.as_mut().unwrap().capacity.as_mut().unwrap();
                if cap[keys::GPU_RESOURCE].0 != want {
                    cap.insert(keys::GPU_RESOURCE.into(), Quantity(want));
                    api.apply(&node);
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

/// The A100 pool as Kubernetes objects: eight 8-GPU nodes labelled with the 2-replica config
/// (its entry in the plugin's ConfigMap), one gpusched pod each; their planned rollouts to the
/// 4-replica config.
async fn cluster() -> (FakeApiServer, Vec<Rollout>) {
    let api = FakeApiServer::start().await;
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(PLUGIN_CM.into()),
            namespace: Some(PLUGIN_NS.into()),
            ..Default::default()
        },
        data: Some([(ts(2).config_key(), ts(2).device_plugin_yaml(0))].into()),
        ..Default::default()
    };
    api.apply(&cm);
    let mut rollouts = Vec::new();
    for i in 1..=POOL_NODES {
        let name = format!("a100-{i}");
        let mut n = gpu_node(&name, "NVIDIA-A100-SXM4-40GB", 8);
        n.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(keys::DEVICE_PLUGIN_CONFIG.into(), ts(2).config_key());
        n.status.as_mut().unwrap().capacity =
            Some([(keys::GPU_RESOURCE.to_string(), Quantity("16".into()))].into());
        let pod: Pod = gpusched_pod(
            "ml",
            &format!("chat-{i}"),
            "chat",
            &name,
            0,
            i as u64,
            50,
            8.0,
            "medium",
        );
        api.apply(&n);
        api.apply(&pod);
        rollouts.push(
            rollback::plan_rollout(
                &n,
                Some(&cm),
                Some(&ts(4).config_key()),
                Some(&ts(4).device_plugin_yaml(0)),
                &[pod],
                &scope(),
                1000.0,
            )
            .unwrap()
            .unwrap(),
        );
    }
    (api, rollouts)
}

fn label_of(api: &FakeApiServer, node: &str) -> String {
    api.get("nodes", "", node).unwrap()["metadata"]["labels"][keys::DEVICE_PLUGIN_CONFIG]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Runs the scenario with `sets` in both worlds and compares them; returns the first attempt's
/// commands.
async fn conform(sets: &[&str]) -> Vec<Command> {
    let (sc, sim) = simulate(sets);
    let transcript = sim
        .rollout_transcripts
        .first()
        .expect("the rollout fell due")
        .clone();
    let sim_commands: Vec<Command> = transcript.iter().map(|(_, c)| c.clone()).collect();
    let sim_outcome = match sim_commands.last() {
        Some(Command::Finished { outcome }) => outcome.clone(),
        other => panic!("the first attempt did not finish: {other:?}"),
    };

    let reconfig = sc.scenario.reconfig.clone().unwrap();
    let plugin_restart_s = sc.scenario.disruption.plugin_restart_s;
    let cfg = gpusched_sim::rollout::machine_config(&reconfig, plugin_restart_s);
    let (api, rollouts) = cluster().await;
    let plugin = emulate_device_plugin(&api);
    let ap = KubeApplier {
        client: api.client(),
        scope: scope(),
    };
    let timing = RolloutTiming {
        evict_retries: 0,
        retry_delay: Duration::from_millis(10),
        // The simulator's plugin wait: its restart plus the readiness probe's give-up time.
        plugin_timeout: Duration::from_secs_f64(cfg.plugin_timeout_s),
        poll: Duration::from_millis(10),
    };
    let observer = Replay::of(&transcript);
    let mut breaker = CircuitBreaker::new(reconfig.breaker.clone());
    let mut live_commands = Vec::new();
    let live_outcome = loop {
        let run = rollout_exec::run(
            &ap,
            &scope(),
            &mut breaker,
            cfg.clone(),
            &rollouts,
            &timing,
            &observer,
            1000.0,
        )
        .await;
        live_commands.extend(run.commands);
        match run.outcome {
            // The next reconcile asks the gate again.
            RolloutOutcome::Held { .. } => continue,
            other => break other,
        }
    };
    plugin.abort();

    assert_eq!(
        live_commands.len(),
        sim_commands.len(),
        "{sets:?}: live {live_commands:#?}\nsimulator {sim_commands:#?}"
    );
    for (k, (l, s)) in live_commands.iter().zip(&sim_commands).enumerate() {
        assert_eq!(l, s, "{sets:?}: command {k} differs");
    }
    match (&sim_outcome, &live_outcome) {
        (Outcome::Done, RolloutOutcome::Done) => {}
        (
            Outcome::RolledBack { error, .. },
            RolloutOutcome::RolledBack {
                error: live_error,
                rollback_errors,
            },
        ) => {
            assert_eq!(error, live_error, "{sets:?}");
            assert!(rollback_errors.is_empty(), "{rollback_errors:?}");
        }
        other => panic!("{sets:?}: outcomes differ: {other:?}"),
    }
    let sim_labels = sim_labels(&sim);
    for (node, label) in &sim_labels {
        assert_eq!(&label_of(&api, node), label, "{sets:?}: {node}");
    }
    // Every node live touched is back in service, its marker cleared.
    for node in sim_labels.keys() {
        let n = api.get("nodes", "", node).unwrap();
        assert_ne!(n["spec"]["unschedulable"], true, "{sets:?}: {node}");
        assert!(
            n["metadata"]["annotations"]
                .get(keys::ROLLOUT_IN_PROGRESS)
                .is_none(),
            "{sets:?}: {node}"
        );
    }
    sim_commands
}

fn count(cs: &[Command], f: impl Fn(&Command) -> bool) -> usize {
    cs.iter().filter(|c| f(c)).count()
}

#[tokio::test]
async fn every_strategy_issues_the_same_commands_in_both_worlds() {
    for strategy in ["in_place", "rolling", "prewarm", "blue_green", "canary"] {
        let set = format!("reconfig.strategy={strategy}");
        let cs = conform(&[&set, "reconfig.gate=false"]).await;
        assert_eq!(
            cs.last(),
            Some(&Command::Finished {
                outcome: Outcome::Done
            }),
            "{strategy}"
        );
        let applied = cs
            .iter()
            .filter_map(|c| match c {
                Command::ApplyConfig { targets, .. } => Some(targets.len()),
                _ => None,
            })
            .sum::<usize>();
        assert_eq!(applied, POOL_NODES, "{strategy}: every node once");
        let watches = count(&cs, |c| matches!(c, Command::Watch { .. }));
        let cordons = count(&cs, |c| matches!(c, Command::Cordon { .. }));
        match strategy {
            "in_place" => assert_eq!((cordons, watches), (0, 0)),
            "blue_green" => assert_eq!((cordons, watches), (2, 2)),
            "canary" => assert_eq!(watches, 1),
            _ => assert_eq!((cordons, watches), (POOL_NODES, 0), "{strategy}"),
        }
    }
}

#[tokio::test]
async fn an_unhealthy_canary_is_rolled_back_alike_in_both_worlds() {
    let cs = conform(&[
        "reconfig.strategy=canary",
        "reconfig.gate=false",
        "reconfig.params.health.max_p99_ms=1",
    ])
    .await;
    assert!(matches!(
        cs.last(),
        Some(Command::Finished {
            outcome: Outcome::RolledBack { error, .. }
        }) if error.contains("canary watch")
    ));
    assert_eq!(
        count(&cs, |c| matches!(
            c,
            Command::ApplyConfig { rollback: true, .. }
        )),
        1,
        "the canary node, restored as a rollback batch"
    );
}

#[tokio::test]
async fn a_gated_rollout_holds_alike_in_both_worlds_until_the_gate_opens() {
    let cs = conform(&["reconfig.strategy=rolling", "reconfig.gate=true"]).await;
    let holds = count(&cs, |c| matches!(c, Command::Hold { .. }));
    assert!(holds > 10, "held for a while: {holds}");
    let first_acquire = cs
        .iter()
        .position(|c| matches!(c, Command::Acquire))
        .unwrap();
    assert!(
        cs[..first_acquire]
            .iter()
            .all(|c| matches!(c, Command::CheckGate | Command::Hold { .. })),
        "nothing before the gate opens"
    );
    assert_eq!(
        cs.last(),
        Some(&Command::Finished {
            outcome: Outcome::Done
        })
    );
}
