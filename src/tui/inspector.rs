//! The inspector component: the token under the cursor (id, text with invisible characters
//! shown, logprob, probability, entropy, rank) and its top-k alternatives as bars.
//! Depends on `app`, `run_view` and `theme`.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use super::app::App;
use super::run_view::RunView;
use super::trace::{entropy_key, logprob_key};
use crate::sanitize::visible_token;

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

pub fn draw(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.get("ui.border"))
        .title(Span::styled(" Inspector ", t.get("ui.title")));
    let Some(s) = app.view.as_ref().and_then(|v| v.steps.get(app.cursor)) else {
        f.render_widget(Paragraph::new("no token").block(block), area);
        return;
    };
    let inner_w = usize::from(area.width.saturating_sub(2));
    let dim = t.get("ui.dim");
    let text = t.get("ui.text");
    let rank = RunView::rank(s).map_or_else(|| format!(">{}", s.top.len()), |r| r.to_string());
    let mut lines = vec![
        Line::from(vec![
            Span::styled("token  ", dim),
            Span::styled(
                fit(&visible_token(&s.text), inner_w.saturating_sub(7)),
                t.get("ui.cursor"),
            ),
        ]),
        Line::from(vec![
            Span::styled("step   ", dim),
            Span::styled(format!("#{}  id {}  {}", s.index, s.token_id, s.phase.as_str()), text),
        ]),
        Line::from(vec![
            Span::styled("logp   ", dim),
            Span::styled(format!("{:.3}", s.logprob), t.get(logprob_key(s.logprob))),
            Span::styled(format!("  p {:.1}%", f64::from(s.logprob).exp() * 100.0), text),
        ]),
        Line::from(vec![
            Span::styled("H      ", dim),
            Span::styled(format!("{:.3} nats", s.entropy), t.get(entropy_key(s.entropy))),
            Span::styled(format!("  rank {rank}"), text),
        ]),
        Line::from(vec![
            Span::styled("time   ", dim),
            Span::styled(format!("{:.1} ms", s.t_us as f64 / 1000.0), text),
        ]),
    ];
    if let Some(n) = app.note_at_cursor().and_then(|i| app.view.as_ref()?.notes.get(i)) {
        let first = n.text.lines().next().unwrap_or("");
        lines.push(Line::from(vec![
            Span::styled("note   ", t.get("note.marker")),
            Span::styled(
                fit(&crate::sanitize::for_terminal(first, false), inner_w.saturating_sub(7)),
                t.get("note.span"),
            ),
        ]));
    }
    lines.push(Line::from(Span::styled(
        format!("top {} alternatives", s.top.len()),
        t.get("ui.title"),
    )));
    let room = usize::from(area.height.saturating_sub(2)).saturating_sub(lines.len());
    let tok_w = 12.min(inner_w / 3).max(4);
    let bar_w = inner_w.saturating_sub(tok_w + 10);
    for alt in s.top.iter().take(room) {
        let p = f64::from(alt.logprob).exp();
        let chosen = alt.id == s.token_id;
        let filled = (p * bar_w as f64).round() as usize;
        let marker = if chosen { "▸" } else { " " };
        let style = if chosen { t.get("ui.selection") } else { text };
        lines.push(Line::from(vec![
            Span::styled(marker.to_string(), t.get("ui.help.key")),
            Span::styled(fit(&visible_token(&alt.text), tok_w), style),
            Span::styled(format!(" {:>5.1}% ", p * 100.0), t.get(logprob_key(alt.logprob))),
            Span::styled("█".repeat(filled.min(bar_w)), t.get("ui.bar")),
        ]));
    }
    f.render_widget(Paragraph::new(lines).block(block), area);
}
