//! Small drawing helpers the components share: text cut to a width, dates, centred dialog
//! frames and the column maxima of a sparkline. Pure functions of their arguments; no state,
//! no I/O. May import `theme` and ratatui only.

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders, Clear};
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use crate::tui::theme::Theme;

/// `text` cut to `w` columns (with `…`) and padded to exactly `w`.
pub fn fit(text: &str, w: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let cw = c.to_string().width();
        if used + cw > w.saturating_sub(1) && text.width() > w {
            out.push('…');
            used += 1;
            break;
        }
        out.push(c);
        used += cw;
    }
    out.push_str(&" ".repeat(w.saturating_sub(used)));
    out
}

/// `YYYY-MM-DD HH:MM` (UTC) for milliseconds since the epoch.
pub fn date(ms: u64) -> String {
    let secs = ms / 1000;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let (y, mo, d) = crate::trace::civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}")
}

/// The per-column maxima of `values` over `width` columns (each column covers an equal
/// share of the steps; used when there are more steps than columns).
pub fn buckets(values: impl ExactSizeIterator<Item = f32>, width: usize) -> Vec<f32> {
    let n = values.len();
    let mut out = vec![0f32; width];
    if n == 0 || width == 0 {
        return out;
    }
    for (i, x) in values.enumerate() {
        let col = i * width / n;
        if let Some(c) = out.get_mut(col) {
            *c = c.max(x);
        }
    }
    out
}

/// A `w`×`h` rectangle centred in `area` (shrunk to fit), for dialogs.
pub fn popup(area: Rect, w: u16, h: u16) -> Rect {
    let w = area.width.saturating_sub(4).min(w);
    let h = area.height.saturating_sub(2).min(h);
    let [p] = Layout::horizontal([Constraint::Length(w)]).flex(Flex::Center).areas(area);
    let [p] = Layout::vertical([Constraint::Length(h)]).flex(Flex::Center).areas(p);
    p
}

/// Clears a `w`×`h` popup in `area`, draws its focused border with `title`, and returns the
/// inside.
pub fn dialog(t: &Theme, f: &mut Frame, area: Rect, (w, h): (u16, u16), title: String) -> Rect {
    let area = popup(area, w, h);
    f.render_widget(Clear, area);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.get("ui.border.focus"))
        .title(Span::styled(title, t.get("ui.title")));
    let inner = block.inner(area);
    f.render_widget(block, area);
    inner
}
