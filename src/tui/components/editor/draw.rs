//! Drawing the prompt editor (run dialog): one row per field, messages over several rows
//! (their own newlines, then wrapped to the dialog's width), the text cursor as `▏`, and the
//! rows scrolled so the cursor stays visible. Draws from `&PromptEditor` only; no I/O. May
//! import its component, `components::ctx` and `theme`.

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;
use unicode_width::UnicodeWidthChar;

use super::{PromptEditor, FIELDS, KEY_ENV, KINDS, LOGPROBS, SOURCE, SOURCES, USER};
use crate::tui::components::ctx::Ctx;
use crate::tui::text::shown;
use crate::tui::theme::Theme;

/// Width of the label column (label and one space).
const LABEL_W: usize = 13;

/// The keys, shown under the fields.
pub const FOOTER: &str =
    "tab/shift-tab field · ↑↓←→ home end move · alt-enter or ctrl-j new line · \
                          space or ←→ switch a choice · enter run · esc cancel";

/// Cuts `text` into pieces of at most `w` display columns.
fn wrap(text: &str, w: usize) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut used = 0;
    for c in text.chars() {
        let cw = c.width().unwrap_or(0);
        if used + cw > w && used > 0 {
            out.push(String::new());
            used = 0;
        }
        if let Some(last) = out.last_mut() {
            last.push(c);
        }
        used += cw;
    }
    out
}

/// The rows of the fields and the row that holds the cursor.
fn field_rows(t: &Theme, e: &PromptEditor, width: usize) -> (Vec<Line<'static>>, usize) {
    let val_w = width.saturating_sub(LABEL_W).max(8);
    let mut rows = Vec::new();
    let mut caret_row = 0;
    for i in e.order() {
        let focus = i == e.focus;
        let label = if e.raw && i == USER { "prompt" } else { FIELDS[i] };
        let key = if focus { t.get("editor.field.focus") } else { t.get("editor.field") };
        let head = Span::styled(format!("{label:>w$} ", w = LABEL_W - 1), key);
        if focus {
            caret_row = rows.len();
        }
        if i == SOURCE || i == LOGPROBS {
            let (options, names) = if i == SOURCE {
                (SOURCES, ["embedded model", "server endpoint"])
            } else {
                (KINDS, ["raw (before sampling)", "post-sampling"])
            };
            let mut spans = vec![head];
            for (o, name) in options.iter().zip(names) {
                let on = e.values[i] == *o;
                let st = if on && focus { t.get("ui.selection") } else { t.get("ui.text") };
                spans.push(Span::styled(format!("{} {name}", if on { "●" } else { "○" }), st));
                spans.push(Span::raw("  "));
            }
            rows.push(Line::from(spans));
            continue;
        }
        let value = &e.values[i];
        if i == KEY_ENV && value.is_empty() && !focus {
            rows.push(Line::from(vec![
                head,
                Span::styled(
                    "(the name of a variable holding the key; empty: none)",
                    t.get("ui.dim"),
                ),
            ]));
            continue;
        }
        let mut with_caret = value.clone();
        if focus {
            with_caret.insert(e.caret.min(with_caret.len()), '▏');
        }
        let mut first = true;
        for line in with_caret.split('\n') {
            let clean = shown(line);
            for piece in wrap(&clean, val_w) {
                if focus && piece.contains('▏') {
                    caret_row = rows.len();
                }
                let lead = if first {
                    head.clone()
                } else {
                    Span::styled(" ".repeat(LABEL_W), Style::default())
                };
                first = false;
                rows.push(Line::from(vec![lead, Span::styled(piece, t.get("ui.text"))]));
            }
        }
    }
    (rows, caret_row)
}

impl PromptEditor {
    pub fn draw(&self, f: &mut Frame, area: Rect, cx: &Ctx) {
        let (t, e) = (cx.theme, self);
        let w = area.width.saturating_sub(8).min(100);
        let h = area.height.saturating_sub(4).min(26);
        let [popup] = Layout::horizontal([Constraint::Length(w)]).flex(Flex::Center).areas(area);
        let [popup] = Layout::vertical([Constraint::Length(h)]).flex(Flex::Center).areas(popup);
        f.render_widget(Clear, popup);
        let title = if e.remote() {
            format!(" Edit and re-run {} on a server endpoint ", e.parent)
        } else {
            format!(" Edit and re-run {} ", e.parent)
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(t.get("ui.border.focus"))
            .title(Span::styled(title, t.get("ui.title")));
        let inner = block.inner(popup);
        f.render_widget(block, popup);
        let width = usize::from(inner.width);
        let footer_rows = FOOTER.chars().count().div_ceil(width.max(1)).max(1) as u16;
        let [fields, _, footer] = Layout::vertical([
            Constraint::Min(1),
            Constraint::Length(1),
            Constraint::Length(footer_rows),
        ])
        .areas(inner);
        let (rows, caret_row) = field_rows(t, e, width);
        let room = usize::from(fields.height);
        let skip = (caret_row + 1).saturating_sub(room);
        let rows: Vec<Line> = rows.into_iter().skip(skip).take(room).collect();
        f.render_widget(Paragraph::new(rows), fields);
        f.render_widget(
            Paragraph::new(Span::styled(FOOTER, t.get("ui.dim"))).wrap(Wrap { trim: true }),
            footer,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wrapping_counts_display_columns() {
        assert_eq!(wrap("abcdef", 4), ["abcd", "ef"]);
        assert_eq!(wrap("", 4), [""]);
        assert_eq!(wrap("日本語", 4), ["日本", "語"]);
    }
}
