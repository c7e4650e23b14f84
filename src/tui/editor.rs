//! The prompt editor overlay: the system and user messages, sampler settings, max tokens and
//! seed of a run, prefilled from it; submitting re-runs the edited prompt as a new run of the
//! same session. The state is edited only through `App::update`; `draw` does no I/O.

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::app::App;
use crate::engine::generate::Prompt;
use crate::sanitize::for_terminal;
use crate::trace::{Message, Run, RunId, SamplerSpec};

/// The editable fields, in order.
pub const FIELDS: [&str; 8] =
    ["system", "user", "temperature", "top_p", "top_k", "min_p", "max_tokens", "seed"];

#[derive(Debug, Clone, PartialEq)]
pub struct PromptEditor {
    pub parent: RunId,
    /// The values of `FIELDS`, as typed.
    pub values: Vec<String>,
    pub focus: usize,
    /// The run had a raw prompt (no messages): `user` is the whole prompt text.
    pub raw: bool,
    base: SamplerSpec,
    /// Messages other than the first system and the last user message, kept as they were.
    others: Vec<(usize, Message)>,
}

impl PromptEditor {
    pub fn new(run: &Run) -> PromptEditor {
        let raw = run.messages.is_empty();
        let sys = run.messages.iter().position(|m| m.role == "system");
        let user = run.messages.iter().rposition(|m| m.role == "user");
        let text = |i: Option<usize>| i.map_or(String::new(), |i| run.messages[i].content.clone());
        let others = run
            .messages
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != sys && Some(*i) != user)
            .map(|(i, m)| (i, m.clone()))
            .collect();
        let s = &run.sampler;
        PromptEditor {
            parent: run.id,
            values: vec![
                text(sys),
                if raw { run.rendered_prompt.clone() } else { text(user) },
                s.temperature.to_string(),
                s.top_p.to_string(),
                s.top_k.to_string(),
                s.min_p.to_string(),
                s.max_tokens.to_string(),
                s.seed.to_string(),
            ],
            focus: 1,
            raw,
            base: s.clone(),
            others,
        }
    }

    pub fn next_field(&mut self, forward: bool) {
        let n = FIELDS.len();
        self.focus = if forward { (self.focus + 1) % n } else { (self.focus + n - 1) % n };
    }

    pub fn input(&mut self, c: char) {
        if let Some(v) = self.values.get_mut(self.focus) {
            v.push(c);
        }
    }

    pub fn backspace(&mut self) {
        if let Some(v) = self.values.get_mut(self.focus) {
            v.pop();
        }
    }

    fn num<T: std::str::FromStr>(&self, i: usize) -> std::result::Result<T, String> {
        self.values[i]
            .trim()
            .parse()
            .map_err(|_| format!("'{}' is not a valid {}", self.values[i].trim(), FIELDS[i]))
    }

    /// The prompt and sampler to run, or what is wrong with a field.
    pub fn build(&self) -> std::result::Result<(Prompt, SamplerSpec), String> {
        let mut s = self.base.clone();
        s.temperature = self.num(2)?;
        s.top_p = self.num(3)?;
        s.top_k = self.num(4)?;
        s.min_p = self.num(5)?;
        s.max_tokens = self.num(6)?;
        s.seed = self.num(7)?;
        if s.max_tokens == 0 {
            return Err("'max_tokens' must be at least 1".into());
        }
        if self.raw {
            if self.values[1].is_empty() {
                return Err("'user' (the raw prompt) is empty".into());
            }
            return Ok((Prompt::Raw(self.values[1].clone()), s));
        }
        let mut msgs: Vec<(usize, Message)> = self.others.clone();
        if !self.values[0].is_empty() {
            msgs.push((0, Message::new("system", self.values[0].clone())));
        }
        msgs.push((usize::MAX, Message::new("user", self.values[1].clone())));
        msgs.sort_by_key(|(i, _)| *i);
        Ok((Prompt::Chat(msgs.into_iter().map(|(_, m)| m).collect()), s))
    }
}

pub fn draw(app: &App, e: &PromptEditor, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let w = area.width.saturating_sub(8).min(100);
    let h = area.height.saturating_sub(4).min(22);
    let [popup] = Layout::horizontal([Constraint::Length(w)]).flex(Flex::Center).areas(area);
    let [popup] = Layout::vertical([Constraint::Length(h)]).flex(Flex::Center).areas(popup);
    f.render_widget(Clear, popup);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.get("ui.border.focus"))
        .title(Span::styled(format!(" Edit and re-run {} ", e.parent), t.get("ui.title")));
    let inner = block.inner(popup);
    f.render_widget(block, popup);
    let mut lines = Vec::new();
    for (i, name) in FIELDS.iter().enumerate() {
        let focus = i == e.focus;
        let label = if e.raw && i == 1 { "prompt" } else { name };
        let key = if focus { t.get("editor.field.focus") } else { t.get("editor.field") };
        let mut value = for_terminal(&e.values[i], true).into_owned();
        if focus {
            value.push('▏');
        }
        let mut first = true;
        for part in value.split('\n') {
            let head = if first { format!("{label:>12} ") } else { " ".repeat(13) };
            first = false;
            lines.push(Line::from(vec![
                Span::styled(head, key),
                Span::styled(part.to_string(), t.get("ui.text")),
            ]));
        }
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        "tab/↓ next field · shift-tab/↑ previous · enter run · esc cancel",
        t.get("ui.dim"),
    )));
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}
