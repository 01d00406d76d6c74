//! The deployment manifests in `live/deploy/`, embedded so a test (and `--print-manifests` users)
//! can check them against the Kubernetes types.

pub const FILES: [(&str, &str); 5] = [
    ("rbac.yaml", include_str!("../deploy/rbac.yaml")),
    ("controller.yaml", include_str!("../deploy/controller.yaml")),
    ("agent.yaml", include_str!("../deploy/agent.yaml")),
    (
        "device-plugin-config.yaml",
        include_str!("../deploy/device-plugin-config.yaml"),
    ),
    (
        "example-workload.yaml",
        include_str!("../deploy/example-workload.yaml"),
    ),
];
