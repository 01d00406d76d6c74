//! decisions.jsonl in the simulator's format: one [`DecisionRecord`] per line, `t_s` then the
//! flattened decision. Live mode's `t_s` is seconds since the controller started, so a live log
//! and a simulated one line up from zero and can be diffed with the same tools.

use gpusched_policies::Decision;
pub use gpusched_policies::DecisionRecord;
use std::io::Write;

pub struct DecisionLog {
    out: Box<dyn Write + Send>,
    started_unix_s: f64,
}

impl DecisionLog {
    pub fn new(out: Box<dyn Write + Send>, started_unix_s: f64) -> Self {
        Self {
            out,
            started_unix_s,
        }
    }

    /// Writes one line. The record type is the simulator's own, so the format cannot drift.
    pub fn record(&mut self, now_unix_s: f64, decision: Decision) -> std::io::Result<()> {
        let r = DecisionRecord {
            t_s: ((now_unix_s - self.started_unix_s) * 1e6).round() / 1e6,
            decision,
        };
        let line = serde_json::to_string(&r).map_err(std::io::Error::other)?;
        writeln!(self.out, "{line}")?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_match_the_simulators_record() {
        let buf = Buf::default();
        let mut log = DecisionLog::new(Box::new(buf.clone()), 100.0);
        let d = Decision::Unschedulable {
            workload: "w".into(),
            replica: 3,
            reason: "0/0 nodes available".into(),
            matrix: None,
        };
        log.record(130.5, d.clone()).unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let sim_line = serde_json::to_string(&DecisionRecord {
            t_s: 30.5,
            decision: d,
        })
        .unwrap();
        assert_eq!(text.trim_end(), sim_line);
        assert!(
            text.starts_with(r#"{"t_s":30.5,"decision":"unschedulable","#),
            "{text}"
        );
    }
}
