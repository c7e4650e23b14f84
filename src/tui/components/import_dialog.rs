//! The import dialog: a file's path, its format (detected, or chosen), the prompt for formats
//! that carry none, and for datasets the field mapping with a preview of the first row.
//! Owns what is typed and the preview (read again when the path or the format changes);
//! submitting asks `App` to import. May import `components::ctx`, `theme`, `action`, `text`
//! and the crate's `runs::import`.

use std::path::PathBuf;

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use super::ctx::Ctx;
use crate::runs::import::{preview, FieldMap, Format, Options, Preview, Where};
use crate::tui::action::Action;
use crate::tui::text::{shown, typable};

/// The dialog's fields, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Path,
    Format,
    Prompt,
    System,
    Label,
    PromptField,
    ResponseField,
    ReasoningField,
    AnswerField,
    LabelField,
    Where,
    Limit,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Path => "file",
            Field::Format => "format",
            Field::Prompt => "prompt",
            Field::System => "system",
            Field::Label => "label",
            Field::PromptField => "prompt field",
            Field::ResponseField => "response field",
            Field::ReasoningField => "reasoning field",
            Field::AnswerField => "answer field",
            Field::LabelField => "label field",
            Field::Where => "where F=V",
            Field::Limit => "limit rows",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The fields a format uses.
fn fields_of(format: Option<Format>) -> Vec<Field> {
    use Field as F;
    match format {
        Some(Format::Dataset) => vec![
            F::Path,
            F::Format,
            F::PromptField,
            F::ResponseField,
            F::ReasoningField,
            F::AnswerField,
            F::LabelField,
            F::Where,
            F::Limit,
            F::System,
        ],
        Some(Format::Thinkdbg) | None => vec![F::Path, F::Format],
        Some(Format::Openai) => vec![F::Path, F::Format, F::Prompt, F::System, F::Label, F::Limit],
        Some(Format::Sse | Format::Text) => {
            vec![F::Path, F::Format, F::Prompt, F::System, F::Label]
        }
    }
}

const FORMATS: [Option<Format>; 6] = [
    None,
    Some(Format::Openai),
    Some(Format::Sse),
    Some(Format::Dataset),
    Some(Format::Text),
    Some(Format::Thinkdbg),
];

#[derive(Debug, Clone, PartialEq)]
pub struct ImportDialog {
    /// What is typed in each text field, by `Field::index`.
    pub values: [String; 12],
    /// The chosen format; `None` detects it.
    pub format: Option<Format>,
    pub focus: Field,
    pub preview: Preview,
    /// The working directory relative paths start from.
    pub cwd: PathBuf,
}

impl ImportDialog {
    pub fn new(cwd: PathBuf) -> ImportDialog {
        ImportDialog {
            values: Default::default(),
            format: None,
            focus: Field::Path,
            preview: Preview::default(),
            cwd,
        }
    }

    /// The format the import will read: the chosen one, else the detected one.
    pub fn effective(&self) -> Option<Format> {
        self.format.or(self.preview.format)
    }

    pub fn fields(&self) -> Vec<Field> {
        fields_of(self.effective())
    }

    pub fn path(&self) -> PathBuf {
        let typed = self.values[Field::Path.index()].trim();
        let p = PathBuf::from(typed);
        if p.is_relative() {
            self.cwd.join(p)
        } else {
            p
        }
    }

    /// Reads the preview again (the path or the format changed).
    pub fn refresh(&mut self) {
        self.preview = if self.values[Field::Path.index()].trim().is_empty() {
            Preview::default()
        } else {
            preview(&self.path(), self.format)
        };
    }

    pub fn update(&mut self, action: Action) {
        match action {
            Action::FieldNext => self.move_focus(true),
            Action::FieldPrev => self.move_focus(false),
            Action::Input(c) if self.focus == Field::Format => self.pick_format(c),
            Action::Input(c) if typable(c, false) => {
                self.values[self.focus.index()].push(c);
                if self.focus == Field::Path {
                    self.refresh();
                }
            }
            Action::InputBackspace
                if self.values[self.focus.index()].pop().is_some() && self.focus == Field::Path =>
            {
                self.refresh();
            }
            _ => {}
        }
    }

    fn move_focus(&mut self, forward: bool) {
        let fields = self.fields();
        let n = fields.len();
        let i = fields.iter().position(|f| *f == self.focus).unwrap_or(0);
        self.focus = fields[if forward { (i + 1) % n } else { (i + n - 1) % n }];
    }

    /// Space cycles the format; a letter picks one (a auto, o openai, s sse, d dataset, t text,
    /// j thinkdbg JSONL).
    fn pick_format(&mut self, c: char) {
        let i = FORMATS.iter().position(|f| *f == self.format).unwrap_or(0);
        self.format = match c {
            ' ' => FORMATS[(i + 1) % FORMATS.len()],
            'a' => None,
            'o' => Some(Format::Openai),
            's' => Some(Format::Sse),
            'd' => Some(Format::Dataset),
            't' => Some(Format::Text),
            'j' => Some(Format::Thinkdbg),
            _ => return,
        };
        self.refresh();
    }

    fn value(&self, f: Field) -> Option<String> {
        let v = self.values[f.index()].trim();
        (!v.is_empty() && self.fields().contains(&f)).then(|| v.to_string())
    }

    /// What to import: the path, the format (`None`: detect) and the options; or what is
    /// wrong with what was typed.
    pub fn request(&self) -> Result<(PathBuf, Option<Format>, Options), String> {
        if self.values[Field::Path.index()].trim().is_empty() {
            return Err("type the path of the file to import".into());
        }
        if let Some(e) = &self.preview.error {
            return Err(format!("'{}': {e}", self.path().display()));
        }
        let limit = match self.value(Field::Limit) {
            Some(l) => {
                Some(l.parse::<usize>().map_err(|_| format!("limit '{l}' is not a number"))?)
            }
            None => None,
        };
        let wheres = match self.value(Field::Where) {
            Some(w) => vec![w.parse::<Where>()?],
            None => Vec::new(),
        };
        let opts = Options {
            prompt: self.value(Field::Prompt),
            system: self.value(Field::System),
            label: self.value(Field::Label),
            fields: FieldMap {
                prompt: self.value(Field::PromptField),
                response: self.value(Field::ResponseField),
                reasoning: self.value(Field::ReasoningField),
                answer: self.value(Field::AnswerField),
                label: self.value(Field::LabelField),
            },
            limit,
            wheres,
        };
        Ok((self.path(), self.format, opts))
    }
}

impl ImportDialog {
    pub fn draw(&self, f: &mut Frame, area: Rect, cx: &Ctx) {
        let t = cx.theme;
        let fields = self.fields();
        let preview_rows = self.preview.rows.len().min(10) as u16;
        let h = (fields.len() as u16 + preview_rows + 7).min(area.height);
        let w = area.width.saturating_sub(4).min(110);
        let [popup] = Layout::horizontal([Constraint::Length(w)]).flex(Flex::Center).areas(area);
        let [popup] = Layout::vertical([Constraint::Length(h)]).flex(Flex::Center).areas(popup);
        f.render_widget(Clear, popup);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(t.get("ui.border.focus"))
            .title(Span::styled(" Import a trace ", t.get("ui.title")));
        let inner = block.inner(popup);
        f.render_widget(block, popup);
        let width = usize::from(inner.width);
        let mut lines = Vec::new();
        for field in &fields {
            let focus = *field == self.focus;
            let key_style = if focus { t.get("editor.field.focus") } else { t.get("editor.field") };
            let value = match field {
                Field::Format => {
                    let name = match (self.format, self.preview.format) {
                        (Some(f), _) => f.as_str().to_string(),
                        (None, Some(d)) => format!("detect ({})", d.as_str()),
                        (None, None) => "detect".into(),
                    };
                    format!("‹ {name} ›")
                }
                f => {
                    let v = shown(&self.values[f.index()]).into_owned();
                    if focus {
                        format!("{v}▏")
                    } else {
                        v
                    }
                }
            };
            let room = width.saturating_sub(17);
            let value: String = if value.chars().count() > room {
                value.chars().skip(value.chars().count() - room).collect()
            } else {
                value
            };
            lines.push(Line::from(vec![
                Span::styled(format!("{:<16} ", field.name()), key_style),
                Span::styled(value, t.get("ui.text")),
            ]));
        }
        lines.push(Line::from(""));
        let head = match (&self.preview.error, self.preview.format) {
            (Some(e), _) => {
                Span::styled(format!("cannot read it: {}", shown(e)), t.get("ui.warning"))
            }
            (None, Some(fmt)) => Span::styled(
                format!(
                    "{} · {}{}",
                    fmt.as_str(),
                    self.preview.detail,
                    if fmt == Format::Dataset { " · first row:" } else { " · start:" }
                ),
                t.get("ui.dim"),
            ),
            (None, None) => {
                Span::styled("type a path: the format and the first row show here", t.get("ui.dim"))
            }
        };
        lines.push(Line::from(head));
        let key_w =
            self.preview.rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0).min(24);
        for (k, v) in self.preview.rows.iter().take(10) {
            let text = format!("  {:<key_w$}  {}", shown(k), shown(v));
            let text: String = text.chars().take(width).collect();
            lines.push(Line::from(Span::styled(text, t.get("ui.text"))));
        }
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled(
            "tab/↓ next · format: space cycles, a o s d t j · enter import · esc cancel",
            t.get("ui.dim"),
        )));
        f.render_widget(Paragraph::new(lines), inner);
    }
}
