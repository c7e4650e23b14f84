//! The Flags screen's list: the run's flags (from the store) grouped by kind, then the user's
//! notes; Enter jumps to the selected one in the trace, `e` edits and `d` deletes a note or
//! user flag. May import the viewer, `run_view`, `components::widgets` and `theme`.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use super::timeline::flag_key;
use crate::export::annotate::span_text;
use crate::trace::{Flag, Severity};
use crate::tui::components::ctx::Ctx;
use crate::tui::components::viewer::Viewer;
use crate::tui::components::widgets::fit;
use crate::tui::run_view::RunView;
use crate::tui::text::shown;

/// The text of at most 12 steps from `start` (within `start..end`).
fn excerpt(v: &RunView, start: u32, end: u32) -> String {
    let lo = (start as usize).min(v.len());
    let hi = (end as usize).clamp(lo, v.len());
    v.steps[lo..hi.min(lo + 12)].iter().map(|s| s.text.as_str()).collect()
}

/// A flag's severity as the Flags list, the inspector and the status line name it.
pub fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warn => "warn",
        Severity::Error => "error",
    }
}

/// A flag in a few words: `▲ low confidence (warn) steps 41–48`.
pub fn summary(f: &Flag) -> String {
    format!(
        "▲ {} ({}) steps {}",
        shown(&f.kind.label()),
        severity(f.severity),
        span_text(f.start, f.end)
    )
}

pub fn draw(vw: &Viewer, f: &mut Frame, area: Rect, cx: &Ctx) {
    let t = cx.theme;
    let Some(v) = &vw.view else {
        f.render_widget(Paragraph::new("No run selected."), area);
        return;
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.get("ui.border.focus"))
        .title(Span::styled(
            match v.notes.len() {
                0 => format!(" Flags · {} · {} ", v.run.id, v.flags.len()),
                n => format!(" Flags · {} · {} · notes {n} ", v.run.id, v.flags.len()),
            },
            t.get("ui.title"),
        ));
    let inner = block.inner(area);
    let w = usize::from(inner.width);
    let mut lines = Vec::new();
    let mut sel_row = 0;
    let mut last_kind = None;
    for (row, &i) in vw.flag_order().iter().enumerate() {
        let fl = &v.flags[i];
        if last_kind != Some(&fl.kind) {
            last_kind = Some(&fl.kind);
            let n = v.flags.iter().filter(|x| x.kind == fl.kind).count();
            lines.push(Line::from(Span::styled(
                fit(&format!("▲ {} ({n})", shown(&fl.kind.label())), w),
                t.get(flag_key(&fl.kind)).patch(t.get("ui.title")),
            )));
        }
        if row == vw.flag_sel {
            sel_row = lines.len();
        }
        let sev = format!("{:<5}", severity(fl.severity));
        let excerpt = excerpt(v, fl.start, fl.end);
        let text = format!(
            "  steps {:<11} {sev} {}  «{}»",
            span_text(fl.start, fl.end),
            shown(&fl.detail),
            shown(&excerpt)
        );
        let st = if row == vw.flag_sel { t.get("ui.selection") } else { t.get("ui.text") };
        lines.push(Line::from(Span::styled(fit(&text, w), st)));
    }
    let nflags = v.flags.len();
    if !v.notes.is_empty() {
        lines.push(Line::from(Span::styled(
            fit(&format!("✎ notes ({})", v.notes.len()), w),
            t.get("note.marker").patch(t.get("ui.title")),
        )));
    }
    for (k, n) in v.notes.iter().enumerate() {
        let row = nflags + k;
        if row == vw.flag_sel {
            sel_row = lines.len();
        }
        let first = n.text.lines().next().unwrap_or("");
        let more = if n.text.lines().count() > 1 { " …" } else { "" };
        let text = format!(
            "  steps {:<11} note  {}{more}  «{}»",
            span_text(n.start, n.end),
            shown(first),
            shown(&excerpt(v, n.start, n.end))
        );
        let st = if row == vw.flag_sel { t.get("ui.selection") } else { t.get("note.span") };
        lines.push(Line::from(Span::styled(fit(&text, w), st)));
    }
    if lines.is_empty() {
        lines.push(Line::from(Span::styled(
            "This run has no flags or notes. Flags come from analysis (stored with the run); \
             select a span in the trace (v) and press a for a note or F for a user flag.",
            t.get("ui.dim"),
        )));
    }
    let h = usize::from(inner.height);
    let skip = (sel_row + 1).saturating_sub(h);
    f.render_widget(
        Paragraph::new(lines.into_iter().skip(skip).collect::<Vec<_>>()).block(block),
        area,
    );
}
