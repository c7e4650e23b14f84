//! The help overlay (`?`), generated from the keymap: the current screen's bindings, then
//! the global ones. Owns whether it is open and its scroll. May import `components`,
//! `action`, `keymap` and `theme`.

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use super::ctx::Ctx;
use super::widgets::fit;
use super::{Effect, Screen};
use crate::tui::action::Action;

/// The help overlay's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Help {
    pub open: bool,
    pub scroll: usize,
}

impl Help {
    /// Opens the overlay at its top.
    pub fn show(&mut self) {
        self.open = true;
        self.scroll = 0;
    }

    /// A key while it is open: `?` or Esc closes it, j/k scroll.
    pub fn update(&mut self, action: Action) -> Effect {
        match action {
            Action::Help | Action::Back => self.open = false,
            Action::Quit => return Effect::Quit,
            Action::Down | Action::LineDown => self.scroll += 1,
            Action::Up | Action::LineUp => self.scroll = self.scroll.saturating_sub(1),
            _ => {}
        }
        Effect::None
    }

    /// The overlay over `area`: the bindings of `screen`, then the global ones.
    pub fn draw(&self, f: &mut Frame, area: Rect, cx: &Ctx, screen: Screen) {
        let t = cx.theme;
        let w = area.width.saturating_sub(4).min(76);
        let h = area.height.saturating_sub(2);
        let [row] = Layout::vertical([Constraint::Length(h)]).flex(Flex::Center).areas(area);
        let [popup] = Layout::horizontal([Constraint::Length(w)]).flex(Flex::Center).areas(row);
        let mode = screen.mode();
        let key_w = 22;
        let mut lines = Vec::new();
        for (title, m) in [(screen.title(), mode), ("Everywhere", "global")] {
            lines.push(Line::from(Span::styled(title.to_string(), t.get("ui.title"))));
            for (keys, desc) in cx.keymap.help_rows(m) {
                lines.push(Line::from(vec![
                    Span::styled(format!("  {}", fit(&keys, key_w)), t.get("ui.help.key")),
                    Span::styled(desc, t.get("ui.text")),
                ]));
            }
            lines.push(Line::from(""));
        }
        lines.push(Line::from(Span::styled(
        "While typing a search: Enter searches, Esc cancels. Your keymap.toml in the config directory (`thinkdbg --help` says where) overrides these keys.",
        t.get("ui.dim"),
    )));
        let inner_h = usize::from(h.saturating_sub(2));
        let scroll = self.scroll.min(lines.len().saturating_sub(inner_h));
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
}
