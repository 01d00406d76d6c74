//! A Kubernetes Indexed Job that runs a sweep on a cluster: `completions = N` pods, pod `i` runs
//! `gpusched sweep SPEC --shard i/N` (the index from `JOB_COMPLETION_INDEX`, which the Job
//! controller sets in Indexed mode) and writes its part to a shared volume (a PVC); afterwards
//! `gpusched sweep merge` on that volume gives the single-machine result.
//!
//! Emitted as JSON, which `kubectl apply -f` takes as readily as YAML and which needs no YAML
//! crate (serde_yaml is deprecated).
//!
//! **Needs Kubernetes 1.29 or later** (1.28 with the `JobBackoffLimitPerIndex` feature gate on):
//! `backoffLimitPerIndex` and `maxFailedIndexes` (beta and on by default since 1.29, GA in 1.33)
//! retry a failed shard on its own. An older API server drops fields it does not know without an
//! error, and the Job would fall back to one job-wide retry budget; the manifest says so in its
//! `gpusched.io/requires` annotation.

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

/// The oldest Kubernetes that runs the Job as written (see the module docs).
pub const REQUIRES: &str = "Kubernetes >= 1.29 (backoffLimitPerIndex, maxFailedIndexes; 1.28 with the JobBackoffLimitPerIndex feature gate)";

/// The spec's path inside the image, from the path typed on this machine. The pod runs in the
/// image's working directory, so only a relative path below it means anything there: an
/// absolute path is taken relative to `cwd` when it lies below it, `./` and `\` are normalised,
/// and a path that leaves the directory (`..`, or an absolute path elsewhere) is refused rather
/// than written into the Job as typed.
pub fn image_spec_path(typed: &std::path::Path, cwd: &std::path::Path) -> Result<String, String> {
    use std::path::Component;
    let rel = if typed.is_absolute() {
        typed.strip_prefix(cwd).map_err(|_| {
            format!(
                "{}: the Job's pods read the spec from the image's working directory; give its path relative to this directory (as it is laid out in the image), e.g. scenarios/sweep-fleet.toml",
                typed.display()
            )
        })?
    } else {
        typed
    };
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().replace('\\', "/")),
            Component::CurDir => {}
            _ => {
                return Err(format!(
                    "{}: a path outside the working directory cannot be found inside the image; give it relative to the directory the image is built from",
                    typed.display()
                ))
            }
        }
    }
    if parts.is_empty() {
        return Err(format!("{}: not a file path", typed.display()));
    }
    Ok(parts.join("/"))
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
            "labels": { "app.kubernetes.io/name": "gpusched", "app.kubernetes.io/component": "sweep" },
            "annotations": { "gpusched.io/requires": REQUIRES }
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

    #[test]
    fn the_spec_path_is_the_one_inside_the_image() {
        use std::path::Path;
        let cwd = Path::new("/home/me/gpusched");
        let ok = |p: &str| image_spec_path(Path::new(p), cwd).unwrap();
        assert_eq!(
            ok("scenarios/sweep-fleet.toml"),
            "scenarios/sweep-fleet.toml"
        );
        assert_eq!(ok("./scenarios/x.toml"), "scenarios/x.toml");
        assert_eq!(ok("/home/me/gpusched/scenarios/x.toml"), "scenarios/x.toml");
        assert!(image_spec_path(Path::new("/tmp/x.toml"), cwd).is_err());
        assert!(image_spec_path(Path::new("../x.toml"), cwd).is_err());
    }

    #[test]
    fn the_job_states_the_kubernetes_it_needs() {
        let j = job_manifest(&JobParams {
            name: "s".into(),
            image: "i".into(),
            spec_path: "scenarios/x.toml".into(),
            shards: 2,
            parallelism: 2,
            pvc: "p".into(),
            extra_args: vec![],
        });
        assert!(j["spec"]["backoffLimitPerIndex"].is_number());
        assert!(j["metadata"]["annotations"]["gpusched.io/requires"]
            .as_str()
            .unwrap()
            .contains("1.29"));
    }
}
