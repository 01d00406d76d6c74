//! `--dry-run`: every action is checked against the scope and printed as the exact request the
//! real applier would send (method, path with query, content type, body), and nothing is sent.
//! Reading the cluster (watches, lists) still happens: the dry run shows what gpusched would do
//! to *this* cluster.

use crate::apply::{Action, Applier, ApplyError, Scope};
use std::io::Write;
use std::sync::Mutex;

pub struct DryRunApplier {
    pub scope: Scope,
    out: Mutex<Box<dyn Write + Send>>,
    /// Every request printed so far (tests read it).
    pub printed: Mutex<Vec<String>>,
}

impl DryRunApplier {
    pub fn new(scope: Scope, out: Box<dyn Write + Send>) -> Self {
        Self {
            scope,
            out: Mutex::new(out),
            printed: Mutex::new(Vec::new()),
        }
    }
    pub fn stdout(scope: Scope) -> Self {
        Self::new(scope, Box::new(std::io::stdout()))
    }
}

/// Renders a request the way the dry run prints it.
pub fn render(a: &Action, req: &http::Request<Vec<u8>>) -> String {
    let ct = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let body = serde_json::from_slice::<serde_json::Value>(req.body())
        .map(|v| serde_json::to_string(&v).unwrap_or_default())
        .unwrap_or_else(|_| String::from_utf8_lossy(req.body()).into_owned());
    format!(
        "# dry-run: {}\n{} {}\nContent-Type: {ct}\n{body}\n",
        a.describe(),
        req.method(),
        req.uri()
    )
}

impl Applier for DryRunApplier {
    async fn apply(&self, a: &Action) -> Result<(), ApplyError> {
        self.scope.check(a)?;
        let req = a.to_request()?;
        let text = render(a, &req);
        if let Ok(mut o) = self.out.lock() {
            let _ = o.write_all(text.as_bytes());
            let _ = o.flush();
        }
        if let Ok(mut p) = self.printed.lock() {
            p.push(text);
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
