//! The message a pod that waits is given, as kube-scheduler words it:
//! `0/5 nodes are available: 3 Insufficient GPU memory, 2 node(s) had untolerated taint {…}.`
//!
//! Every node counts once, under the first filter that refused it; the counts cover all nodes,
//! so the message never generalises from one node's figures (a per-node detail such as "most
//! free on one GPU is 40 GB" is true of that node only, and misleads when bigger GPUs are
//! refused for another reason).

use std::collections::BTreeMap;

/// The summary text of an engine filter plugin's refusal, in kube-scheduler's style.
pub fn plugin_reason(plugin: &str) -> String {
    match plugin {
        "NodeSchedulable" => "node(s) were unschedulable".into(),
        "GpuAffinity" => "node(s) didn't match the pod's GPU model requirement".into(),
        "MemoryFits" => "Insufficient GPU memory".into(),
        "UtilisationBelow" => "node(s) had every GPU with room above the utilisation limit".into(),
        "SharingFits" => "node(s) had no free GPU slot for the pod's sharing mode".into(),
        other => format!("node(s) were refused by {other}"),
    }
}

/// `0/N nodes are available: <count> <reason>, …` over every node's refusal (`None`: the node
/// passed every filter). Most frequent reason first, then alphabetical.
pub fn summarise(total: usize, refusals: impl IntoIterator<Item = Option<String>>) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in refusals.into_iter().flatten() {
        *counts.entry(r).or_default() += 1;
    }
    if counts.is_empty() {
        return format!("0/{total} nodes are available.");
    }
    let mut v: Vec<(String, usize)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let parts: Vec<String> = v.iter().map(|(r, n)| format!("{n} {r}")).collect();
    format!("0/{total} nodes are available: {}.", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_node_once_per_reason() {
        let m = summarise(
            6,
            [
                Some(plugin_reason("MemoryFits")),
                Some("node(s) had untolerated taint {node.kubernetes.io/not-ready: }".into()),
                Some(plugin_reason("MemoryFits")),
                Some(plugin_reason("MemoryFits")),
                Some("node(s) had untolerated taint {node.kubernetes.io/not-ready: }".into()),
                Some(plugin_reason("NodeSchedulable")),
            ],
        );
        assert_eq!(
            m,
            "0/6 nodes are available: 3 Insufficient GPU memory, 2 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable."
        );
        assert_eq!(summarise(0, []), "0/0 nodes are available.");
    }
}
