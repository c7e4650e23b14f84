//! The note editor dialog: multi-line text over a span of steps (Enter saves as in every
//! dialog, Alt-Enter or Ctrl-J is a new line, Esc cancels). Owns the note being written; submitting asks `App` to store it.
//! Typing or pasting keeps no control (but newlines), bidirectional or invisible character
//! (`text::typable`), and the text is drawn through `tui::text`. May import
//! `components::ctx` and `components::widgets` (never `components/mod.rs`, whose `Overlay`
//! holds it), `run_view`, `theme`, `text`, `action` and the crate's `trace` and `export`.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::ctx::Ctx;
use super::widgets::dialog;
use crate::export::annotate::span_text;
use crate::trace::{Note, RunId};
use crate::tui::action::Action;
use crate::tui::run_view::RunView;
use crate::tui::text::{shown, typable};

/// What the note editor's footer says (and the keys the dispatcher gives it).
pub const NOTE_KEYS: &str = "enter save · alt-enter or ctrl-j new line · esc cancel";

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
        if typable(c, true) {
            self.text.push(c);
        }
    }

    pub fn backspace(&mut self) {
        self.text.pop();
    }

    /// Typing edits the text.
    pub fn update(&mut self, action: Action) {
        match action {
            Action::Input(c) => self.input(c),
            Action::InputBackspace => self.backspace(),
            _ => {}
        }
    }

    /// The note to store; an empty text is refused.
    pub fn build(&self) -> Result<Note, String> {
        // A note being edited may come from an import: it is stored clean too.
        let text: String = self.text.chars().filter(|&c| typable(c, true)).collect();
        let text = text.trim_end().to_string();
        if text.trim().is_empty() {
            return Err("the note is empty; type something or press esc".into());
        }
        Ok(Note { start: self.start, end: self.end, text })
    }
}

/// The text of steps `start..end` of the shown run, one line, at most `max` characters.
pub fn excerpt(view: Option<&RunView>, start: u32, end: u32, max: usize) -> String {
    let Some(v) = view else { return String::new() };
    let lo = (start as usize).min(v.len());
    let hi = (end as usize).clamp(lo, v.len());
    let text: String = v.steps[lo..hi].iter().map(|s| s.text.as_str()).collect();
    let one = shown(&text.replace('\n', " ")).into_owned();
    let mut out: String = one.chars().take(max).collect();
    if one.chars().count() > max {
        out.push('…');
    }
    out
}

impl NoteEditor {
    /// The dialog over `area`; `view` is the run shown (for the annotated text).
    pub fn draw(&self, f: &mut Frame, area: Rect, cx: &Ctx, view: Option<&RunView>) {
        let (t, e) = (cx.theme, self);
        let verb = if e.editing.is_some() { "Edit note" } else { "Note" };
        let inner = dialog(
            t,
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
                    Span::styled(
                        excerpt(view, e.start, e.end, w.saturating_sub(6)),
                        t.get("note.span"),
                    ),
                ]),
                Line::from(""),
            ]),
            head,
        );
        let mut lines: Vec<Line> = e
            .text
            .split('\n')
            .map(|l| Line::from(Span::styled(shown(l).into_owned(), t.get("ui.text"))))
            .collect();
        if let Some(last) = lines.last_mut() {
            last.spans.push(Span::styled("▏", t.get("editor.field.focus")));
        }
        // Keep the end of the text (where typing happens) in view.
        let room = usize::from(body.height);
        let skip = lines.len().saturating_sub(room);
        f.render_widget(
            Paragraph::new(lines.into_iter().skip(skip).collect::<Vec<_>>())
                .wrap(Wrap { trim: false }),
            body,
        );
        f.render_widget(Paragraph::new(Span::styled(NOTE_KEYS, t.get("ui.dim"))), foot);
    }
}
