//! Markdown export: a session's prompt, settings, chain of thought and answer with flags and
//! notes marked inline, lists of both, and a statistics table per run. Model text is
//! untrusted: control and bidirectional characters become visible symbols and every character
//! Markdown or inline HTML could act on is escaped, so a renderer shows the text, never markup.

use std::fmt::Write;

use super::annotate::{settings_rows, span_text, Mark, Marks};
use crate::sanitize::for_terminal;
use crate::trace::{Phase, Step};
use crate::trace::{RunRecord, SessionRecord};

/// Text escaped for Markdown: visible controls, HTML entities for `<`, `>` and `&`, a
/// backslash before inline markup, block markers at a line start defused, line breaks kept
/// as hard breaks.
pub fn escape(text: &str) -> String {
    let text = for_terminal(text, true);
    let mut out = String::with_capacity(text.len() + 16);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            // A hard line break, except around blank lines, which already separate paragraphs.
            if out.ends_with('\n') || line.is_empty() {
                out.push('\n');
            } else {
                out.push_str("\\\n");
            }
        }
        escape_line(line, &mut out);
    }
    out
}

fn escape_line(line: &str, out: &mut String) {
    let body = line.trim_start_matches(' ');
    // Leading spaces would make an indented code block: keep them as non-breaking spaces.
    for _ in 0..line.len() - body.len() {
        out.push_str("&nbsp;");
    }
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    for (i, c) in body.char_indices() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            // List items, setext underlines and thematic breaks begin a line.
            '-' | '+' | '=' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            '.' | ')' if i == digits && digits > 0 => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
}

fn mark_label(m: Mark) -> String {
    match m {
        Mark::Flag(i) => format!("⚑{}", i + 1),
        Mark::Note(i) => format!("✎{}", i + 1),
    }
}

/// The generated text of one phase section, with `**⟦⚑N**` where a flag or note starts and
/// `**⚑N⟧**` where it ends.
fn body(
    steps: &[(Step, Option<crate::trace::Routing>)],
    marks: &Marks,
    range: std::ops::Range<usize>,
) -> String {
    let mut raw = String::new();
    for i in range {
        let (step, _) = &steps[i];
        for &m in &marks.starts[i] {
            let _ = write!(raw, " **⟦{}** ", mark_label(m));
        }
        raw.push_str(&escape(&step.text));
        for &m in &marks.ends[i] {
            let _ = write!(raw, " **{}⟧** ", mark_label(m));
        }
    }
    raw
}

/// Consecutive runs of steps in the same phase.
pub fn phase_sections(
    steps: &[(Step, Option<crate::trace::Routing>)],
) -> Vec<(Phase, std::ops::Range<usize>)> {
    let mut out: Vec<(Phase, std::ops::Range<usize>)> = Vec::new();
    for (i, (s, _)) in steps.iter().enumerate() {
        match out.last_mut() {
            Some((p, r)) if *p == s.phase => r.end = i + 1,
            _ => out.push((s.phase, i..i + 1)),
        }
    }
    out
}

fn table(out: &mut String, head: (&str, &str), rows: impl IntoIterator<Item = (String, String)>) {
    let _ = writeln!(out, "| {} | {} |\n|---|---|", head.0, head.1);
    for (k, v) in rows {
        let _ = writeln!(out, "| {} | {} |", escape(&k), escape(&v));
    }
    out.push('\n');
}

fn run_section(out: &mut String, rec: &RunRecord, stats: &[(String, String)]) {
    let Some(run) = &rec.run else { return };
    let label = run.label.as_deref().map(|l| format!(" — {}", escape(l))).unwrap_or_default();
    let _ = writeln!(out, "## Run {}{label}\n", run.id);
    table(
        out,
        ("Setting", "Value"),
        settings_rows(run).into_iter().map(|(k, v)| (k.to_string(), v)),
    );

    let _ = writeln!(out, "### Prompt\n");
    for m in &run.messages {
        let _ = writeln!(out, "**{}**\n", escape(&m.role));
        for line in escape(&m.content).split('\n') {
            let _ = writeln!(out, "> {line}");
        }
        out.push('\n');
    }

    let marks = Marks::new(rec.steps.len(), &rec.flags, &rec.notes);
    for (phase, range) in phase_sections(&rec.steps) {
        let title = match phase {
            Phase::Think => "Thinking",
            Phase::Answer => "Answer",
        };
        let _ = writeln!(
            out,
            "### {title} (steps {})\n",
            span_text(range.start as u32, range.end as u32)
        );
        let _ = writeln!(out, "{}\n", body(&rec.steps, &marks, range).trim());
    }
    if rec.steps.is_empty() {
        let _ = writeln!(out, "*No steps were recorded.*\n");
    }

    if !rec.flags.is_empty() {
        let _ = writeln!(out, "### Flags\n");
        for (i, f) in rec.flags.iter().enumerate() {
            let _ = writeln!(
                out,
                "{}. **⚑{}** {} ({:?}, steps {}): {}",
                i + 1,
                i + 1,
                escape(&f.kind.as_str()),
                f.severity,
                span_text(f.start, f.end),
                escape(&f.detail)
            );
        }
        out.push('\n');
    }
    if !rec.notes.is_empty() {
        let _ = writeln!(out, "### Notes\n");
        for (i, n) in rec.notes.iter().enumerate() {
            let _ = writeln!(
                out,
                "{}. **✎{}** (steps {}): {}",
                i + 1,
                i + 1,
                span_text(n.start, n.end),
                escape(&n.text)
            );
        }
        out.push('\n');
    }
    if !stats.is_empty() {
        let _ = writeln!(out, "### Statistics\n");
        table(out, ("Statistic", "Value"), stats.iter().cloned());
    }
}

/// The whole session as Markdown. `stats[i]` holds the statistics rows of `rec.runs[i]`
/// (computed by the caller, e.g. from `analysis`); missing entries mean no table.
pub fn render(rec: &SessionRecord, stats: &[Vec<(String, String)>]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", escape(&rec.session.title));
    let _ = writeln!(
        out,
        "Session {}, exported by thinkdbg {}.\n",
        rec.session.id,
        env!("CARGO_PKG_VERSION")
    );
    for (i, run) in rec.runs.iter().enumerate() {
        run_section(&mut out, run, stats.get(i).map(Vec::as_slice).unwrap_or(&[]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_html_in_model_text_are_escaped() {
        assert_eq!(escape("<script>alert(1)</script>"), "&lt;script&gt;alert(1)&lt;/script&gt;");
        assert_eq!(
            escape("[x](javascript:evil) *b* `c`"),
            "\\[x\\](javascript:evil) \\*b\\* \\`c\\`"
        );
        assert_eq!(escape("# h\n- item\n1. one\n> q"), "\\# h\\\n\\- item\\\n1\\. one\\\n&gt; q");
    }

    #[test]
    fn controls_become_visible_and_indentation_is_kept() {
        let e = escape("a\u{1b}[31mb\u{7}\u{202e}\n    code");
        assert!(!e.chars().any(|c| c.is_control() && c != '\n'), "{e:?}");
        assert!(e.contains('␛') && e.contains("⟨U+202E⟩"));
        assert!(e.ends_with("&nbsp;&nbsp;&nbsp;&nbsp;code"));
    }

    #[test]
    fn paragraphs_stay_paragraphs() {
        assert_eq!(escape("a\n\nb"), "a\n\nb");
    }
}
