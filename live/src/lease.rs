//! Leader election on a coordination.k8s.io/v1 Lease, so only one controller replica acts.
//!
//! kube-runtime has no elector built in; this one is the client-go protocol in miniature:
//! read the Lease; create it if absent; renew it if we hold it; take it over if its holder has not
//! renewed within `leaseDurationSeconds`; otherwise follow. Writes are `replace` with the
//! resourceVersion that was read, so two candidates racing for an expired lease cannot both win:
//! the loser gets 409 Conflict and follows.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

#[derive(Debug, Clone, PartialEq)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    pub duration_s: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LeaseStep {
    Create,
    Renew,
    TakeOver { previous: Option<String> },
    Follow { holder: String, expires_in_s: f64 },
}

/// Pure: what to do about `lease` at `now`.
pub fn decide(lease: Option<&Lease>, identity: &str, now: Timestamp) -> LeaseStep {
    let Some(l) = lease else {
        return LeaseStep::Create;
    };
    let spec = l.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    if holder.as_deref() == Some(identity) {
        return LeaseStep::Renew;
    }
    let Some(holder) = holder else {
        return LeaseStep::TakeOver { previous: None };
    };
    let renewed = spec.renew_time.or(spec.acquire_time).map(|t| t.0);
    let duration = spec.lease_duration_seconds.unwrap_or(15) as f64;
    let age = renewed
        .map(|r| (now.as_millisecond() - r.as_millisecond()) as f64 / 1000.0)
        .unwrap_or(f64::INFINITY);
    if age > duration {
        LeaseStep::TakeOver {
            previous: Some(holder),
        }
    } else {
        LeaseStep::Follow {
            holder,
            expires_in_s: duration - age,
        }
    }
}

fn spec_for(
    cfg: &LeaseConfig,
    now: Timestamp,
    prev: Option<&LeaseSpec>,
    transition: bool,
) -> LeaseSpec {
    let transitions = prev.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(cfg.duration_s),
        acquire_time: if transition || prev.is_none() {
            Some(MicroTime(now))
        } else {
            prev.and_then(|p| p.acquire_time.clone())
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if transition {
            transitions + 1
        } else {
            transitions
        }),
        ..Default::default()
    }
}

/// One election round: `Ok(true)` when this replica leads until the next round.
pub async fn try_acquire(
    api: &Api<Lease>,
    cfg: &LeaseConfig,
    now: Timestamp,
) -> Result<bool, kube::Error> {
    let current = api.get_opt(&cfg.name).await?;
    let step = decide(current.as_ref(), &cfg.identity, now);
    let result = match (&step, current) {
        (LeaseStep::Create, _) => {
            let l = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(spec_for(cfg, now, None, false)),
            };
            api.create(&PostParams::default(), &l).await.map(|_| true)
        }
        (LeaseStep::Renew | LeaseStep::TakeOver { .. }, Some(mut l)) => {
            let transition = matches!(step, LeaseStep::TakeOver { .. });
            l.spec = Some(spec_for(cfg, now, l.spec.as_ref(), transition));
            // metadata.resourceVersion is kept from the read: optimistic concurrency.
            api.replace(&cfg.name, &PostParams::default(), &l)
                .await
                .map(|_| true)
        }
        _ => Ok(false),
    };
    match result {
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        r => r,
    }
}

/// Gives the Lease up if this replica holds it: the holder is cleared and the duration set to
/// one second, so a follower takes over at its next round.
pub async fn release(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<(), kube::Error> {
    let Some(mut l) = api.get_opt(&cfg.name).await? else {
        return Ok(());
    };
    let spec = l.spec.get_or_insert_default();
    if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    match api.replace(&cfg.name, &PostParams::default(), &l).await {
        // Someone else wrote it meanwhile: it is not ours to release any more.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        r => r.map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed_s: i64, duration: i32) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("gpusched".into()),
                resource_version: Some("7".into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed_s).unwrap())),
                lease_duration_seconds: Some(duration),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn election_decisions() {
        let now = Timestamp::from_second(1000).unwrap();
        assert_eq!(decide(None, "a", now), LeaseStep::Create);
        assert_eq!(
            decide(Some(&lease("a", 990, 15)), "a", now),
            LeaseStep::Renew
        );
        assert!(
            matches!(decide(Some(&lease("b", 990, 15)), "a", now), LeaseStep::Follow { ref holder, .. } if holder == "b")
        );
        assert_eq!(
            decide(Some(&lease("b", 980, 15)), "a", now),
            LeaseStep::TakeOver {
                previous: Some("b".into())
            }
        );
        assert_eq!(
            decide(Some(&lease("", 999, 15)), "a", now),
            LeaseStep::TakeOver { previous: None }
        );
    }
}
