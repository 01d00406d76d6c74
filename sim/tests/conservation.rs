//! Nothing is lost: every request ends served, failed with its cause, or still queued / in
//! service at the end; every GPU-second is busy or idle.

mod common;

fn check(r: &gpusched_sim::RunResult) {
    let s = &r.summary;
    let c = &s.requests;
    assert_eq!(
        c.served + c.failed + c.queued_at_end + c.in_service_at_end,
        c.arrived,
        "{c:?}"
    );
    assert_eq!(
        c.failed,
        c.failed_by_cause.values().sum::<u64>(),
        "every failure has a cause"
    );
    for svc in &s.services {
        let c = &svc.requests;
        assert_eq!(
            c.served + c.failed + c.queued_at_end + c.in_service_at_end,
            c.arrived,
            "{}: {c:?}",
            svc.name
        );
    }
    // Busy and idle are integrated separately; together they must cover every GPU-second.
    let covered = s.busy_seconds_total + s.idle_seconds_total;
    assert!(
        (covered - s.gpu_seconds_total).abs() < 1e-3,
        "{covered} vs {}",
        s.gpu_seconds_total
    );
    for (m, g) in &s.gpu_models {
        assert!(
            (g.busy_seconds + g.idle_seconds - g.gpu_seconds).abs() < 1e-3,
            "{m}"
        );
    }
    // The timeseries adds up to the totals too.
    let arrivals: u64 = r.timeseries.rows.iter().map(|x| x.arrivals).sum();
    assert!(arrivals <= c.arrived);
}

#[test]
fn conservation_on_a_normal_day_slice() {
    let r = common::run(&common::scenario("default.toml", &["duration_h=0.5"]));
    assert!(r.summary.requests.arrived > 100_000);
    check(&r);
}

#[test]
fn conservation_under_overload_with_timeouts_and_full_queues() {
    // Ten times the traffic on a fixed, small fleet: requests time out and queues overflow.
    let r = common::run(&common::scenario(
        "default.toml",
        &[
            "duration_h=0.25",
            "traffic.scale=10",
            "autoscaler.kind=none",
            "services.0.max_queue=200",
            "services.1.queue_timeout_s=2",
        ],
    ));
    let c = &r.summary.requests;
    assert!(
        c.failed_by_cause.get("queue_full").copied().unwrap_or(0) > 0,
        "{c:?}"
    );
    assert!(
        c.failed_by_cause.get("timeout").copied().unwrap_or(0) > 0,
        "{c:?}"
    );
    assert!(c.queued_at_end + c.in_service_at_end > 0);
    check(&r);
}

#[test]
fn conservation_and_determinism_under_processor_sharing() {
    // Re-rated completions leave stale events behind; none may count twice or be lost, also
    // when overloaded replicas are killed and rescheduled by the autoscaler.
    let sets = [
        "duration_h=0.25",
        "traffic.scale=6",
        "perf.batching=processor_sharing",
        "services.1.queue_timeout_s=2",
    ];
    let a = common::run(&common::scenario("default.toml", &sets));
    check(&a);
    let c = &a.summary.requests;
    assert!(c.served > 10_000, "{c:?}");
    let b = common::run(&common::scenario("default.toml", &sets));
    assert_eq!(
        serde_json::to_string(&a.summary).unwrap(),
        serde_json::to_string(&b.summary).unwrap(),
        "same seed, same result"
    );
    let mut fixed_sets = sets;
    fixed_sets[2] = "perf.batching=fixed_at_start";
    let fixed = common::run(&common::scenario("default.toml", &fixed_sets));
    assert_ne!(
        a.summary.latency.mean_ms, fixed.summary.latency.mean_ms,
        "the batching model is in effect"
    );
}
