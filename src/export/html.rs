//! HTML export: one self-contained page per session that needs no script to read. Tokens are
//! coloured by logprob with their top alternatives in a tooltip (`title`), flags and notes are
//! highlighted and listed with links to their place, an inline SVG draws the entropy timeline,
//! and MoE runs get an expert-usage heat table. A strict Content-Security-Policy allows only
//! the page's own stylesheet (by hash): no script, no remote load, no form. Every piece of model
//! text is escaped after its control characters are made visible.

use std::fmt::Write;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::annotate::{settings_rows, span_text, Mark, Marks};
use super::markdown::phase_sections;
use crate::sanitize::for_terminal;
use crate::trace::{Phase, Routing, Step};
use crate::trace::{RunRecord, SessionRecord};

const STYLE: &str = "
body{font:15px/1.5 system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#1d1f21;background:#fff}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.15em .5em;text-align:left;vertical-align:top}
pre,.trace{white-space:pre-wrap;word-break:break-word;font:14px/1.6 ui-monospace,monospace}
.msg{border-left:3px solid #888;padding-left:.8em;margin:.4em 0}
.think{background:#f4f4fb}.answer{background:#f3faf3}.trace{padding:.6em;border-radius:4px}
.t{border-radius:2px}.l0{background:#c6f0c6}.l1{background:#e4f4c4}.l2{background:#fbf1b8}.l3{background:#fcd9a8}.l4{background:#f8b4a4}.l5{background:#ee8a8a}
.fl{text-decoration:underline wavy #b00;text-underline-offset:3px}.nt{outline:2px solid #3a7bd5}
.mk{font-size:.75em;font-weight:bold;vertical-align:super;color:#b00;text-decoration:none}.mk.n{color:#3a7bd5}
.legend span{padding:0 .5em;margin-right:.3em}
.h0{background:#fff}.h1{background:#fde0c5}.h2{background:#facba6}.h3{background:#f8b58b}.h4{background:#f59e71}.h5{background:#f2855d}.h6{background:#ef6a4c}.h7{background:#e34f3f}.h8{background:#c7383a}.h9{background:#a52a2a;color:#fff}
.heat td{min-width:1.6em;text-align:center;font-size:.75em}
";

/// `&`, `<`, `>`, `"` and `'` as entities, after control characters are made visible.
pub fn escape(text: &str) -> String {
    let text = for_terminal(text, true);
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The Content-Security-Policy: nothing may load or run but the inline stylesheet whose hash
/// is given.
pub fn content_security_policy() -> String {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src 'none'; script-src 'none'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// The logprob colour class of a token: `l0` (p ≥ 0.9) to `l5` (p < 0.05).
fn logprob_class(logprob: f32) -> &'static str {
    let p = logprob.exp();
    match p {
        p if p >= 0.9 => "l0",
        p if p >= 0.6 => "l1",
        p if p >= 0.35 => "l2",
        p if p >= 0.15 => "l3",
        p if p >= 0.05 => "l4",
        _ => "l5",
    }
}

/// The tooltip of a token: its id, logprob, probability and entropy, then the alternatives.
fn tooltip(step: &Step) -> String {
    let mut t = format!(
        "step {} · id {} · logprob {:.3} (p {:.3}) · entropy {:.2}",
        step.index,
        step.token_id,
        step.logprob,
        step.logprob.exp(),
        step.entropy
    );
    for (rank, alt) in step.top.iter().enumerate() {
        let _ = write!(
            t,
            "\n{}. {} {:.3} (p {:.3})",
            rank + 1,
            crate::sanitize::visible_token(&alt.text),
            alt.logprob,
            alt.logprob.exp()
        );
    }
    escape(&t)
}

fn mark_link(out: &mut String, run: &str, m: Mark) {
    let (id, class, label) = match m {
        Mark::Flag(i) => (format!("{run}-f{}", i + 1), "mk", format!("⚑{}", i + 1)),
        Mark::Note(i) => (format!("{run}-n{}", i + 1), "mk n", format!("✎{}", i + 1)),
    };
    let _ = write!(out, "<a class=\"{class}\" href=\"#{id}\">{label}</a>");
}

fn trace_html(out: &mut String, run_id: &str, rec: &RunRecord, marks: &Marks) {
    for (phase, range) in phase_sections(&rec.steps) {
        let (class, title) = match phase {
            Phase::Think => ("think", "Thinking"),
            Phase::Answer => ("answer", "Answer"),
        };
        let _ = write!(
            out,
            "<h3>{title} <small>(steps {})</small></h3>\n<div class=\"trace {class}\">",
            span_text(range.start as u32, range.end as u32)
        );
        for i in range {
            let (step, _) = &rec.steps[i];
            for &m in &marks.starts[i] {
                mark_link(out, run_id, m);
            }
            let mut classes = format!("t {}", logprob_class(step.logprob));
            if Marks::covering(&rec.flags, step.index).is_some() {
                classes.push_str(" fl");
            }
            if rec
                .notes
                .iter()
                .any(|n| n.start <= step.index && step.index < n.end.max(n.start + 1))
            {
                classes.push_str(" nt");
            }
            let _ = write!(
                out,
                "<span id=\"{run_id}-s{}\" class=\"{classes}\" title=\"{}\">{}</span>",
                step.index,
                tooltip(step),
                escape(&step.text)
            );
        }
        out.push_str("</div>\n");
    }
}

/// An inline SVG of entropy per step (polyline), low-confidence steps as red ticks, and flag
/// spans as shaded bands.
fn timeline_svg(out: &mut String, rec: &RunRecord) {
    const W: f32 = 1000.0;
    const H: f32 = 80.0;
    let n = rec.steps.len().max(1) as f32;
    let max_h = rec.steps.iter().map(|(s, _)| s.entropy).fold(0.0f32, f32::max).max(1e-3);
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"100%\" height=\"{H}\" role=\"img\"><title>Entropy per step (max {max_h:.2} nats); shaded: flags</title><rect width=\"{W}\" height=\"{H}\" fill=\"#fafafa\" stroke=\"#ccc\"/>"
    );
    for f in &rec.flags {
        let x = f.start as f32 / n * W;
        let w = ((f.end.max(f.start + 1) - f.start) as f32 / n * W).max(1.5);
        let _ = write!(out, "<rect x=\"{x:.1}\" y=\"0\" width=\"{w:.1}\" height=\"{H}\" fill=\"#f3c0c0\" opacity=\"0.6\"/>");
    }
    let mut points = String::new();
    for (i, (s, _)) in rec.steps.iter().enumerate() {
        let x = (i as f32 + 0.5) / n * W;
        let y = H - 4.0 - (s.entropy.max(0.0) / max_h) * (H - 8.0);
        let _ = write!(points, "{x:.1},{y:.1} ");
    }
    let _ = write!(
        out,
        "<polyline fill=\"none\" stroke=\"#3a5fcd\" stroke-width=\"1.2\" points=\"{}\"/>",
        points.trim_end()
    );
    for (i, (s, _)) in rec.steps.iter().enumerate() {
        if s.logprob.exp() < 0.05 {
            let x = (i as f32 + 0.5) / n * W;
            let _ = write!(out, "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{}\" y2=\"{H}\" stroke=\"#c00\" stroke-width=\"1\"/>", H - 10.0);
        }
    }
    out.push_str("</svg>\n");
}

/// Per MoE layer, how often each expert was selected: a table coloured `h0`–`h9`.
fn expert_heat(out: &mut String, rec: &RunRecord) {
    let routes: Vec<&Routing> = rec.steps.iter().filter_map(|(_, r)| r.as_ref()).collect();
    if routes.is_empty() {
        return;
    }
    let mut counts: std::collections::BTreeMap<u16, Vec<u32>> = Default::default();
    let mut experts = 0usize;
    for r in &routes {
        for l in &r.layers {
            let row = counts.entry(l.layer).or_default();
            for &e in &l.experts {
                let e = usize::from(e);
                if row.len() <= e {
                    row.resize(e + 1, 0);
                }
                row[e] += 1;
                experts = experts.max(e + 1);
            }
        }
    }
    let _ = writeln!(out, "<h3>Expert usage</h3>\n<p>Selections per layer and expert over {} tokens.</p>\n<table class=\"heat\"><tr><th>layer</th>", routes.len());
    for e in 0..experts {
        let _ = write!(out, "<th>{e}</th>");
    }
    out.push_str("</tr>\n");
    for (layer, row) in &counts {
        let max = row.iter().copied().max().unwrap_or(0).max(1);
        let _ = write!(out, "<tr><th>{layer}</th>");
        for e in 0..experts {
            let c = row.get(e).copied().unwrap_or(0);
            let level = (c * 9).div_ceil(max);
            let _ = write!(
                out,
                "<td class=\"h{level}\" title=\"layer {layer} expert {e}: {c}\">{c}</td>"
            );
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

fn rows_table(out: &mut String, rows: impl IntoIterator<Item = (String, String)>) {
    out.push_str("<table>\n");
    for (k, v) in rows {
        let _ = writeln!(out, "<tr><th>{}</th><td>{}</td></tr>", escape(&k), escape(&v));
    }
    out.push_str("</table>\n");
}

fn run_section(out: &mut String, rec: &RunRecord, stats: &[(String, String)]) {
    let Some(run) = &rec.run else { return };
    let rid = run.id.to_string();
    let label = run.label.as_deref().map(|l| format!(" — {}", escape(l))).unwrap_or_default();
    let _ = writeln!(out, "<section id=\"{rid}\">\n<h2>Run {rid}{label}</h2>");
    rows_table(out, settings_rows(run).into_iter().map(|(k, v)| (k.to_string(), v)));
    out.push_str("<h3>Prompt</h3>\n");
    for m in &run.messages {
        let _ = writeln!(
            out,
            "<div class=\"msg\"><strong>{}</strong><pre>{}</pre></div>",
            escape(&m.role),
            escape(&m.content)
        );
    }
    if !rec.steps.is_empty() {
        out.push_str("<h3>Timeline</h3>\n");
        timeline_svg(out, rec);
        out.push_str("<p class=\"legend\">Token probability: <span class=\"l0\">≥ 0.9</span><span class=\"l1\">≥ 0.6</span><span class=\"l2\">≥ 0.35</span><span class=\"l3\">≥ 0.15</span><span class=\"l4\">≥ 0.05</span><span class=\"l5\">&lt; 0.05</span> Hover a token for its alternatives.</p>\n");
    }
    let marks = Marks::new(rec.steps.len(), &rec.flags, &rec.notes);
    trace_html(out, &rid, rec, &marks);
    if !rec.flags.is_empty() {
        out.push_str("<h3>Flags</h3>\n<ol>\n");
        for (i, f) in rec.flags.iter().enumerate() {
            let _ = writeln!(
                out,
                "<li id=\"{rid}-f{n}\"><a href=\"#{rid}-s{}\">⚑{n}</a> <strong>{}</strong> ({}, steps {}): {}</li>",
                f.start,
                escape(&f.kind.as_str()),
                f.severity.as_str(),
                span_text(f.start, f.end),
                escape(&f.detail),
                n = i + 1,
            );
        }
        out.push_str("</ol>\n");
    }
    if !rec.notes.is_empty() {
        out.push_str("<h3>Notes</h3>\n<ol>\n");
        for (i, n) in rec.notes.iter().enumerate() {
            let _ = writeln!(
                out,
                "<li id=\"{rid}-n{k}\"><a href=\"#{rid}-s{}\">✎{k}</a> (steps {}): {}</li>",
                n.start,
                span_text(n.start, n.end),
                escape(&n.text),
                k = i + 1,
            );
        }
        out.push_str("</ol>\n");
    }
    if !stats.is_empty() {
        out.push_str("<h3>Statistics</h3>\n");
        rows_table(out, stats.iter().cloned());
    }
    expert_heat(out, rec);
    out.push_str("</section>\n");
}

/// The whole session as one HTML page. `stats[i]` holds the statistics rows of `rec.runs[i]`.
pub fn render(rec: &SessionRecord, stats: &[Vec<(String, String)>]) -> String {
    let title = escape(&rec.session.title);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} — thinkdbg</title>\n<style>{STYLE}</style>\n</head><body>\n\
         <h1>{title}</h1>\n<p>Session {}, exported by thinkdbg {}.</p>\n",
        content_security_policy(),
        rec.session.id,
        env!("CARGO_PKG_VERSION"),
    );
    for (i, run) in rec.runs.iter().enumerate() {
        run_section(&mut out, run, stats.get(i).map(Vec::as_slice).unwrap_or(&[]));
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_quotes_and_controls_are_escaped() {
        assert_eq!(escape("<a href='x'>\"&"), "&lt;a href=&#39;x&#39;&gt;&quot;&amp;");
        let e = escape("\u{1b}]52;c;AAA\u{7}\u{9b}");
        assert!(!e.chars().any(char::is_control), "{e:?}");
    }

    #[test]
    fn the_policy_allows_only_the_page_stylesheet() {
        let csp = content_security_policy();
        assert!(csp.starts_with("default-src 'none'; style-src 'sha256-"));
        assert!(csp.contains("script-src 'none'"));
        assert!(!csp.contains("unsafe"));
    }

    #[test]
    fn logprob_classes_follow_probability() {
        assert_eq!(logprob_class(0.0), "l0");
        assert_eq!(logprob_class(-0.3), "l1");
        assert_eq!(logprob_class(-5.0), "l5");
    }
}
