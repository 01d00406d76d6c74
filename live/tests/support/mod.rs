//! Shared test support.
pub mod apiserver;
pub mod mock;
pub mod validation;

use gpusched_live::apply::Scope;

/// The scope every live test manages: namespace `ml`, the plugin's ConfigMap
/// `nvidia-device-plugin/device-plugin-config`.
#[allow(dead_code)]
pub fn scope() -> Scope {
    Scope::new(
        ["ml".to_string()],
        "nvidia-device-plugin",
        "device-plugin-config",
    )
    .expect("a valid scope")
}
