//! The user-flag dialog: a label and an optional detail over a span of steps. Owns the flag
//! being written; submitting asks `App` to store it. Typing or pasting keeps no control,
//! bidirectional or invisible character (`text::typable`). May import `components::ctx`, `components::widgets` and
//! `components::note_editor` (never `components/mod.rs`, whose `Overlay` holds it),
//! `run_view`, `theme`, `text`, `action` and the crate's `trace` and `export`.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::ctx::Ctx;
use super::note_editor::excerpt;
use super::widgets::dialog;
use crate::export::annotate::span_text;
use crate::trace::{Flag, FlagKind, Origin, RunId, Severity};
use crate::tui::action::Action;
use crate::tui::run_view::RunView;
use crate::tui::text::{shown, typable};

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

    /// Keeps only what `text::typable` allows (no control, bidirectional or invisible
    /// character): a label ends up in `flags` output and in exports.
    pub fn input(&mut self, c: char) {
        if !typable(c, false) {
            return;
        }
        if self.focus == 0 { &mut self.label } else { &mut self.detail }.push(c);
    }

    pub fn backspace(&mut self) {
        if self.focus == 0 { &mut self.label } else { &mut self.detail }.pop();
    }

    /// Tab switches the field, typing edits it.
    pub fn update(&mut self, action: Action) {
        match action {
            Action::FieldNext | Action::FieldPrev => self.next_field(),
            Action::Input(c) => self.input(c),
            Action::InputBackspace => self.backspace(),
            _ => {}
        }
    }

    /// The flag to store; a label is required.
    pub fn build(&self) -> Result<Flag, String> {
        // A flag being edited may come from an import: it is stored clean too.
        let clean = |s: &str| s.chars().filter(|&c| typable(c, false)).collect::<String>();
        let (label, detail) = (clean(&self.label), clean(&self.detail));
        let label = label.trim();
        if label.is_empty() {
            return Err("the flag needs a label".into());
        }
        Ok(Flag {
            start: self.start,
            end: self.end,
            kind: FlagKind::User(label.to_string()),
            severity: self.editing.as_ref().map_or(Severity::Warn, |f| f.severity),
            detail: detail.trim().to_string(),
            origin: Origin::User,
        })
    }
}

impl FlagEditor {
    /// The dialog over `area`; `view` is the run shown (for the flagged text).
    pub fn draw(&self, f: &mut Frame, area: Rect, cx: &Ctx, view: Option<&RunView>) {
        let (t, e) = (cx.theme, self);
        let verb = if e.editing.is_some() { "Edit user flag" } else { "User flag" };
        let inner = dialog(
            t,
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
                Span::styled(format!("{}{cursor}", shown(value)), t.get("ui.text")),
            ])
        };
        let lines = vec![
            Line::from(vec![
                Span::styled("on     ", t.get("editor.field")),
                Span::styled(
                    excerpt(view, e.start, e.end, w.saturating_sub(8)),
                    t.get("flag.user"),
                ),
            ]),
            field("label  ", &e.label, e.focus == 0),
            field("detail ", &e.detail, e.focus == 1),
            Line::from(""),
            Line::from(Span::styled("tab next field · enter save · esc cancel", t.get("ui.dim"))),
        ];
        f.render_widget(Paragraph::new(lines), inner);
    }
}
