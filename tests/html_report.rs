//! The binding-constraint diagnosis, the sweep's self-explaining recommendation and the
//! self-contained report.html (issue 18): structure checked always, a real headless browser
//! when /usr/bin/chromium is installed (`apt-get install -y chromium`).

mod common;

use std::path::Path;

const VOID: &[&str] = &["meta", "br", "img", "hr", "input", "link"];

/// A small well-formedness check: every element closed in order (void and `/>` elements
/// aside), a single html/head/body, no reference to a file or the network (self-contained).
fn check_html(html: &str) -> Result<usize, String> {
    if !html.starts_with("<!DOCTYPE html>") {
        return Err("no doctype".into());
    }
    let mut stack: Vec<String> = Vec::new();
    let mut elements = 0;
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        if rest.starts_with("!--") {
            rest = &rest[rest.find("-->").ok_or("open comment")? + 3..];
            continue;
        }
        let end = rest.find('>').ok_or("unterminated tag")?;
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') || tag.starts_with('?') {
            continue;
        }
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == ':')
            .collect::<String>()
            .to_ascii_lowercase();
        if name.is_empty() {
            return Err(format!("bad tag <{tag}>"));
        }
        if closing {
            match stack.pop() {
                Some(open) if open == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else if !(tag.ends_with('/') || VOID.contains(&name.as_str())) {
            stack.push(name);
            elements += 1;
        } else {
            elements += 1;
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed: {stack:?}"));
    }
    for (needle, why) in [
        ("src=\"plots/", "a plot by file"),
        ("href=\"plots/", "a plot by link"),
        ("src=\"http", "a network resource"),
        ("<script", "a script"),
    ] {
        if html.contains(needle) {
            return Err(format!("not self-contained: {why}"));
        }
    }
    for t in ["<html", "<head>", "<title>", "<body>"] {
        if html.matches(t).count() != 1 {
            return Err(format!("{t} appears {} times", html.matches(t).count()));
        }
    }
    Ok(elements)
}

/// Opens the page in headless Chromium when installed; returns the rendered DOM.
fn chromium_dom(file: &Path) -> Option<String> {
    let bin = Path::new("/usr/bin/chromium");
    if !bin.exists() {
        eprintln!(
            "SKIPPED the browser check: /usr/bin/chromium is not installed (apt-get install -y chromium)"
        );
        return None;
    }
    let out = std::process::Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            &format!("file://{}", file.display()),
        ])
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn run_report_html_is_self_contained_and_opens_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (code, _, err) = common::gpusched(&[
        "run",
        "scenarios/default.toml",
        "--set",
        "duration_h=0.5",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    check_html(&html).unwrap_or_else(|e| panic!("report.html: {e}"));
    // Every plot report.md links is inline, and the sections people look for are there.
    let plots = md.matches("![").count();
    assert!(plots >= 2, "{md}");
    assert_eq!(html.matches("<figure><svg").count(), plots);
    for s in [
        "Binding constraints",
        "<h2>Assumptions</h2>",
        "GPU model",
        "The whole resolved scenario",
    ] {
        assert!(html.contains(s), "report.html lacks {s}");
    }
    assert!(html.matches("<table>").count() >= 5);
    if let Some(dom) = chromium_dom(&out.join("report.html")) {
        assert!(dom.contains("<table>") && dom.contains("Binding constraints"));
        assert!(dom.contains("<svg"), "the browser kept the inline plots");
    }
}

#[test]
fn html_checker_catches_what_it_should() {
    assert!(check_html(
        "<!DOCTYPE html><html><head><title>t</title></head><body><p>x</p></body></html>"
    )
    .is_ok());
    assert!(check_html(
        "<!DOCTYPE html><html><head><title>t</title></head><body><p>x</body></html>"
    )
    .is_err());
    assert!(check_html("<!DOCTYPE html><html><head><title>t</title></head><body><img src=\"plots/a.png\"></body></html>").is_err());
}

fn binding(sets: &[&str]) -> serde_json::Value {
    let sc = common::scenario("default.toml", sets);
    let r = common::run(&sc);
    serde_json::to_value(&r.summary.binding_constraints).unwrap()
}

#[test]
fn a_replica_cap_that_binds_is_found_and_lifting_it_clears_it() {
    // An hour at the seeds' peak: llm-large capped at one replica must queue at its cap.
    let base = [
        "duration_h=1",
        "traffic.anchors=[[0.0, 300.0], [24.0, 300.0]]",
        "services.2.initial_replicas=1",
    ];
    let mut capped = base.to_vec();
    capped.push("services.2.max_replicas=1");
    let b = binding(&capped);
    let llm = &b["services"][2];
    assert_eq!(llm["name"], "llm-large");
    assert_eq!(llm["peak_replicas"], 1);
    assert!(
        llm["at_cap_backlogged_s"].as_f64().unwrap() > 600.0,
        "{llm}"
    );
    assert_eq!(b["primary"]["kind"], "replica_cap", "{b}");
    assert_eq!(b["primary"]["subject"], "llm-large");
    assert!(b["primary"]["change"]
        .as_str()
        .unwrap()
        .contains("services.2.max_replicas"));
    // Deterministic.
    assert_eq!(b, binding(&capped));
    // With room to grow, the cap no longer binds for most of the hour.
    let mut open = base.to_vec();
    open.push("services.2.max_replicas=16");
    let o = binding(&open);
    assert!(
        o["services"][2]["at_cap_backlogged_s"].as_f64().unwrap()
            < llm["at_cap_backlogged_s"].as_f64().unwrap() / 2.0,
        "{o}"
    );
    assert!(o["services"][2]["peak_replicas"].as_u64().unwrap() > 1);
    // Queueing was a larger share of its latency at the cap.
    let q = |v: &serde_json::Value| v["latency"]["queue_share"].as_f64().unwrap();
    assert!(q(llm) > q(&o["services"][2]), "{llm} vs {o}");
}

fn write_spec(dir: &Path, extra: &str) -> String {
    let p = dir.join("spec.toml");
    std::fs::write(
        &p,
        format!(
            r#"
name = "t"
seeds = [1]
growth = [1.0, 2.0]
sets = ["duration_h=0.5", "traffic.anchors=[[0.0, 250.0], [24.0, 250.0]]"]
{extra}
[slo]
max_p99_ms = 800.0
max_failed_pct = 0.5
[[axes]]
name = "h100_nodes"
keys = ["pools.0.nodes"]
values = [2, 4]
"#
        ),
    )
    .unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn scale_with_traffic_is_typed_and_refused_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), "scale_with_traffic = [\"max_nodes\"]");
    let (code, _, err) = common::gpusched(&["sweep", &spec, "--no-plots"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("spec.toml"), "{err}");
    assert!(
        err.contains("max_nodes") && err.contains("max_replicas"),
        "{err}"
    );
    let spec = write_spec(
        dir.path(),
        "scale_with_traffic = [\"max_replicas\", \"max_replicas\"]",
    );
    let (code, _, err) = common::gpusched(&["sweep", &spec, "--no-plots"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("scale_with_traffic[1]"), "{err}");
}

#[test]
fn the_sweep_explains_its_answer_and_grows_caps_with_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), "scale_with_traffic = [\"max_replicas\"]");
    let out = dir.path().join("out");
    let (code, stdout, err) = common::gpusched(&["sweep", &spec, "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("grows with it: every service's max_replicas"),
        "{err}"
    );
    let md = std::fs::read_to_string(out.join("sweep.md")).unwrap();
    assert!(md.contains("## Why"), "{md}");
    assert!(md.contains("every service's `max_replicas`"), "{md}");
    // One explanation per growth level, with headroom or a nearest miss.
    for g in ["×1:", "×2:"] {
        let line = stdout
            .lines()
            .find(|l| l.contains(g))
            .unwrap_or_else(|| panic!("{stdout}"));
        assert!(
            line.contains("headroom") || line.contains("Nearest miss"),
            "{line}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    // The points at ×2 ran with the caps doubled: llm-large may reach 8 replicas.
    let rows = json["rows"].as_array().unwrap();
    assert!(rows
        .iter()
        .all(|r| r["point"]["grows"][0] == "max_replicas"));
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(header.ends_with("meets_slo,binding"), "{header}");
    assert!(header.contains("cap_bound_pct"), "{header}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    check_html(&html).unwrap_or_else(|e| panic!("sweep report.html: {e}"));
    assert!(html.contains("<figure><svg"), "the Pareto plot is inline");
    assert!(
        html.contains("<h2>Assumptions</h2>"),
        "the base scenario's assumptions"
    );
    if let Some(dom) = chromium_dom(&out.join("report.html")) {
        assert!(dom.contains("<table>") && dom.contains("<svg"));
    }
}

#[test]
fn compare_report_html_is_self_contained_and_opens_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c");
    let (code, _, err) = common::gpusched(&[
        "compare",
        "--policy",
        "seeds",
        "--policy",
        "best_fit",
        "--seeds",
        "2",
        "--set",
        "duration_h=0.25",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    check_html(&html).unwrap_or_else(|e| panic!("compare report.html: {e}"));
    // The comparison table and every plot (the CDF and the registry's bar charts) inline.
    assert!(html.contains("<table>"), "no comparison table");
    let plots = std::fs::read_dir(out.join("plots"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "svg"))
        })
        .count();
    assert!(plots >= 2, "{md}");
    assert_eq!(html.matches("<figure><svg").count(), plots, "{md}");
    for variant in ["seeds", "best_fit"] {
        assert!(html.contains(variant), "report.html lacks {variant}");
    }
    assert!(
        html.contains("<h2>Assumptions</h2>"),
        "the scenario's assumptions"
    );
    if let Some(dom) = chromium_dom(&out.join("report.html")) {
        assert!(dom.contains("<table>") && dom.contains("<svg"));
    }
}
