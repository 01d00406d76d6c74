//! What a user is told about a pod that waits (issue 19): the message counts every node's
//! refusal as kube-scheduler's does, the condition's `lastTransitionTime` is the transition's,
//! and a new leader does not repeat a FailedScheduling the pod already carries. Plus the CLI's
//! refusal of a Lease in kube-system.

mod support;

use gpusched_live::controller::Controller;
use gpusched_live::dryrun::DryRunApplier;
use gpusched_live::testutil::{gpu_node, gpusched_pod, pending_pod};
use gpusched_policies::{EngineConfig, GpuCatalog};
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn controller() -> Controller<DryRunApplier> {
    let scope = support::scope();
    Controller::new(
        EngineConfig::default(),
        GpuCatalog::default(),
        3,
        scope.clone(),
        DryRunApplier::new(scope, Box::new(std::io::sink())),
        None,
    )
    .unwrap()
}

fn printed(c: &Controller<DryRunApplier>) -> Vec<String> {
    c.applier.printed.lock().unwrap().clone()
}

/// Two A100-40GB nodes, full, and one free H100 that is cordoned: a 60 GB pod fits nowhere,
/// for two different reasons. The old message named one node's figure ("most free on one GPU
/// is 40 GB") although 80 GB GPUs were free.
fn cluster() -> (Vec<Node>, Vec<Pod>) {
    let mut h100 = gpu_node("h100-1", "NVIDIA-H100-80GB-HBM3", 1);
    h100.spec.as_mut().unwrap().unschedulable = Some(true);
    let nodes = vec![
        gpu_node("a100-1", "NVIDIA-A100-SXM4-40GB", 1),
        gpu_node("a100-2", "NVIDIA-A100-SXM4-40GB", 1),
        h100,
    ];
    let pods = vec![
        gpusched_pod("ml", "big-a", "big", "a100-1", 0, 1, 100, 40.0, "large"),
        gpusched_pod("ml", "big-b", "big", "a100-2", 0, 2, 100, 40.0, "large"),
        pending_pod("ml", "huge", 60.0),
    ];
    (nodes, pods)
}

fn condition_message(text: &str) -> String {
    let body = text.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["status"]["conditions"][0]["message"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_message_counts_every_node_and_a_new_leader_does_not_repeat_it() {
    let (nodes, pods) = cluster();
    let mut first = controller();
    first.reconcile(&nodes, &pods, None, 1000.0).await;
    let out = printed(&first);
    let cond = out
        .iter()
        .find(|t| t.contains("/pods/huge/status"))
        .expect("PodScheduled=False");
    let msg = condition_message(cond);
    assert_eq!(
        msg,
        "0/3 nodes are available: 2 Insufficient GPU memory, 1 node(s) were unschedulable."
    );
    assert!(!msg.contains("most free"), "{msg}");
    let events = |c: &Controller<DryRunApplier>| {
        printed(c)
            .iter()
            .filter(|t| t.contains("FailedScheduling"))
            .count()
    };
    assert_eq!(events(&first), 1);
    // The same leader says it once per reason.
    first.reconcile(&nodes, &pods, None, 1005.0).await;
    assert_eq!(events(&first), 1);

    // A new leader reads the pod as the API server has it now: the condition is there.
    let mut pods2 = pods.clone();
    let huge = pods2
        .iter_mut()
        .find(|p| p.metadata.name.as_deref() == Some("huge"))
        .unwrap();
    huge.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
        type_: "PodScheduled".into(),
        status: "False".into(),
        reason: Some("Unschedulable".into()),
        message: Some(msg.clone()),
        last_transition_time: Some(Time("2026-01-01T00:00:00Z".parse().unwrap())),
        ..Default::default()
    }]);
    let mut second = controller();
    second.reconcile(&nodes, &pods2, None, 2000.0).await;
    assert_eq!(events(&second), 0, "{:?}", printed(&second));
    assert!(!printed(&second).iter().any(|t| t.contains("/status")));

    // When the reason changes the user is told again, and the transition keeps its time: the
    // pod has been unschedulable since then, only the message is new.
    let mut nodes3 = nodes.clone();
    nodes3[2].spec.as_mut().unwrap().unschedulable = None;
    nodes3[2].spec.as_mut().unwrap().taints = Some(vec![k8s_openapi::api::core::v1::Taint {
        key: "maintenance".into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    }]);
    second.reconcile(&nodes3, &pods2, None, 2010.0).await;
    let out = printed(&second);
    let cond = out
        .iter()
        .find(|t| t.contains("/pods/huge/status"))
        .unwrap();
    assert!(condition_message(cond).contains("1 node(s) had untolerated taint {maintenance: }"));
    assert!(
        cond.contains("\"lastTransitionTime\":\"2026-01-01T00:00:00Z\""),
        "{cond}"
    );
    assert_eq!(events(&second), 1);
}

#[tokio::test]
async fn a_first_transition_is_stamped_when_it_happens() {
    let (nodes, pods) = cluster();
    let mut c = controller();
    c.reconcile(&nodes, &pods, None, 1_000_000.0).await;
    let out = printed(&c);
    let cond = out
        .iter()
        .find(|t| t.contains("/pods/huge/status"))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(cond.lines().last().unwrap()).unwrap();
    let at: k8s_openapi::jiff::Timestamp = v["status"]["conditions"][0]["lastTransitionTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // Not before the reconcile began (whole seconds, as the API stores condition times).
    assert!(at.as_second() >= 1_000_000, "{at}");
}

#[test]
fn the_lease_is_never_placed_in_kube_system() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        a: gpusched_live::cmd::ControllerArgs,
    }
    let cli = Cli::parse_from(["x", "--namespace", "ml", "--lease-namespace", "kube-system"]);
    match gpusched_live::cmd::controller(&cli.a) {
        Err(gpusched_live::cmd::CmdError::BadInput(m)) => assert!(m.contains("kube-system"), "{m}"),
        other => panic!("accepted: {other:?}"),
    }
}
