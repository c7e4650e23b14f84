//! The fork picker dialog: the alternatives the model considered at a step (its top-k,
//! without the chosen token), or typed text; submitting asks `App` to fork the run there with
//! the choice. Owns the choice being made. May import `components::ctx` (never
//! `components/mod.rs`, whose `Overlay` holds it), `theme`, `action` and the crate's `trace`
//! and `tui::text`.

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use super::ctx::Ctx;
use crate::trace::{RunId, Step, TopToken};
use crate::tui::action::Action;
use crate::tui::text::{shown, shown_token};

#[derive(Debug, Clone, PartialEq)]
pub struct ForkPicker {
    pub run: RunId,
    pub at: u32,
    /// The token the run chose at `at`.
    pub chosen: TopToken,
    pub options: Vec<TopToken>,
    pub sel: usize,
    /// Typed text to force instead of an alternative (used when not empty).
    pub text: String,
}

/// What to force at the fork.
#[derive(Debug, Clone, PartialEq)]
pub enum ForkChoice {
    Token(TopToken),
    Text(String),
}

impl ForkPicker {
    pub fn new(run: RunId, step: &Step) -> ForkPicker {
        let options: Vec<TopToken> =
            step.top.iter().filter(|t| t.id != step.token_id).cloned().collect();
        ForkPicker {
            run,
            at: step.index,
            chosen: TopToken { id: step.token_id, text: step.text.clone(), logprob: step.logprob },
            options,
            sel: 0,
            text: String::new(),
        }
    }

    pub fn choice(&self) -> Option<ForkChoice> {
        if !self.text.is_empty() {
            return Some(ForkChoice::Text(self.text.clone()));
        }
        self.options.get(self.sel).cloned().map(ForkChoice::Token)
    }

    /// ↑/↓ pick an alternative, typing gives text instead.
    pub fn update(&mut self, action: Action) {
        match action {
            Action::FieldNext => self.move_sel(true),
            Action::FieldPrev => self.move_sel(false),
            Action::Input(c) => self.text.push(c),
            Action::InputBackspace => {
                self.text.pop();
            }
            _ => {}
        }
    }

    pub fn move_sel(&mut self, forward: bool) {
        let n = self.options.len();
        if n > 0 {
            self.sel = if forward { (self.sel + 1) % n } else { (self.sel + n - 1) % n };
        }
    }
}

impl ForkPicker {
    pub fn draw(&self, f: &mut Frame, area: Rect, cx: &Ctx) {
        let (t, p) = (cx.theme, self);
        let h = (p.options.len() as u16 + 7).min(area.height.saturating_sub(2));
        let w = area.width.saturating_sub(8).min(60);
        let [popup] = Layout::horizontal([Constraint::Length(w)]).flex(Flex::Center).areas(area);
        let [popup] = Layout::vertical([Constraint::Length(h)]).flex(Flex::Center).areas(popup);
        f.render_widget(Clear, popup);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(t.get("ui.border.focus"))
            .title(Span::styled(format!(" Fork {} at step {} ", p.run, p.at), t.get("ui.title")));
        let inner = block.inner(popup);
        f.render_widget(block, popup);
        let mut lines = vec![Line::from(vec![
            Span::styled("chosen ", t.get("ui.dim")),
            Span::styled(shown_token(&p.chosen.text), t.get("ui.cursor")),
            Span::styled(format!("  {:.3}", p.chosen.logprob), t.get("ui.dim")),
        ])];
        if p.options.is_empty() {
            lines.push(Line::from(Span::styled(
                "no alternatives recorded; type a token",
                t.get("ui.dim"),
            )));
        }
        for (i, o) in p.options.iter().enumerate() {
            let sel = i == p.sel && p.text.is_empty();
            let st = if sel { t.get("ui.selection") } else { t.get("ui.text") };
            lines.push(Line::from(Span::styled(
                format!(
                    "{} {:>8.3}  {}  (id {})",
                    if sel { "▶" } else { " " },
                    o.logprob,
                    shown_token(&o.text),
                    o.id
                ),
                st,
            )));
        }
        lines.push(Line::from(vec![
            Span::styled("or type: ", t.get("editor.field.focus")),
            Span::styled(format!("{}▏", shown(&p.text)), t.get("ui.text")),
        ]));
        lines.push(Line::from(Span::styled(
            "↑/↓ pick · type text · enter fork · esc cancel",
            t.get("ui.dim"),
        )));
        f.render_widget(Paragraph::new(lines), inner);
    }
}
