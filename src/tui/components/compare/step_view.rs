//! The compare screen's step view: the step map of `crate::compare` as a table, the
//! reasoning steps both runs took side by side (with their similarity), the steps only one
//! took on their own row, each with its flags and mean confidence and the start of its text;
//! a cursor row, a summary and a legend. May import the compare component, `run_view`,
//! `theme` and `tui::text`.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use super::CompareState;
use crate::compare::{StepInfo, StepMatch};
use crate::tui::components::ctx::Ctx;
use crate::tui::run_view::RunView;
use crate::tui::text::shown;
use crate::tui::theme::Theme;

/// `s` cut or padded to exactly `w` columns.
fn fit_to(s: &str, w: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for ch in s.chars() {
        let cw = UnicodeWidthStr::width(ch.encode_utf8(&mut [0; 4]) as &str);
        if used + cw > w {
            break;
        }
        out.push(ch);
        used += cw;
    }
    out.push_str(&" ".repeat(w - used));
    out
}

/// One step as spans of `w` columns: index, flags, confidence, the start of its text.
fn cell(
    t: &Theme,
    v: &RunView,
    info: Option<(usize, &StepInfo)>,
    style: Style,
    w: usize,
) -> Vec<Span<'static>> {
    let Some((i, st)) = info else { return vec![Span::styled(" ".repeat(w), style)] };
    let flags: String = st.flags.iter().map(|f| f.symbol()).collect();
    let conf = st.confidence.map_or("  -".into(), |p| format!("{:>3.0}%", p * 100.0));
    let text: String = v
        .steps
        .get(st.span.clone())
        .unwrap_or(&[])
        .iter()
        .map(|s| s.text.as_str())
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let head = format!("#{i:<3}");
    let flags = fit_to(&flags, 3);
    let rest = w.saturating_sub(4 + 3 + 5);
    vec![
        Span::styled(fit_to(&head, 4), style.patch(t.get("ui.dim"))),
        Span::styled(flags, style.patch(t.get("ui.warning"))),
        Span::styled(format!("{conf} "), style),
        Span::styled(fit_to(&shown(&text), rest), style),
    ]
}

pub fn draw(c: &CompareState, f: &mut Frame, area: Rect, cx: &Ctx) {
    let t = cx.theme;
    let [table, leg] = Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(area);
    let (same, changed, only_a, only_b) = c.cmp.step_counts();
    let title = format!(
        " step map: {same} same · {changed} changed · {only_a} only in A · {only_b} only in B "
    );
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.get("ui.border.focus"))
        .title(Span::styled(title, t.get("ui.title")));
    let inner = block.inner(table);
    let h = usize::from(inner.height).max(1);
    let width = usize::from(inner.width);
    // Mark, A's cell, the similarity, B's cell.
    let cw = width.saturating_sub(2 + 6) / 2;
    let top = c.step_cursor.saturating_sub(h / 2).min(c.cmp.steps.len().saturating_sub(h));
    let mut lines = Vec::new();
    for (k, m) in c.cmp.steps.iter().enumerate().skip(top).take(h) {
        let StepMatch { a, b, similarity } = *m;
        let (mark, kind) = match (a, b) {
            _ if m.same() => ("=", t.get("compare.same")),
            (Some(_), Some(_)) => ("~", t.get("compare.diff")),
            (Some(_), None) => ("-", t.get("compare.diff")),
            _ => ("+", t.get("compare.diff")),
        };
        let base = if k == c.step_cursor { t.get("ui.selection") } else { Style::default() };
        let text = base.patch(t.get("ui.text"));
        let ia = a.and_then(|i| c.cmp.step_info.0.get(i).map(|x| (i, x)));
        let ib = b.and_then(|i| c.cmp.step_info.1.get(i).map(|x| (i, x)));
        let sim =
            if a.is_some() && b.is_some() { format!(" {similarity:.2} ") } else { "      ".into() };
        let mut spans = vec![Span::styled(format!("{mark} "), base.patch(kind))];
        spans.extend(cell(t, &c.a, ia, text, cw));
        spans.push(Span::styled(sim, base.patch(t.get("ui.dim"))));
        spans.extend(cell(t, &c.b, ib, text, cw));
        lines.push(Line::from(spans));
    }
    if lines.is_empty() {
        lines.push(Line::from(Span::styled("neither run has reasoning steps", t.get("ui.dim"))));
    }
    f.render_widget(Paragraph::new(lines).block(block), table);
    let dim = t.get("ui.dim");
    let key = t.get("ui.help.key");
    let legend = Line::from(vec![
        Span::styled("=same ~changed -/+ one run ↩back 文lang ?low ⟳loop ", dim),
        Span::styled("enter", key),
        Span::styled(" tokens ", dim),
        Span::styled("n", key),
        Span::styled("/", dim),
        Span::styled("N", key),
        Span::styled(" next ", dim),
        Span::styled("s", key),
        Span::styled(" back", dim),
    ]);
    f.render_widget(Paragraph::new(legend), leg);
}
