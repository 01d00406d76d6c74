//! The circuit breaker shared by the simulator and the live adapter: sharing
//! changes (the seeds' "3 failures → stop, 1 h cooldown, then try again").
//!
//! Pure: time is passed in as seconds on whatever clock the caller owns (simulated time in the
//! simulator, Unix time in live mode), so the same breaker gives the same answers in both worlds.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakerConfig {
    /// Consecutive failed rollouts that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker refuses changes before it lets one trial through, seconds.
    pub cooldown_s: f64,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 3,
            cooldown_s: 3600.0,
        }
    }
}

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BreakerState {
    /// Changes flow; `failures` consecutive failures so far.
    Closed { failures: u32 },
    /// Changes are refused until `until_s`.
    Open { since_s: f64, until_s: f64 },
    /// The cooldown is over: one trial change may run; its outcome closes or re-opens.
    HalfOpen { trial_in_flight: bool },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CircuitBreaker {
    pub config: CircuitBreakerConfig,
    state: BreakerState,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self::new(CircuitBreakerConfig::default())
    }
}

impl CircuitBreaker {
    pub fn new(config: CircuitBreakerConfig) -> Self {
        Self {
            config,
            state: BreakerState::Closed { failures: 0 },
        }
    }

    /// The state as of `now_s` (an open breaker whose cooldown has passed reads half-open).
    pub fn state(&self, now_s: f64) -> BreakerState {
        match self.state {
            BreakerState::Open { until_s, .. } if now_s >= until_s => BreakerState::HalfOpen {
                trial_in_flight: false,
            },
            s => s,
        }
    }

    /// Asks to start a change now. `true` means go (and, when half-open, the trial is taken).
    pub fn try_acquire(&mut self, now_s: f64) -> bool {
        self.state = self.state(now_s);
        match &mut self.state {
            BreakerState::Closed { .. } => true,
            BreakerState::Open { .. } => false,
            BreakerState::HalfOpen { trial_in_flight } => {
                if *trial_in_flight {
                    false
                } else {
                    *trial_in_flight = true;
                    true
                }
            }
        }
    }

    /// A change finished well: the breaker closes and forgets past failures.
    pub fn record_success(&mut self, _now_s: f64) {
        self.state = BreakerState::Closed { failures: 0 };
    }

    /// A change failed (and was rolled back). Opens the breaker at the threshold, or at once when
    /// the failure was the half-open trial.
    pub fn record_failure(&mut self, now_s: f64) {
        let open = BreakerState::Open {
            since_s: now_s,
            until_s: now_s + self.config.cooldown_s,
        };
        self.state = match self.state(now_s) {
            BreakerState::Closed { failures } => {
                let failures = failures + 1;
                if failures >= self.config.failure_threshold {
                    open
                } else {
                    BreakerState::Closed { failures }
                }
            }
            BreakerState::HalfOpen { .. } | BreakerState::Open { .. } => open,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_failures_open_the_breaker() {
        let mut b = CircuitBreaker::default();
        for t in 0..2 {
            assert!(b.try_acquire(t as f64));
            b.record_failure(t as f64);
            assert!(matches!(b.state(t as f64), BreakerState::Closed { .. }));
        }
        assert!(b.try_acquire(2.0));
        b.record_failure(2.0);
        assert_eq!(
            b.state(2.0),
            BreakerState::Open {
                since_s: 2.0,
                until_s: 3602.0
            }
        );
        assert!(!b.try_acquire(100.0));
        assert!(!b.try_acquire(3601.9));
    }

    #[test]
    fn cooldown_leads_to_half_open_with_a_single_trial() {
        let mut b = CircuitBreaker::default();
        for _ in 0..3 {
            b.record_failure(0.0);
        }
        assert_eq!(
            b.state(3600.0),
            BreakerState::HalfOpen {
                trial_in_flight: false
            }
        );
        assert!(b.try_acquire(3600.0));
        assert!(!b.try_acquire(3601.0), "only one trial while half-open");
        b.record_success(3700.0);
        assert_eq!(b.state(3700.0), BreakerState::Closed { failures: 0 });
        assert!(b.try_acquire(3701.0));
    }

    #[test]
    fn a_failed_trial_reopens_for_a_full_cooldown() {
        let mut b = CircuitBreaker::default();
        for _ in 0..3 {
            b.record_failure(0.0);
        }
        assert!(b.try_acquire(4000.0));
        b.record_failure(4000.0);
        assert_eq!(
            b.state(4000.0),
            BreakerState::Open {
                since_s: 4000.0,
                until_s: 7600.0
            }
        );
    }

    #[test]
    fn success_resets_the_failure_count() {
        let mut b = CircuitBreaker::default();
        b.record_failure(0.0);
        b.record_failure(1.0);
        b.record_success(2.0);
        b.record_failure(3.0);
        b.record_failure(4.0);
        assert!(b.try_acquire(5.0));
    }
}
