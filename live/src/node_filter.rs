//! The node filters a real cluster adds to the engine's: taints and readiness.
//!
//! The engine decides from GPU views, which know nothing of taints; kube-scheduler would never
//! bind a pod onto a node whose taints it does not tolerate, nor onto a node that is not Ready.
//! These are kube-scheduler's `TaintToleration` filter (NoSchedule and NoExecute taints must be
//! tolerated; PreferNoSchedule only scores) and the readiness the node lifecycle controller
//! expresses as taints: a node whose `Ready` condition is `False` (or missing) is treated as
//! tainted `node.kubernetes.io/not-ready:NoSchedule`, and `Unknown` as
//! `node.kubernetes.io/unreachable:NoSchedule`, so a node is refused even in the seconds before
//! the controller has added those taints, and a pod that tolerates them (a DaemonSet's) is not.
//! `spec.unschedulable` stays the engine's own `NodeSchedulable` filter (the view's `cordoned`).
//!
//! The controller runs these before the engine's filters: a node refused here is shown to the
//! engine as unavailable for that one pod.

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};

pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Why a node cannot take a pod, in kube-scheduler's words (the unschedulable message counts
/// nodes per distinct text).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Refusal(pub String);

/// `Toleration.ToleratesTaint`: an empty effect matches every effect; an empty key (only valid
/// with `Exists`) matches every key; `Exists` ignores the value, `Equal` (or no operator)
/// compares it.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if e != taint.effect {
            return false;
        }
    }
    if let Some(k) = t.key.as_deref().filter(|k| !k.is_empty()) {
        if k != taint.key {
            return false;
        }
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        // Operators this scheduler does not know never tolerate (the safe reading).
        _ => false,
    }
}

/// The node's taints plus those its readiness implies.
pub fn effective_taints(node: &Node) -> Vec<Taint> {
    let mut taints: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.as_str());
    let implied = match ready {
        Some("True") => None,
        Some("Unknown") => Some(UNREACHABLE),
        _ => Some(NOT_READY),
    };
    if let Some(key) = implied {
        if !taints
            .iter()
            .any(|t| t.key == key && t.effect == "NoSchedule")
        {
            taints.push(Taint {
                key: key.into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            });
        }
    }
    taints
}

/// The pod's tolerations.
pub fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
}

/// `TaintToleration` (with readiness as taints): the first NoSchedule/NoExecute taint the pod
/// does not tolerate, as kube-scheduler reports it.
pub fn admits(taints: &[Taint], tolerations: &[Toleration]) -> Result<(), Refusal> {
    for taint in taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
    {
        if !tolerations.iter().any(|t| tolerates(t, taint)) {
            return Err(Refusal(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.as_deref().unwrap_or("")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect: effect.into(),
            ..Default::default()
        }
    }

    fn tol(key: &str, op: &str, value: Option<&str>, effect: &str) -> Toleration {
        Toleration {
            key: (!key.is_empty()).then(|| key.into()),
            operator: (!op.is_empty()).then(|| op.into()),
            value: value.map(Into::into),
            effect: (!effect.is_empty()).then(|| effect.into()),
            ..Default::default()
        }
    }

    fn node(ready: Option<&str>, taints: Vec<Taint>) -> Node {
        Node {
            spec: Some(NodeSpec {
                taints: Some(taints),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: ready.map(|s| {
                    vec![NodeCondition {
                        type_: "Ready".into(),
                        status: s.into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn toleration_matching_follows_kubernetes() {
        let gpu = taint("nvidia.com/gpu", Some("present"), "NoSchedule");
        assert!(tolerates(&tol("nvidia.com/gpu", "Exists", None, ""), &gpu));
        assert!(tolerates(
            &tol("nvidia.com/gpu", "Equal", Some("present"), "NoSchedule"),
            &gpu
        ));
        assert!(
            tolerates(&tol("nvidia.com/gpu", "", Some("present"), ""), &gpu),
            "no operator means Equal"
        );
        assert!(!tolerates(
            &tol("nvidia.com/gpu", "Equal", Some("absent"), ""),
            &gpu
        ));
        assert!(
            !tolerates(&tol("nvidia.com/gpu", "Exists", None, "NoExecute"), &gpu),
            "effect must match"
        );
        assert!(
            tolerates(&tol("", "Exists", None, ""), &gpu),
            "empty key + Exists tolerates everything"
        );
        assert!(!tolerates(&tol("other", "Exists", None, ""), &gpu));
        assert!(!tolerates(
            &tol("nvidia.com/gpu", "Gt", Some("1"), ""),
            &gpu
        ));
    }

    #[test]
    fn only_hard_effects_refuse() {
        let soft = [taint("x", None, "PreferNoSchedule")];
        assert!(admits(&soft, &[]).is_ok());
        let hard = [taint("dedicated", Some("infer"), "NoExecute")];
        assert_eq!(
            admits(&hard, &[]).unwrap_err().0,
            "node(s) had untolerated taint {dedicated: infer}"
        );
        assert!(admits(
            &hard,
            &[tol("dedicated", "Equal", Some("infer"), "NoExecute")]
        )
        .is_ok());
    }

    #[test]
    fn readiness_is_a_taint() {
        assert!(admits(&effective_taints(&node(Some("True"), vec![])), &[]).is_ok());
        for (ready, key) in [
            (Some("False"), NOT_READY),
            (None, NOT_READY),
            (Some("Unknown"), UNREACHABLE),
        ] {
            let t = effective_taints(&node(ready, vec![]));
            let e = admits(&t, &[]).unwrap_err();
            assert!(e.0.contains(key), "{ready:?}: {e:?}");
            // The DefaultTolerationSeconds tolerations every pod gets are NoExecute: not enough.
            assert!(admits(&t, &[tol(key, "Exists", None, "NoExecute")]).is_err());
            assert!(admits(&t, &[tol(key, "Exists", None, "NoSchedule")]).is_ok());
        }
        // The lifecycle controller's own taint is not doubled.
        let t = effective_taints(&node(
            Some("False"),
            vec![taint(NOT_READY, None, "NoSchedule")],
        ));
        assert_eq!(t.len(), 1);
    }
}
