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
    escape_marked(&for_terminal(text, true), &[])
}

/// Text already made visible (`for_terminal`) escaped as `escape` says, with `inserts` (our
/// own Markdown at byte offsets of `text`, in order) placed unescaped at their offsets.
fn escape_marked(text: &str, inserts: &[(usize, String)]) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut ins = inserts.iter().peekable();
    let mut base = 0;
    for (i, line) in text.split('\n').enumerate() {
        let after_blank = i == 0 || out.ends_with('\n');
        if i > 0 {
            // A hard line break, except around blank lines, which already separate paragraphs.
            if out.ends_with('\n') || line.is_empty() {
                out.push('\n');
            } else {
                out.push_str("\\\n");
            }
        }
        escape_line(line, base, after_blank, &mut ins, &mut out);
        base += line.len() + 1;
    }
    for (_, s) in ins {
        out.push_str(s);
    }
    out
}

fn escape_line<'a>(
    line: &str,
    base: usize,
    after_blank: bool,
    ins: &mut std::iter::Peekable<impl Iterator<Item = &'a (usize, String)>>,
    out: &mut String,
) {
    let body = line.trim_start_matches(' ');
    // Leading spaces stay spaces; after a blank line four would make an indented code block.
    let indent = line.len() - body.len();
    out.extend(std::iter::repeat_n(' ', if after_blank { indent.min(3) } else { indent }));
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        while let Some((_, s)) = ins.next_if(|(at, _)| *at <= base + line.len() - body.len() + i) {
            out.push_str(s);
        }
        let next = chars.peek().map(|&(_, n)| n);
        let ends_marker = next.is_none_or(char::is_whitespace);
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            // Headings, list items, setext underlines and thematic breaks begin a line; a
            // number or a negative number there is just text.
            '#' if i == 0 => out.push_str("\\#"),
            '-' | '+' | '=' if i == 0 && (ends_marker || next == Some(c)) => {
                out.push('\\');
                out.push(c);
            }
            '.' | ')' if i == digits && (1..=9).contains(&digits) && ends_marker => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    while let Some((_, s)) = ins.next_if(|(at, _)| *at <= base + line.len()) {
        out.push_str(s);
    }
}

fn mark_label(m: Mark) -> String {
    match m {
        Mark::Flag(i) => format!("⚑{}", i + 1),
        Mark::Note(i) => format!("✎{}", i + 1),
    }
}

/// Whether `c` joins its neighbours into one word (ideographs each stand alone).
fn joins(c: char) -> bool {
    c.is_alphanumeric() && (c as u32) < 0x2E80
}

/// Where a mark that starts at `pos` shows: past leading spaces, at the start of its word.
fn word_start(text: &str, mut pos: usize, limit: usize) -> usize {
    while let Some(c) = text[pos..].chars().next().filter(|c| c.is_whitespace() && pos < limit) {
        pos += c.len_utf8();
    }
    while let (Some(p), Some(c)) = (text[..pos].chars().next_back(), text[pos..].chars().next()) {
        if !(joins(p) && joins(c)) {
            break;
        }
        pos -= p.len_utf8();
    }
    pos
}

/// Where a mark that ends at `pos` shows: before trailing spaces, at the end of its word.
fn word_end(text: &str, mut pos: usize, floor: usize) -> usize {
    while let Some(c) = text[..pos].chars().next_back().filter(|c| c.is_whitespace() && pos > floor)
    {
        pos -= c.len_utf8();
    }
    while let (Some(p), Some(c)) = (text[..pos].chars().next_back(), text[pos..].chars().next()) {
        if !(joins(p) && joins(c)) {
            break;
        }
        pos += c.len_utf8();
    }
    pos
}

/// The generated text of one phase section, with `**⟦⚑N**` before the word where a flag or
/// note starts and `**⚑N⟧**` after the word where it ends (never inside a word).
fn body(
    steps: &[(Step, Option<crate::trace::Routing>)],
    marks: &Marks,
    range: std::ops::Range<usize>,
) -> String {
    let mut text = String::new();
    let mut offsets = Vec::with_capacity(range.len() + 1);
    for (step, _) in &steps[range.clone()] {
        offsets.push(text.len());
        text.push_str(&for_terminal(&step.text, true));
    }
    offsets.push(text.len());
    // Each mark's start and end offsets in this section (one of them may lie outside it).
    let mut spans: Vec<(Mark, Option<usize>, Option<usize>)> = Vec::new();
    for (k, i) in range.enumerate() {
        for &m in &marks.starts[i] {
            spans.push((m, Some(offsets[k]), None));
        }
        for &m in &marks.ends[i] {
            match spans.iter_mut().find(|(o, _, e)| *o == m && e.is_none()) {
                Some(s) => s.2 = Some(offsets[k + 1]),
                None => spans.push((m, None, Some(offsets[k + 1]))),
            }
        }
    }
    // (offset, ends before starts at one offset, order of appearance, markdown)
    let mut inserts: Vec<(usize, u8, usize, String)> = Vec::new();
    for (n, (m, start, end)) in spans.into_iter().enumerate() {
        let s = start.map(|s| word_start(&text, s, end.unwrap_or(text.len())));
        let e = end.map(|e| word_end(&text, e, start.unwrap_or(0)).max(s.unwrap_or(0)));
        if let Some(s) = s {
            inserts.push((s, 1, n, format!("**⟦{}** ", mark_label(m))));
        }
        if let Some(e) = e {
            // An end at its own start's offset still comes after it.
            let kind = if Some(e) == s { 2 } else { 0 };
            inserts.push((e, kind, n, format!(" **{}⟧**", mark_label(m))));
        }
    }
    inserts.sort_by_key(|&(at, kind, n, _)| (at, kind, n));
    let inserts: Vec<(usize, String)> = inserts.into_iter().map(|(at, _, _, s)| (at, s)).collect();
    escape_marked(&text, &inserts)
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

    if run.messages.is_empty() && !run.rendered_prompt.is_empty() {
        // A `--raw` run: the text as given.
        let _ = writeln!(out, "**raw prompt**\n");
        for line in escape(&run.rendered_prompt).split('\n') {
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
                "{}. **⚑{}** {} ({}, steps {}): {}",
                i + 1,
                i + 1,
                escape(&f.kind.as_str()),
                f.severity.as_str(),
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
        // Indentation is kept as plain spaces (after a blank line at most three: four would
        // make a code block).
        assert!(e.ends_with("\\\n    code") && !e.contains("&nbsp;"), "{e:?}");
        assert_eq!(escape("a\n\n      b"), "a\n\n   b");
    }

    #[test]
    fn numbers_and_dashes_inside_text_stay_as_written() {
        assert_eq!(
            escape("pi is 3.14, 1. or 2) and -5 + 2 = -3"),
            "pi is 3.14, 1. or 2) and -5 + 2 = -3"
        );
        assert_eq!(
            escape("2024 was a year.\n-5 degrees\n3.5 cups"),
            "2024 was a year.\\\n-5 degrees\\\n3.5 cups"
        );
        assert_eq!(
            escape("1) one\n+ two\n---\nC# and #1"),
            "1\\) one\\\n\\+ two\\\n\\---\\\nC# and #1"
        );
    }

    fn steps_of(texts: &[&str]) -> Vec<(Step, Option<crate::trace::Routing>)> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let step = Step {
                    index: i as u32,
                    token_id: i as u32,
                    text: (*t).to_string(),
                    logprob: -0.1,
                    entropy: 0.1,
                    phase: Phase::Answer,
                    t_us: 0,
                    top: Vec::new(),
                };
                (step, None)
            })
            .collect()
    }

    fn flag(start: u32, end: u32) -> crate::trace::Flag {
        crate::trace::Flag {
            start,
            end,
            kind: crate::trace::FlagKind::LowConfidence,
            severity: crate::trace::Severity::Warn,
            detail: String::new(),
            origin: crate::trace::Origin::Auto,
        }
    }

    #[test]
    fn marks_sit_at_word_boundaries_with_plain_spaces() {
        // A flag on the '9' of '91' (two tokens) wraps the whole number.
        let steps = steps_of(&["The", " total", " is", " 9", "1", " apples", ".\n\n", "  Done"]);
        let marks = Marks::new(steps.len(), &[flag(3, 4)], &[]);
        let b = body(&steps, &marks, 0..steps.len());
        assert_eq!(b, "The total is **⟦⚑1** 91 **⚑1⟧** apples.\n\n  Done");
        // A span ending in a paragraph break closes before it; one starting on a space opens
        // after it.
        let marks = Marks::new(steps.len(), &[flag(5, 7)], &[]);
        let b = body(&steps, &marks, 0..steps.len());
        assert_eq!(b, "The total is 91 **⟦⚑1** apples. **⚑1⟧**\n\n  Done");
    }

    #[test]
    fn paragraphs_stay_paragraphs() {
        assert_eq!(escape("a\n\nb"), "a\n\nb");
    }
}
