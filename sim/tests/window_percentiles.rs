//! Each service's p99 per monitoring window (timeseries `p99_ms_<service>`): consistent with
//! the overall per-window percentiles it refines.

mod common;

#[test]
fn overall_p99_is_bounded_by_the_worst_services_p99_in_every_window() {
    let r = common::run(&common::scenario("default.toml", &["duration_h=1"]));
    let ts = &r.timeseries;
    assert!(ts.services.len() > 1, "a multi-service scenario");
    let mut windows_with_traffic = 0;
    for row in &ts.rows {
        assert_eq!(row.p99_ms_by_service.len(), ts.services.len());
        let worst = row.p99_ms_by_service.iter().cloned().fold(0.0, f64::max);
        if row.served == 0 {
            assert_eq!(worst, 0.0, "nothing served, no percentile: {row:?}");
            continue;
        }
        windows_with_traffic += 1;
        // 99 % of each service's requests are at most its p99, so 99 % of all are at most the
        // worst of them (1 % for the window histograms' two significant digits).
        assert!(
            row.p99_ms <= worst * 1.011 + 0.001,
            "t={} overall p99 {} > worst service p99 {}",
            row.t_s,
            row.p99_ms,
            worst
        );
        assert!(row
            .p99_ms_by_service
            .iter()
            .all(|v| v.is_finite() && *v >= 0.0));
    }
    assert!(windows_with_traffic > 100);
    let header = ts.header();
    let tail: Vec<&String> = header.iter().rev().take(ts.services.len()).rev().collect();
    for (h, s) in tail.iter().zip(&ts.services) {
        assert_eq!(**h, format!("p99_ms_{s}"));
    }
}

#[test]
fn one_service_per_window_p99_matches_the_overall_one() {
    let r = common::run(&common::scenario("llm-capacity.toml", &[]));
    let ts = &r.timeseries;
    assert_eq!(ts.services.len(), 1);
    let mut compared = 0;
    for row in ts.rows.iter().filter(|r| r.served > 0) {
        let own = row.p99_ms_by_service[0];
        assert!(
            (own - row.p99_ms).abs() <= 0.011 * row.p99_ms + 0.001,
            "t={}: {own} vs {}",
            row.t_s,
            row.p99_ms
        );
        compared += 1;
    }
    assert!(compared > 10, "{compared}");
}
