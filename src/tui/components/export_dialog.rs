//! The export dialog: the shown run as Markdown, HTML or JSONL, to a file whose path can be
//! edited. Owns the format and path; submitting asks `App` to write the file. May import
//! `components::ctx` (never `components/mod.rs`, whose `Overlay` holds it), `theme`, `action`
//! `text` and the crate's `export` and `trace`.

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use super::ctx::Ctx;
use crate::export::Kind;
use crate::trace::RunId;
use crate::tui::action::Action;
use crate::tui::text::{shown, typable};

#[derive(Debug, Clone, PartialEq)]
pub struct ExportDialog {
    pub run: RunId,
    pub kind: Kind,
    pub path: String,
    /// The path still follows the format's extension (not edited by hand).
    default_path: bool,
    /// The file exists and enter was pressed once: the next enter overwrites it.
    pub overwrite: bool,
}

fn default_path(run: RunId, kind: Kind) -> String {
    format!("thinkdbg-{run}.{}", kind.extension())
}

impl ExportDialog {
    pub fn new(run: RunId) -> ExportDialog {
        let kind = Kind::Markdown;
        ExportDialog {
            run,
            kind,
            path: default_path(run, kind),
            default_path: true,
            overwrite: false,
        }
    }

    /// Tab switches the format, typing edits the path.
    pub fn update(&mut self, action: Action) {
        // Any change asks again before overwriting.
        self.overwrite = false;
        match action {
            Action::FieldNext => self.cycle(true),
            Action::FieldPrev => self.cycle(false),
            Action::Input(c) => self.input(c),
            Action::InputBackspace => self.backspace(),
            _ => {}
        }
    }

    pub fn cycle(&mut self, forward: bool) {
        let n = Kind::ALL.len();
        let i = Kind::ALL.iter().position(|k| *k == self.kind).unwrap_or(0);
        self.kind = Kind::ALL[if forward { (i + 1) % n } else { (i + n - 1) % n }];
        if self.default_path {
            self.path = default_path(self.run, self.kind);
        }
    }

    pub fn input(&mut self, c: char) {
        if !typable(c, false) {
            return;
        }
        self.default_path = false;
        self.path.push(c);
    }

    /// The path as it will be written: absolute (relative paths are from the working
    /// directory).
    pub fn target(&self) -> std::path::PathBuf {
        let p = std::path::Path::new(self.path.trim());
        std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
    }

    pub fn backspace(&mut self) {
        self.default_path = false;
        self.path.pop();
    }
}

impl ExportDialog {
    pub fn draw(&self, f: &mut Frame, area: Rect, cx: &Ctx) {
        let (t, d) = (cx.theme, self);
        let w = area.width.saturating_sub(8).min(70);
        let [popup] = Layout::horizontal([Constraint::Length(w)]).flex(Flex::Center).areas(area);
        let [popup] = Layout::vertical([Constraint::Length(8)]).flex(Flex::Center).areas(popup);
        f.render_widget(Clear, popup);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(t.get("ui.border.focus"))
            .title(Span::styled(format!(" Export {} ", d.run), t.get("ui.title")));
        let inner = block.inner(popup);
        f.render_widget(block, popup);
        let mut formats = vec![Span::styled("format ", t.get("editor.field"))];
        for k in Kind::ALL {
            let name = match k {
                Kind::Markdown => "Markdown",
                Kind::Html => "HTML",
                Kind::Jsonl => "JSONL",
            };
            let st = if k == d.kind { t.get("ui.selection") } else { t.get("ui.text") };
            formats.push(Span::styled(format!(" {name} "), st));
            formats.push(Span::raw(" "));
        }
        let lines = vec![
            Line::from(formats),
            Line::from(""),
            Line::from(vec![
                Span::styled("file   ", t.get("editor.field.focus")),
                Span::styled(format!("{}▏", shown(&d.path)), t.get("ui.text")),
            ]),
            if d.overwrite {
                Line::from(Span::styled(
                    "the file exists: enter overwrites it, esc cancels",
                    t.get("ui.warning"),
                ))
            } else {
                Line::from("")
            },
            Line::from(Span::styled(
                "tab/↓ format · type the path · enter write · esc cancel",
                t.get("ui.dim"),
            )),
        ];
        f.render_widget(Paragraph::new(lines), inner);
    }
}
