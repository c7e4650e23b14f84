//! An experiment's report as Markdown (tables) and as one self-contained HTML page: the same
//! tables plus, per metric, an SVG bar chart of every variant's value with its 95% interval.
//! Same rules as the run export: no script, a Content-Security-Policy that allows only the
//! page's own stylesheet (by hash), and every name and answer (untrusted text) escaped.

use std::fmt::Write;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::report::{Report, MEANS, RATES};
use crate::export::{html, markdown};

/// A rate as a percentage, or `-`.
fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{:.1}%", 100.0 * x))
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

/// The rows of the per-variant table: label, then one cell per variant.
pub fn variant_rows(r: &Report) -> Vec<(String, Vec<String>)> {
    let mut rows = vec![(
        "completed samples".to_string(),
        r.variants.iter().map(|v| format!("{} of {}", v.n(), v.planned)).collect(),
    )];
    for &(key, label) in RATES {
        if key == "accuracy" && r.expect.is_none() {
            continue;
        }
        let cells = r
            .variants
            .iter()
            .map(|v| match v.rate(key).filter(|x| x.n > 0) {
                Some(rate) => {
                    let (lo, hi) = rate.wilson();
                    format!(
                        "{} ({}/{}; {:.0}–{:.0}%)",
                        pct(rate.p()),
                        rate.k,
                        rate.n,
                        100.0 * lo,
                        100.0 * hi
                    )
                }
                None => "-".into(),
            })
            .collect();
        rows.push((label.to_string(), cells));
    }
    for &(key, label) in MEANS {
        let digits = if key == "mean_logprob" || key == "target_language_ratio" { 3 } else { 1 };
        rows.push((
            label.to_string(),
            r.variants.iter().map(|v| num(v.mean(key), digits)).collect(),
        ));
    }
    let vote = |v: &Option<(String, f64)>| match v {
        Some((answer, share)) => {
            let cut: String = answer.chars().take(24).collect();
            let cut = if cut.len() < answer.len() { format!("{cut}…") } else { cut };
            format!("{cut} ({:.0}%)", 100.0 * share)
        }
        None => "-".into(),
    };
    rows.push(("majority vote".into(), r.variants.iter().map(|v| vote(&v.majority)).collect()));
    rows.push((
        "confidence-weighted vote".into(),
        r.variants.iter().map(|v| vote(&v.weighted)).collect(),
    ));
    rows.push((
        "answers".to_string(),
        r.variants
            .iter()
            .map(|v| {
                let mut parts: Vec<String> =
                    v.answers.iter().take(5).map(|(a, n)| format!("{a} ×{n}")).collect();
                if v.answers.len() > 5 {
                    parts.push(format!("+{} more", v.answers.len() - 5));
                }
                parts.join(", ")
            })
            .collect(),
    ));
    rows
}

/// One comparison's rows: metric, base, variant, difference [95% interval], McNemar p.
pub fn comparison_rows(c: &super::report::Comparison) -> Vec<[String; 5]> {
    c.metrics
        .iter()
        .map(|d| {
            let is_rate = d.interval == "newcombe";
            let f =
                |x: f64| if is_rate { format!("{:+.1} pt", 100.0 * x) } else { format!("{x:+.3}") };
            let v = |x: f64| if is_rate { pct(Some(x)) } else { format!("{x:.3}") };
            [
                d.label.to_string(),
                v(d.base),
                v(d.value),
                format!(
                    "{} [{}, {}]{}",
                    f(d.diff),
                    f(d.lo),
                    f(d.hi),
                    if d.significant() { " *" } else { "" }
                ),
                d.mcnemar.map_or("-".into(), |(pairs, b, c, p)| {
                    format!("p = {p:.4} ({b} vs {c} of {pairs} pairs)")
                }),
            ]
        })
        .collect()
}

const METHODS: &str = "Intervals are 95%: Wilson score intervals for each rate; for differences, \
Newcombe's hybrid score interval (method 10) for rates and a normal approximation with Welch's \
standard error for means; * marks an interval that leaves out zero. McNemar: exact two-sided \
binomial test on the discordant pairs of samples with the same seed.";

pub fn markdown(r: &Report) -> String {
    let e = markdown::escape;
    let mut out = String::new();
    let _ = writeln!(out, "# Experiment {}: {}\n", super::runner::shown_id(r.id), e(&r.name));
    let _ = writeln!(out, "- model: {}", e(&r.model));
    if let Some(x) = &r.expect {
        let _ = writeln!(out, "- expected answer: {}", e(x));
    }
    let _ = writeln!(out, "\n## Variants\n");
    let names: Vec<String> = r.variants.iter().map(|v| e(&v.name)).collect();
    let _ = writeln!(out, "| metric | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(names.len()));
    for (label, cells) in variant_rows(r) {
        let cells: Vec<String> = cells.iter().map(|c| e(c)).collect();
        let _ = writeln!(out, "| {} | {} |", e(&label), cells.join(" | "));
    }
    for c in &r.comparisons {
        let _ = writeln!(out, "\n## {} against {}\n", e(&c.variant), e(&c.against));
        let _ = writeln!(
            out,
            "| metric | {} | {} | difference [95% interval] | exact McNemar |",
            e(&c.against),
            e(&c.variant)
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        for row in comparison_rows(c) {
            let cells: Vec<String> = row.iter().map(|c| e(c)).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
    }
    let _ = writeln!(out, "\n{}", e(METHODS));
    out
}

/// One bar of a chart: the variant, its value and its interval.
type Bar = (String, f64, Option<(f64, f64)>);

const STYLE: &str = "
body{font:15px/1.5 system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#1d1f21;background:#fff}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.15em .5em;text-align:left;vertical-align:top}
.sig{background:#fde8c8;font-weight:bold}.chart{margin:.3em 0 1.2em}.note{color:#555;font-size:.9em}
";

fn csp() -> String {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src 'none'; script-src 'none'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// One horizontal bar per variant (value with its interval as a whisker), scaled to `max`.
fn chart(title: &str, bars: &[Bar], max: f64, as_pct: bool) -> String {
    let (label_w, bar_w, row_h) = (160.0, 360.0, 22.0);
    let h = row_h * bars.len() as f64 + 28.0;
    let scale = |x: f64| label_w + bar_w * (x / max).clamp(0.0, 1.0);
    let mut s = format!(
        "<svg class=\"chart\" width=\"{}\" height=\"{h}\" viewBox=\"0 0 {} {h}\" role=\"img\" aria-label=\"{}\">",
        label_w + bar_w + 90.0,
        label_w + bar_w + 90.0,
        html::escape(title)
    );
    let _ = write!(
        s,
        "<text x=\"0\" y=\"14\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        html::escape(title)
    );
    for (i, (name, v, ci)) in bars.iter().enumerate() {
        let y = 22.0 + row_h * i as f64;
        let shown = if as_pct { format!("{:.1}%", 100.0 * v) } else { format!("{v:.3}") };
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text><rect x=\"{label_w}\" y=\"{}\" width=\"{:.1}\" height=\"14\" fill=\"#7aa6d8\"/>",
            y + 11.0,
            html::escape(name),
            y,
            scale(*v) - label_w
        );
        if let Some((lo, hi)) = ci {
            let (x0, x1) = (scale(*lo), scale(*hi));
            let _ = write!(
                s,
                "<line x1=\"{x0:.1}\" y1=\"{m}\" x2=\"{x1:.1}\" y2=\"{m}\" stroke=\"#222\"/><line x1=\"{x0:.1}\" y1=\"{a}\" x2=\"{x0:.1}\" y2=\"{b}\" stroke=\"#222\"/><line x1=\"{x1:.1}\" y1=\"{a}\" x2=\"{x1:.1}\" y2=\"{b}\" stroke=\"#222\"/>",
                m = y + 7.0,
                a = y + 2.0,
                b = y + 12.0
            );
        }
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text>",
            label_w + bar_w + 6.0,
            y + 11.0,
            html::escape(&shown)
        );
    }
    s.push_str("</svg>");
    s
}

pub fn html(r: &Report) -> String {
    let e = html::escape;
    let mut out = String::new();
    let title = format!("Experiment {}: {}", super::runner::shown_id(r.id), r.name);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        csp(),
        e(&title)
    );
    let _ = writeln!(out, "<h1>{}</h1><p>model: {}", e(&title), e(&r.model));
    if let Some(x) = &r.expect {
        let _ = write!(out, " · expected answer: <code>{}</code>", e(x));
    }
    out.push_str("</p>\n<h2>Variants</h2><table><tr><th>metric</th>");
    for v in &r.variants {
        let _ = write!(out, "<th>{}</th>", e(&v.name));
    }
    out.push_str("</tr>\n");
    for (label, cells) in variant_rows(r) {
        let _ = write!(out, "<tr><td>{}</td>", e(&label));
        for c in cells {
            let _ = write!(out, "<td>{}</td>", e(&c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    for c in &r.comparisons {
        let _ = write!(
            out,
            "<h2>{} against {}</h2><table><tr><th>metric</th><th>{}</th><th>{}</th><th>difference [95% interval]</th><th>exact McNemar</th></tr>",
            e(&c.variant),
            e(&c.against),
            e(&c.against),
            e(&c.variant)
        );
        out.push('\n');
        for (d, row) in c.metrics.iter().zip(comparison_rows(c)) {
            let class = if d.significant() { " class=\"sig\"" } else { "" };
            let _ = write!(out, "<tr{class}>");
            for cell in row {
                let _ = write!(out, "<td>{}</td>", e(&cell));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
    }
    out.push_str("<h2>Charts</h2>\n");
    for &(key, label) in RATES {
        let bars: Vec<Bar> = r
            .variants
            .iter()
            .filter_map(|v| {
                let rate = v.rate(key).filter(|x| x.n > 0)?;
                Some((v.name.clone(), rate.p()?, Some(rate.wilson())))
            })
            .collect();
        if !bars.is_empty() {
            out.push_str(&chart(&format!("{label} (95% Wilson interval)"), &bars, 1.0, true));
            out.push('\n');
        }
    }
    for &(key, label) in MEANS {
        let bars: Vec<Bar> = r
            .variants
            .iter()
            .filter_map(|v| {
                let (m, var, n) = super::stats::mean_var(&v.values(key))?;
                let half = super::stats::Z95 * (var / n as f64).sqrt();
                Some((v.name.clone(), m, Some((m - half, m + half))))
            })
            .collect();
        // Bars start at zero: negative means (logprobs) are drawn by magnitude.
        let bars: Vec<_> = bars
            .into_iter()
            .map(
                |(n, m, ci)| {
                    if m < 0.0 {
                        (n, -m, ci.map(|(lo, hi)| (-hi, -lo)))
                    } else {
                        (n, m, ci)
                    }
                },
            )
            .collect();
        let max = bars.iter().map(|b| b.2.map_or(b.1, |c| c.1).max(b.1)).fold(0.0, f64::max);
        if !bars.is_empty() && max > 0.0 {
            let title = if key == "mean_logprob" {
                format!("−{label} (95% interval)")
            } else {
                format!("{label} (95% interval)")
            };
            out.push_str(&chart(&title, &bars, max * 1.05, false));
            out.push('\n');
        }
    }
    let _ = writeln!(out, "<p class=\"note\">{}</p>\n</body></html>", e(METHODS));
    out
}
