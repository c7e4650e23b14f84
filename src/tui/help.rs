//! The help overlay (`?`), generated from the keymap: the current screen's bindings, then
//! the global ones. Depends on `app`, `keymap` and `theme`.

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use super::app::App;
use super::inspector::fit;

pub fn draw(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let w = area.width.saturating_sub(4).min(76);
    let h = area.height.saturating_sub(2);
    let [row] = Layout::vertical([Constraint::Length(h)]).flex(Flex::Center).areas(area);
    let [popup] = Layout::horizontal([Constraint::Length(w)]).flex(Flex::Center).areas(row);
    let mode = app.screen.mode();
    let key_w = 22;
    let mut lines = Vec::new();
    for (title, m) in [(app.screen.title(), mode), ("Everywhere", "global")] {
        lines.push(Line::from(Span::styled(title.to_string(), t.get("ui.title"))));
        for (keys, desc) in app.keymap.help_rows(m) {
            lines.push(Line::from(vec![
                Span::styled(format!("  {}", fit(&keys, key_w)), t.get("ui.help.key")),
                Span::styled(desc, t.get("ui.text")),
            ]));
        }
        lines.push(Line::from(""));
    }
    lines.push(Line::from(Span::styled(
        "While typing a search: Enter searches, Esc cancels. Keys: assets/keymap.toml, your keymap.toml overrides.",
        t.get("ui.dim"),
    )));
    let inner_h = usize::from(h.saturating_sub(2));
    let scroll = app.help_scroll.min(lines.len().saturating_sub(inner_h));
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.get("ui.border.focus"))
        .title(Span::styled(" Help · ? or Esc closes · j/k scroll ", t.get("ui.title")));
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(lines.into_iter().skip(scroll).collect::<Vec<_>>())
            .block(block)
            .wrap(ratatui::widgets::Wrap { trim: false }),
        popup,
    );
}
