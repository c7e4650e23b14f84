//! The experiment dialog (`n` / `r` on the experiments screen): the path of an experiment
//! spec, new or resume, and what the spec says (its name, variants, samples, model) or what is
//! wrong with it (the spec parser's message, naming the key). Reads the file again when the
//! path changes; submitting asks `App` to start it on the job channel. May import
//! `components::ctx`, `action`, `text` and the crate's `runs::experiment`.

use std::path::PathBuf;

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::ctx::Ctx;
use crate::runs::experiment::spec::Source;
use crate::runs::experiment::Spec;
use crate::tui::action::Action;
use crate::tui::text::{shown, typable};

#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentDialog {
    /// The spec's path as typed.
    pub path: String,
    /// Continue the newest experiment of the spec's name instead of starting a new one.
    pub resume: bool,
    /// The working directory relative paths start from.
    pub cwd: PathBuf,
    /// What the spec says, or why it cannot be run (`Err`); `None` before a path is typed.
    pub preview: Option<Result<String, String>>,
}

impl ExperimentDialog {
    pub fn new(cwd: PathBuf, path: String, resume: bool) -> ExperimentDialog {
        let mut d = ExperimentDialog { path, resume, cwd, preview: None };
        d.refresh();
        d
    }

    pub fn full_path(&self) -> PathBuf {
        let p = PathBuf::from(self.path.trim());
        if p.is_relative() {
            self.cwd.join(p)
        } else {
            p
        }
    }

    /// Reads and parses the spec again (the path changed).
    pub fn refresh(&mut self) {
        self.preview = if self.path.trim().is_empty() {
            None
        } else {
            Some(self.read().map(|(spec, _)| describe(&spec)))
        };
    }

    /// The spec and its text, or what is wrong (the file, or the key the parser names).
    pub fn read(&self) -> Result<(Spec, String), String> {
        if self.path.trim().is_empty() {
            return Err("type the path of an experiment spec (TOML)".into());
        }
        let typed = self.path.trim();
        let text = std::fs::read_to_string(self.full_path())
            .map_err(|e| format!("reading '{typed}': {e}"))?;
        let spec = Spec::parse(&text).map_err(|e| format!("'{typed}': {e}"))?;
        Ok((spec, text))
    }

    pub fn update(&mut self, action: Action) {
        match action {
            Action::FieldNext | Action::FieldPrev => self.resume = !self.resume,
            Action::Input(c) if typable(c, false) => {
                self.path.push(c);
                self.refresh();
            }
            Action::InputBackspace if self.path.pop().is_some() => self.refresh(),
            _ => {}
        }
    }

    /// The failure of a submit, shown in the dialog.
    pub fn fail(&mut self, msg: String) {
        self.preview = Some(Err(msg));
    }

    pub fn draw(&self, f: &mut Frame, area: Rect, cx: &Ctx) {
        let t = cx.theme;
        let w = area.width.saturating_sub(4).min(100);
        let h = 10.min(area.height);
        let [popup] = Layout::horizontal([Constraint::Length(w)]).flex(Flex::Center).areas(area);
        let [popup] = Layout::vertical([Constraint::Length(h)]).flex(Flex::Center).areas(popup);
        f.render_widget(Clear, popup);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(t.get("ui.border.focus"))
            .title(Span::styled(" Run an experiment ", t.get("ui.title")));
        let inner = block.inner(popup);
        f.render_widget(block, popup);
        let width = usize::from(inner.width);
        let room = width.saturating_sub(11);
        let value = format!("{}▏", shown(&self.path));
        let value: String = if value.chars().count() > room {
            value.chars().skip(value.chars().count() - room).collect()
        } else {
            value
        };
        let mode = if self.resume {
            "‹ resume › the newest experiment of the spec's name"
        } else {
            "‹ new › experiment"
        };
        let mut lines = vec![
            Line::from(vec![
                Span::styled(format!("{:<10} ", "spec file"), t.get("editor.field.focus")),
                Span::styled(value, t.get("ui.text")),
            ]),
            Line::from(vec![
                Span::styled(format!("{:<10} ", "mode"), t.get("editor.field")),
                Span::styled(mode, t.get("ui.text")),
            ]),
            Line::from(""),
        ];
        lines.push(Line::from(match &self.preview {
            None => Span::styled("type a path: what the spec runs shows here", t.get("ui.dim")),
            Some(Ok(s)) => Span::styled(shown(s).into_owned(), t.get("ui.text")),
            Some(Err(e)) => Span::styled(shown(e).into_owned(), t.get("ui.warning")),
        }));
        let [body, hint] =
            Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
        f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), body);
        f.render_widget(
            Paragraph::new(Span::styled(
                "tab new / resume · enter runs it (X cancels, keeping what completed) · esc",
                t.get("ui.dim"),
            )),
            hint,
        );
    }
}

/// One line about what a spec runs.
fn describe(spec: &Spec) -> String {
    let source = match &spec.source {
        Source::Model(m) => format!("model '{m}'"),
        Source::Endpoint { url, .. } => format!("endpoint '{url}'"),
    };
    let names: Vec<&str> = spec.variants.iter().map(|v| v.name.as_str()).collect();
    format!(
        "'{}': {} variants ({}) × {} samples, {source}",
        spec.name,
        spec.variants.len(),
        names.join(", "),
        spec.samples
    )
}
