//! The same scenario and seed give byte-identical summary.json, timeseries.csv and
//! decisions.jsonl; another seed gives different traffic.

mod common;

fn files(dir: &std::path::Path) -> Vec<Vec<u8>> {
    ["summary.json", "timeseries.csv", "decisions.jsonl"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect()
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let sets = ["duration_h=0.5"];
    let tmp = tempfile::tempdir().unwrap();
    let mut outs = Vec::new();
    for (i, seed) in [7u64, 7, 8].iter().enumerate() {
        let mut s: Vec<&str> = sets.to_vec();
        let seed_set = format!("seed={seed}");
        s.push(&seed_set);
        let sc = common::scenario("default.toml", &s);
        let r = common::run(&sc);
        let dir = tmp.path().join(i.to_string());
        gpusched_reports::write_run(&dir, &r, false).unwrap();
        outs.push(files(&dir));
    }
    assert_eq!(outs[0], outs[1], "same seed must give identical bytes");
    assert_ne!(
        outs[0][1], outs[2][1],
        "another seed must change the traffic"
    );
    assert!(outs[0][2].len() > 100, "decisions were written");
}
