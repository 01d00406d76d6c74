//! The kube client gpusched talks to the API server with.
//!
//! kube's default client retries every 429, 503 and 504 up to 15 times with exponential backoff
//! (capped at 1000 s) *inside* the request. For gpusched a 429 is usually an answer, not a
//! hiccup: the Eviction API says "a PodDisruptionBudget forbids this now" with 429, and the
//! rollout must see that at once to retry on its own schedule or roll back, instead of stalling
//! every placement for many minutes with the node cordoned. So the client is built without
//! that layer; every caller already handles failures: actions are reported and retried by the
//! next reconcile, the Lease round retries next period, and the watches have their own backoff.

/// A client for `config` without kube's default retry layer.
pub fn from_config(mut config: kube::Config) -> Result<kube::Client, kube::Error> {
    config.default_retry = false;
    kube::Client::try_from(config)
}

/// The in-cluster service account, else `~/.kube/config` / `$KUBECONFIG`, as [`from_config`].
pub async fn infer() -> Result<kube::Client, String> {
    let config = kube::Config::infer().await.map_err(|e| e.to_string())?;
    from_config(config).map_err(|e| e.to_string())
}
