//! One self-contained HTML page per run, compare and sweep (report.html beside report.md): the
//! markdown report turned into HTML, its plots inlined as SVG (no file or network reference
//! left), and for runs the scenario's key assumptions. Written into the same staged folder as
//! the rest, so it appears with them or not at all.

use gpusched_sim::scenario::LoadedScenario;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const STYLE: &str = "body{font-family:system-ui,-apple-system,'DejaVu Sans',sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}\
th{background:#f2f2f2}tr:nth-child(even) td{background:#fafafa}code{background:#f4f4f4;padding:1px 3px}\
pre{background:#f4f4f4;padding:1em;overflow:auto;max-height:30em}figure{margin:1em 0}figure svg{max-width:100%;height:auto}";

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            _ => o.push(c),
        }
    }
    o
}

/// Inline markdown: `code`, **bold**, escaped text.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let mut code = false;
    let mut bold = false;
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('`') {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
            rest = r;
        } else if let (false, Some(r)) = (code, rest.strip_prefix("**")) {
            out.push_str(if bold { "</strong>" } else { "<strong>" });
            bold = !bold;
            rest = r;
        } else {
            let c = rest.chars().next().expect("non-empty");
            out.push_str(&escape(&c.to_string()));
            rest = &rest[c.len_utf8()..];
        }
    }
    if code {
        out.push_str("</code>");
    }
    if bold {
        out.push_str("</strong>");
    }
    out
}

fn cells(line: &str) -> Vec<&str> {
    let t = line.trim().trim_start_matches('|').trim_end_matches('|');
    t.split('|').map(str::trim).collect()
}

/// An SVG plot's markup, without its XML declaration, for inlining.
fn svg_inline(dir: &Path, rel: &str) -> Option<String> {
    if rel.contains("..") || !rel.ends_with(".svg") {
        return None;
    }
    let text = std::fs::read_to_string(dir.join(rel)).ok()?;
    let start = text.find("<svg")?;
    Some(text[start..].to_string())
}

/// The markdown subset gpusched's reports use (headings, tables, lists, fenced code, images,
/// paragraphs) as HTML; images under `dir` are inlined.
pub fn markdown_to_html(md: &str, dir: &Path) -> String {
    let mut out = String::new();
    let lines: Vec<&str> = md.lines().collect();
    let mut i = 0;
    let mut list: Option<&str> = None;
    let close_list = |out: &mut String, list: &mut Option<&str>| {
        if let Some(tag) = list.take() {
            let _ = writeln!(out, "</{tag}>");
        }
    };
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim();
        if t.starts_with("```") {
            close_list(&mut out, &mut list);
            out.push_str("<pre><code>");
            i += 1;
            while i < lines.len() && !lines[i].trim().starts_with("```") {
                out.push_str(&escape(lines[i]));
                out.push('\n');
                i += 1;
            }
            out.push_str("</code></pre>\n");
            i += 1;
            continue;
        }
        if t.starts_with('|') {
            close_list(&mut out, &mut list);
            out.push_str("<table>\n");
            let head = cells(t);
            out.push_str("<thead><tr>");
            for c in &head {
                let _ = write!(out, "<th>{}</th>", inline(c));
            }
            out.push_str("</tr></thead>\n<tbody>\n");
            i += 1;
            if i < lines.len() && lines[i].trim().starts_with("|-")
                || lines
                    .get(i)
                    .is_some_and(|l| l.trim().starts_with("|:") || l.trim().starts_with("|---"))
            {
                i += 1;
            }
            while i < lines.len() && lines[i].trim().starts_with('|') {
                out.push_str("<tr>");
                for c in cells(lines[i]) {
                    let _ = write!(out, "<td>{}</td>", inline(c));
                }
                out.push_str("</tr>\n");
                i += 1;
            }
            out.push_str("</tbody></table>\n");
            continue;
        }
        if let Some(h) = t.strip_prefix('#') {
            close_list(&mut out, &mut list);
            let level = 1 + h.chars().take_while(|c| *c == '#').count();
            let text = h.trim_start_matches('#').trim();
            let _ = writeln!(out, "<h{level}>{}</h{level}>", inline(text));
            i += 1;
            continue;
        }
        if let Some(rest) = t.strip_prefix("![") {
            close_list(&mut out, &mut list);
            if let Some((alt, path)) = rest.split_once("](") {
                let path = path.trim_end_matches(')');
                match svg_inline(dir, path) {
                    Some(svg) => {
                        let _ = writeln!(
                            out,
                            "<figure>{svg}<figcaption>{}</figcaption></figure>",
                            escape(alt)
                        );
                    }
                    None => {
                        let _ = writeln!(out, "<p>(plot {} not available)</p>", escape(alt));
                    }
                }
            }
            i += 1;
            continue;
        }
        let item = t.strip_prefix("- ").map(|x| ("ul", x)).or_else(|| {
            let digits = t.chars().take_while(|c| c.is_ascii_digit()).count();
            (digits > 0)
                .then(|| t[digits..].strip_prefix(". "))
                .flatten()
                .map(|x| ("ol", x))
        });
        if let Some((tag, text)) = item {
            if list != Some(tag) {
                close_list(&mut out, &mut list);
                let _ = writeln!(out, "<{tag}>");
                list = Some(tag);
            }
            let _ = writeln!(out, "<li>{}</li>", inline(text));
            i += 1;
            continue;
        }
        close_list(&mut out, &mut list);
        if t.is_empty() {
            i += 1;
            continue;
        }
        // A paragraph: consecutive plain lines.
        let mut para = vec![t];
        i += 1;
        while i < lines.len() {
            let n = lines[i].trim();
            if n.is_empty()
                || n.starts_with('|')
                || n.starts_with('#')
                || n.starts_with("- ")
                || n.starts_with("```")
                || n.starts_with("![")
            {
                break;
            }
            para.push(n);
            i += 1;
        }
        let _ = writeln!(out, "<p>{}</p>", inline(&para.join(" ")));
    }
    close_list(&mut out, &mut list);
    out
}

/// The whole page.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}<footer><p>Written by gpusched; self-contained (plots inline).</p></footer>\n</body>\n</html>\n",
        escape(title)
    )
}

/// The scenario's key assumptions as markdown: fleet, services (models, serving profiles),
/// calibrations, seeds — and the whole resolved scenario.
pub fn assumptions_markdown(sc: &LoadedScenario) -> String {
    let s = &sc.scenario;
    let mut md = String::from("\n## Assumptions\n\n");
    let _ = writeln!(
        md,
        "Scenario `{}` from `{}`: seed {}, {:.1} h simulated, monitoring every {} s, policy `{}`.\n",
        s.name,
        sc.source,
        s.seed,
        sc.duration_s() / 3600.0,
        s.tick_s,
        serde_json::to_value(&s.engine)
            .ok()
            .and_then(|v| v.get("policy").and_then(|p| p.as_str()).map(str::to_string))
            .unwrap_or_else(|| "-".into())
    );
    let _ = writeln!(
        md,
        "| pool | GPU model | nodes | GPUs per node | sharing |\n|---|---|---|---|---|"
    );
    for p in &s.pools {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            p.name,
            p.gpu_model.as_str(),
            p.nodes,
            p.gpus_per_node,
            p.sharing
                .as_ref()
                .and_then(|x| serde_json::to_string(x).ok())
                .unwrap_or_else(|| "-".into())
                .replace('|', "/")
        );
    }
    let _ = writeln!(md, "\n| service | model | memory GB | replicas initial / min / max | SLA ms | serving stack |\n|---|---|---|---|---|---|");
    for x in &s.services {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} / {} / {} | {} | {} |",
            x.name,
            x.model.as_deref().unwrap_or("-"),
            x.model_memory_gb,
            x.initial_replicas,
            x.min_replicas,
            x.max_replicas,
            x.latency_sla_ms.map_or("-".into(), |v| format!("{v:.0}")),
            x.serving
                .as_ref()
                .map_or("-".to_string(), |v| v.stack.clone())
        );
    }
    if !s.gpu_models.is_empty() {
        let _ = writeln!(
            md,
            "\nGPU calibrations (overrides of the published figures): `{}`",
            serde_json::to_string(&s.gpu_models).unwrap_or_default()
        );
    }
    let _ = writeln!(
        md,
        "\nPerformance model: `{}`; costs: `{}`.",
        serde_json::to_string(&s.perf).unwrap_or_default(),
        serde_json::to_string(&s.costs).unwrap_or_default()
    );
    if let Ok(t) = serde_json::to_string_pretty(s) {
        let _ = writeln!(
            md,
            "\nThe whole resolved scenario (JSON):\n\n```json\n{t}\n```"
        );
    }
    md
}

/// Writes `report.html` in `dir` from the markdown file `md_name` there (plus `extra_md`).
pub fn write_html(
    dir: &Path,
    title: &str,
    md_name: &str,
    extra_md: &str,
) -> Result<PathBuf, crate::ReportError> {
    let src = dir.join(md_name);
    let md = std::fs::read_to_string(&src).map_err(|source| crate::ReportError::Io {
        path: src.clone(),
        source,
    })?;
    let body = markdown_to_html(&format!("{md}{extra_md}"), dir);
    let p = dir.join("report.html");
    std::fs::write(&p, page(title, &body)).map_err(|source| crate::ReportError::Io {
        path: p.clone(),
        source,
    })?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_subset_becomes_balanced_html() {
        let md = "# T <x>\n\nA `k=v` **b**.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two\n\n1. first\n\n```toml\nx = \"<y>\"\n```\n![missing](plots/none.svg)\n";
        let h = markdown_to_html(md, Path::new("/nonexistent"));
        assert!(h.contains("<h1>T &lt;x&gt;</h1>"), "{h}");
        assert!(h.contains("<td>1</td><td>2</td>"), "{h}");
        assert!(
            h.contains("<code>k=v</code>") && h.contains("<strong>b</strong>"),
            "{h}"
        );
        assert!(h.contains("<ul>\n<li>one</li>\n<li>two</li>\n</ul>"), "{h}");
        assert!(
            h.contains("<ol>") && h.contains("x = &quot;&lt;y&gt;&quot;"),
            "{h}"
        );
        assert!(h.contains("plot missing not available"), "{h}");
    }
}
