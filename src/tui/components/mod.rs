//! The UI's components, gitui's and yazi's way: each screen or dialog owns its state, changes
//! it in `update(&mut self, action, ..) -> Effect` and draws it in `draw(&self, frame, area,
//! ..)`, which never mutates and never does I/O. What a component cannot do alone (open a run,
//! switch screen, show a message, open or submit a dialog, start or cancel a job, store an
//! annotation) it asks for by returning an [`Effect`], which `App` applies.
//!
//! This file owns the vocabulary between `App` and the components: the screens (`Screen`), the
//! open dialog (`Overlay`) and `Effect`. `ctx.rs` holds `Ctx`, what components get instead of
//! `App`; `widgets.rs` small drawing helpers. Files: one per component; a component with a lot
//! of drawing is a folder, `name/mod.rs` (state and update) plus `name/draw.rs` (or `name/draw/`,
//! one file per pane).
//!
//! Dialogs (`editor`, `fork_picker`, `export_dialog`, `import_dialog`, `note_editor`, `flag_editor`,
//! `resample::form`) import only `ctx`, `widgets` and what lies below `components`, never this
//! file (the `Overlay` here holds them); their `update` edits them and returns nothing.
//! Screens and the resample panel return `Effect`s and may import this file and the dialogs.
//! Nothing here imports `app`, `ui`, `dispatch` or the event loop in `tui/mod.rs`; below
//! `components` are the tui's `action`, `theme`, `keymap`, `run_view`, `highlight`,
//! `provenance` and `error`, and the crate's `trace`, `tui::text`, `store`, `analysis`,
//! `compare`, `export`, `record` and `runs`.

pub mod compare;
pub mod ctx;
pub mod editor;
pub mod experiment_dialog;
pub mod experiments;
pub mod export_dialog;
pub mod flag_editor;
pub mod fork_picker;
pub mod help;
pub mod import_dialog;
pub mod note_editor;
pub mod resample;
pub mod sessions;
pub mod viewer;
pub mod widgets;

use crate::trace::{Flag, Note, RunId};
use crate::tui::action::Action;

/// The screens, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Sessions,
    Trace,
    Flags,
    Routing,
    /// Two runs side by side (shown as a tab once a comparison is open).
    Compare,
    /// An experiment's report (shown as a tab while open).
    Experiments,
}

impl Screen {
    pub const ALL: [Screen; 4] = [Screen::Sessions, Screen::Trace, Screen::Flags, Screen::Routing];

    /// The keymap mode of the screen.
    pub fn mode(self) -> &'static str {
        match self {
            Screen::Sessions => "sessions",
            Screen::Trace => "trace",
            Screen::Flags => "flags",
            Screen::Routing => "routing",
            Screen::Compare => "compare",
            Screen::Experiments => "experiments",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Screen::Sessions => "1 Sessions",
            Screen::Trace => "2 Trace",
            Screen::Flags => "3 Flags",
            Screen::Routing => "4 Routing",
            Screen::Compare => "5 Compare",
            Screen::Experiments => "6 Experiments",
        }
    }
}

/// An open dialog: it takes the typed keys until it is closed or submitted. A dialog's own
/// `update` only edits it; closing and submitting are decided here.
#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    Editor(editor::PromptEditor),
    Fork(fork_picker::ForkPicker),
    Export(export_dialog::ExportDialog),
    Import(Box<import_dialog::ImportDialog>),
    Experiment(Box<experiment_dialog::ExperimentDialog>),
    Note(note_editor::NoteEditor),
    UserFlag(flag_editor::FlagEditor),
    Resample(resample::form::ResampleForm),
    /// The resample panel (its state is the `ResampleJob` that `App` keeps).
    ResamplePanel,
}

impl Overlay {
    /// A key while the dialog is open. Esc closes it, Enter submits it (except the resample
    /// panel, whose keys go to its `ResampleJob`), the rest edits it.
    pub fn update(&mut self, action: Action) -> Effect {
        match action {
            Action::Back => return Effect::CloseOverlay,
            Action::Quit => return Effect::Quit,
            Action::InputSubmit if !matches!(self, Overlay::ResamplePanel) => {
                return Effect::Submit
            }
            _ => {}
        }
        match self {
            Overlay::Editor(e) => e.update(action),
            Overlay::Fork(p) => p.update(action),
            Overlay::Export(d) => d.update(action),
            Overlay::Import(d) => d.update(action),
            Overlay::Experiment(d) => d.update(action),
            Overlay::Note(e) => e.update(action),
            Overlay::UserFlag(e) => e.update(action),
            Overlay::Resample(r) => r.update(action),
            Overlay::ResamplePanel => {}
        }
        Effect::None
    }
}

/// A note or a user flag to delete from the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Annotation {
    Note(RunId, Note),
    Flag(RunId, Flag),
}

/// What a component asks `App` to do after an update.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Nothing more.
    None,
    /// Show this in the status line.
    Message(String),
    Quit,
    Screen(Screen),
    /// Start typing in the status line (search or filter), from this text.
    Prompt(String),
    /// Show run `id` in the viewer (loaded from the store unless it is already shown).
    Show(RunId),
    /// Enter on the sessions list: the trace of the shown run.
    OpenSelected,
    Open(Overlay),
    CloseOverlay,
    /// Do what the open dialog describes (start a run, write a file, store an annotation).
    Submit,
    /// Compare run `a` with run `b`, the cursor at `at` (else at the first divergence), and
    /// close the open dialog once it is shown.
    Compare {
        a: RunId,
        b: RunId,
        at: Option<usize>,
    },
    /// Cancel the resample's continuations.
    CancelContinuations,
    /// Delete a note or a user flag; `from_list`: chosen on the Flags list (whose selection
    /// then stays in range).
    Delete {
        what: Annotation,
        from_list: bool,
    },
}

impl From<Option<String>> for Effect {
    /// A message if there is one, else nothing.
    fn from(m: Option<String>) -> Effect {
        m.map_or(Effect::None, Effect::Message)
    }
}
