//! The annotation overlays: the note editor (multi-line text over a span of steps; Enter is a
//! new line, Ctrl-S saves, Esc cancels) and the user-flag prompt (a label and an optional
//! detail). The state is edited only through `App::update` (`annotations.rs` stores it);
//! `draw` does no I/O. Everything typed passes through `sanitize` before the terminal.

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::app::App;
use crate::export::annotate::span_text;
use crate::sanitize::for_terminal;
use crate::trace::{Flag, FlagKind, Note, Origin, RunId, Severity};

/// What the note editor's footer says (and the keys the dispatcher gives it).
pub const NOTE_KEYS: &str = "enter new line · ctrl-s save · esc cancel";

/// A note being written or edited over steps `start..end` of `run`.
#[derive(Debug, Clone, PartialEq)]
pub struct NoteEditor {
    pub run: RunId,
    pub start: u32,
    pub end: u32,
    pub text: String,
    /// The stored note this replaces (None: a new note).
    pub editing: Option<Note>,
}

impl NoteEditor {
    pub fn new(run: RunId, start: u32, end: u32) -> NoteEditor {
        NoteEditor { run, start, end, text: String::new(), editing: None }
    }

    pub fn edit(run: RunId, note: &Note) -> NoteEditor {
        NoteEditor {
            run,
            start: note.start,
            end: note.end,
            text: note.text.clone(),
            editing: Some(note.clone()),
        }
    }

    pub fn input(&mut self, c: char) {
        self.text.push(c);
    }

    pub fn backspace(&mut self) {
        self.text.pop();
    }

    /// The note to store; an empty text is refused.
    pub fn build(&self) -> Result<Note, String> {
        let text = self.text.trim_end().to_string();
        if text.trim().is_empty() {
            return Err("the note is empty; type something or press esc".into());
        }
        Ok(Note { start: self.start, end: self.end, text })
    }
}

/// A user flag being added or edited over steps `start..end` of `run`.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagEditor {
    pub run: RunId,
    pub start: u32,
    pub end: u32,
    pub label: String,
    pub detail: String,
    /// 0: label, 1: detail.
    pub focus: usize,
    /// The stored flag this replaces (None: a new flag).
    pub editing: Option<Flag>,
}

impl FlagEditor {
    pub fn new(run: RunId, start: u32, end: u32) -> FlagEditor {
        FlagEditor {
            run,
            start,
            end,
            label: String::new(),
            detail: String::new(),
            focus: 0,
            editing: None,
        }
    }

    pub fn edit(run: RunId, flag: &Flag) -> FlagEditor {
        let label = match &flag.kind {
            FlagKind::User(l) => l.clone(),
            _ => String::new(),
        };
        FlagEditor {
            run,
            start: flag.start,
            end: flag.end,
            label,
            detail: flag.detail.clone(),
            focus: 0,
            editing: Some(flag.clone()),
        }
    }

    pub fn next_field(&mut self) {
        self.focus = (self.focus + 1) % 2;
    }

    pub fn input(&mut self, c: char) {
        if self.focus == 0 { &mut self.label } else { &mut self.detail }.push(c);
    }

    pub fn backspace(&mut self) {
        if self.focus == 0 { &mut self.label } else { &mut self.detail }.pop();
    }

    /// The flag to store; a label is required.
    pub fn build(&self) -> Result<Flag, String> {
        let label = self.label.trim();
        if label.is_empty() {
            return Err("the flag needs a label".into());
        }
        Ok(Flag {
            start: self.start,
            end: self.end,
            kind: FlagKind::User(label.to_string()),
            severity: self.editing.as_ref().map_or(Severity::Warn, |f| f.severity),
            detail: self.detail.trim().to_string(),
            origin: Origin::User,
        })
    }
}

/// The text of steps `start..end` of the current run, one line, at most `max` characters.
fn excerpt(app: &App, start: u32, end: u32, max: usize) -> String {
    let Some(v) = &app.view else { return String::new() };
    let lo = (start as usize).min(v.len());
    let hi = (end as usize).clamp(lo, v.len());
    let text: String = v.steps[lo..hi].iter().map(|s| s.text.as_str()).collect();
    let one = for_terminal(&text.replace('\n', " "), false).into_owned();
    let mut out: String = one.chars().take(max).collect();
    if one.chars().count() > max {
        out.push('…');
    }
    out
}

/// A `w`×`h` rectangle centred in `area` (shrunk to fit), for dialogs.
pub(super) fn popup(area: Rect, w: u16, h: u16) -> Rect {
    let w = area.width.saturating_sub(4).min(w);
    let h = area.height.saturating_sub(2).min(h);
    let [p] = Layout::horizontal([Constraint::Length(w)]).flex(Flex::Center).areas(area);
    let [p] = Layout::vertical([Constraint::Length(h)]).flex(Flex::Center).areas(p);
    p
}

/// Clears a `w`×`h` popup in `area`, draws its focused border with `title`, and returns the
/// inside.
pub(super) fn dialog(
    app: &App,
    f: &mut Frame,
    area: Rect,
    (w, h): (u16, u16),
    title: String,
) -> Rect {
    let t = &app.theme;
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

pub fn draw_note(app: &App, e: &NoteEditor, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let verb = if e.editing.is_some() { "Edit note" } else { "Note" };
    let inner = dialog(
        app,
        f,
        area,
        (72, 12),
        format!(" {verb} · {} · steps {} ", e.run, span_text(e.start, e.end)),
    );
    let [head, body, foot] =
        Layout::vertical([Constraint::Length(2), Constraint::Min(1), Constraint::Length(1)])
            .areas(inner);
    let w = usize::from(inner.width);
    f.render_widget(
        Paragraph::new(vec![
            Line::from(vec![
                Span::styled("on  ", t.get("editor.field")),
                Span::styled(excerpt(app, e.start, e.end, w.saturating_sub(6)), t.get("note.span")),
            ]),
            Line::from(""),
        ]),
        head,
    );
    let mut lines: Vec<Line> = e
        .text
        .split('\n')
        .map(|l| Line::from(Span::styled(for_terminal(l, false).into_owned(), t.get("ui.text"))))
        .collect();
    if let Some(last) = lines.last_mut() {
        last.spans.push(Span::styled("▏", t.get("editor.field.focus")));
    }
    // Keep the end of the text (where typing happens) in view.
    let room = usize::from(body.height);
    let skip = lines.len().saturating_sub(room);
    f.render_widget(
        Paragraph::new(lines.into_iter().skip(skip).collect::<Vec<_>>()).wrap(Wrap { trim: false }),
        body,
    );
    f.render_widget(Paragraph::new(Span::styled(NOTE_KEYS, t.get("ui.dim"))), foot);
}

pub fn draw_flag(app: &App, e: &FlagEditor, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let verb = if e.editing.is_some() { "Edit user flag" } else { "User flag" };
    let inner = dialog(
        app,
        f,
        area,
        (64, 7),
        format!(" {verb} · {} · steps {} ", e.run, span_text(e.start, e.end)),
    );
    let w = usize::from(inner.width);
    let field = |name: &'static str, value: &str, focus: bool| {
        let st = if focus { t.get("editor.field.focus") } else { t.get("editor.field") };
        let cursor = if focus { "▏" } else { "" };
        Line::from(vec![
            Span::styled(name, st),
            Span::styled(format!("{}{cursor}", for_terminal(value, false)), t.get("ui.text")),
        ])
    };
    let lines = vec![
        Line::from(vec![
            Span::styled("on     ", t.get("editor.field")),
            Span::styled(excerpt(app, e.start, e.end, w.saturating_sub(8)), t.get("flag.user")),
        ]),
        field("label  ", &e.label, e.focus == 0),
        field("detail ", &e.detail, e.focus == 1),
        Line::from(""),
        Line::from(Span::styled("tab next field · enter save · esc cancel", t.get("ui.dim"))),
    ];
    f.render_widget(Paragraph::new(lines), inner);
}
