//! A Kubernetes Indexed Job that runs a sweep on a cluster: `completions = N` pods, pod `i` runs
//! `gpusched sweep SPEC --shard i/N` (the index from `JOB_COMPLETION_INDEX`, which the Job
//! controller sets in Indexed mode) and writes its part to a shared volume (a PVC); afterwards
//! `gpusched sweep merge` on that volume gives the single-machine result.
//!
//! Emitted as JSON, which `kubectl apply -f` takes as readily as YAML and which needs no YAML
//! crate (serde_yaml is deprecated).

use serde_json::{json, Value};

/// What the manifest needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct JobParams {
    /// The Job's name (a DNS label: the sweep's name, lower-cased).
    pub name: String,
    /// Container image with `gpusched` on its PATH and the spec at `spec_path`.
    pub image: String,
    /// The spec's path inside the image (relative to its working directory).
    pub spec_path: String,
    pub shards: usize,
    pub parallelism: usize,
    /// The PersistentVolumeClaim results go to (ReadWriteMany when pods share nodes).
    pub pvc: String,
    /// Extra arguments for every shard (e.g. `--max-p99-ms 800`).
    pub extra_args: Vec<String>,
}

/// Where the volume is mounted in each pod, and the folder parts are written to.
pub const MOUNT: &str = "/results";

/// Turns a sweep name into a DNS-1123 label (lower case, digits, `-`; at most 52 characters so
/// that pod names with their index suffix stay under 63).
pub fn dns_label(name: &str) -> String {
    let mut s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.truncate(52);
    let s = s.trim_matches('-').to_string();
    if s.is_empty() {
        "gpusched-sweep".into()
    } else {
        s
    }
}

/// The Job manifest.
pub fn job_manifest(p: &JobParams) -> Value {
    let name = dns_label(&p.name);
    let out = format!("{MOUNT}/{name}");
    let mut args = vec![
        "sweep".to_string(),
        p.spec_path.clone(),
        "--shard".into(),
        format!("$(JOB_COMPLETION_INDEX)/{}", p.shards),
        "--out".into(),
        out,
    ];
    args.extend(p.extra_args.iter().cloned());
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "labels": { "app.kubernetes.io/name": "gpusched", "app.kubernetes.io/component": "sweep" }
        },
        "spec": {
            "completionMode": "Indexed",
            "completions": p.shards,
            "parallelism": p.parallelism.clamp(1, p.shards.max(1)),
            // A failed shard is retried on its own; the other indexes keep their results.
            "backoffLimitPerIndex": 2,
            "maxFailedIndexes": 0,
            "template": {
                "metadata": { "labels": { "app.kubernetes.io/name": "gpusched", "app.kubernetes.io/component": "sweep" } },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "sweep",
                        "image": p.image,
                        "command": ["gpusched"],
                        "args": args,
                        // One simulation per core: rayon sizes its pool to the CPU limit.
                        "resources": {
                            "requests": { "cpu": "2", "memory": "2Gi" },
                            "limits": { "cpu": "2", "memory": "4Gi" }
                        },
                        "volumeMounts": [{ "name": "results", "mountPath": MOUNT }]
                    }],
                    "volumes": [{
                        "name": "results",
                        "persistentVolumeClaim": { "claimName": p.pvc }
                    }]
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_dns_safe() {
        assert_eq!(dns_label("Fleet_Sweep 2026"), "fleet-sweep-2026");
        assert_eq!(dns_label("__"), "gpusched-sweep");
    }
}
