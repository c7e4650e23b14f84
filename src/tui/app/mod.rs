//! `App`: the shared handles (store, jobs, keymap, themes, terminal size, status message) and
//! the components, and `App::update(Action)`, the single entry point that changes the UI
//! state: it routes each action to the component of the open dialog, the help overlay or the
//! current screen, and applies the `Effect` the component returns. The cross-cutting work
//! lives beside it: starting runs and writing exports (`runs.rs`), the job channel's events
//! (`events.rs`), the inspector's layers view (`lens.rs`), storing annotations and undoing a
//! delete (`annotations.rs`) and clicks and the wheel (`mouse.rs`). Loading from the store happens
//! here (on an action), never while drawing.
//!
//! May import every component, `action`, `jobs`, `keymap`, `theme`, `run_view` and `error`,
//! and the crate's `store`, `trace`, `analysis`, `engine`, `remote`, `runs`, `record`,
//! `export` and `tui::text`. Nothing in `components` imports it.

mod annotations;
mod events;
mod lens;
mod mouse;
mod runs;

use std::sync::Arc;

use crate::runs::resample;
use crate::store::Store;
use crate::trace::RunId;

use super::action::Action;
use super::components::compare::CompareState;
use super::components::ctx::Ctx;
use super::components::editor::PromptEditor;
use super::components::experiments::Experiments;
use super::components::export_dialog::ExportDialog;
use super::components::fork_picker::ForkPicker;
use super::components::help::Help;
use super::components::resample::ResampleJob;
use super::components::sessions::Sessions;
use super::components::viewer::Viewer;
use super::components::{Effect, Overlay, Screen};
use super::error::Result;
use super::jobs::{Jobs, ModelChoice};
use super::keymap::Keymap;
use super::run_view::RunView;
use super::theme::{Theme, ThemeSet};

/// The context components get: the shared handles, borrowed field by field so that a
/// component (another field of `App`) can be updated while it is held.
macro_rules! cx {
    ($app:expr) => {
        Ctx {
            theme: &$app.theme,
            keymap: &$app.keymap,
            store: $app.store.as_ref(),
            size: $app.size,
        }
    };
}
pub(crate) use cx;

/// A run the UI started, to compare with its parent when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    pub run: RunId,
    pub parent: RunId,
    /// The fork step (0 for an edited prompt).
    pub at: u32,
    pub fork: bool,
}

/// The whole UI state: the shared handles and the components.
pub struct App {
    pub store: Option<Arc<Store>>,
    pub keymap: Keymap,
    pub themes: ThemeSet,
    pub theme: Theme,
    pub screen: Screen,
    pub size: (u16, u16),
    pub message: String,
    pub quit: bool,
    /// `q` was pressed while a run records: the next `q` stops it and quits.
    pub quit_armed: bool,
    /// The search / filter line being typed, if any.
    pub input: Option<String>,
    /// The engine worker and the runs started from the UI.
    pub jobs: Jobs,
    pub help: Help,
    pub sessions: Sessions,
    /// The run shown on the trace, flags and routing screens.
    pub viewer: Viewer,
    pub overlay: Option<Overlay>,
    pub compare: Option<CompareState>,
    /// The experiments screen (its report is read when the screen is opened).
    pub experiments: Experiments,
    /// The run marked as side A of the next comparison.
    pub compare_mark: Option<RunId>,
    /// Runs started from the UI that have not ended.
    pub started: Vec<Started>,
    /// The last run started from the UI that ended.
    pub last_started: Option<Started>,
    /// The last resample started from the UI (the resample panel's state).
    pub resample: Option<ResampleJob>,
    /// Whether the terminal reports the mouse to the UI (`M` toggles; off, the terminal
    /// selects text).
    pub mouse: bool,
    /// The config directory, where the theme chosen with `T` is remembered (none in tests).
    pub config_dir: Option<std::path::PathBuf>,
    /// The note or user flag deleted last, which `u` restores.
    pub undo: Option<super::components::Annotation>,
}

impl App {
    pub fn new(store: Option<Arc<Store>>, keymap: Keymap, themes: ThemeSet, theme: Theme) -> App {
        App {
            store,
            keymap,
            themes,
            theme,
            screen: Screen::Sessions,
            size: (120, 40),
            message: String::new(),
            quit: false,
            quit_armed: false,
            input: None,
            jobs: Jobs::new(ModelChoice::default()),
            help: Help::default(),
            sessions: Sessions::default(),
            viewer: Viewer::default(),
            overlay: None,
            compare: None,
            experiments: Experiments::default(),
            compare_mark: None,
            started: Vec::new(),
            last_started: None,
            resample: None,
            undo: None,
            config_dir: None,
            mouse: true,
        }
    }

    /// Visible rows of the trace viewport.
    pub fn trace_height(&self) -> usize {
        super::components::ctx::trace_height(self.size)
    }

    /// Reads the session list from the store and shows the first run.
    pub fn reload(&mut self) -> Result<()> {
        let Some(store) = self.store.clone() else { return Ok(()) };
        if let Some(m) = self.sessions.reload(&store)? {
            self.message = m;
        }
        let e = self.sessions.select(0);
        self.apply(e);
        Ok(())
    }

    /// Reloads the sessions list (runs another thread added or removed), keeping the run
    /// shown selected.
    pub fn refresh_list(&mut self) {
        let Some(store) = self.store.clone() else { return };
        match self.sessions.reload(&store) {
            Ok(Some(m)) => self.message = m,
            Ok(None) => {}
            Err(e) => self.message = format!("could not reload the sessions: {e}"),
        }
        if let Some(i) = self.viewer.run_id().and_then(|id| self.sessions.row_of(id)) {
            let e = self.sessions.select(i);
            self.apply(e);
        }
    }

    /// Shows `view` as the current run (tests, benchmarks, live runs).
    pub fn set_view(&mut self, view: RunView) {
        self.viewer.set_view(view, &self.theme.syntax);
    }

    /// Opens the run `id` in the trace view and follows it as the engine reports steps.
    pub fn follow(&mut self, id: RunId) {
        self.viewer.live = Some(id);
        if let Some(i) = self.sessions.row_of(id) {
            self.select_row(i);
        }
        if self.viewer.run_id() == Some(id) {
            self.screen = Screen::Trace;
        }
    }

    /// Selects row `i` of the visible runs and shows that run.
    fn select_row(&mut self, i: usize) {
        let e = self.sessions.select(i);
        self.apply(e);
    }

    /// Shows run `id` unless it is already shown.
    fn show(&mut self, id: RunId) {
        if self.viewer.run_id() == Some(id) {
            return;
        }
        if let Err(e) = self.load_run(id) {
            self.message = format!("could not load run '{id}': {e}");
        }
    }

    fn load_run(&mut self, id: RunId) -> Result<()> {
        let Some(store) = self.store.clone() else { return Ok(()) };
        let Some(run) = store.run(id)? else { return Ok(()) };
        let (view, problem) = RunView::read(&store, run)?;
        if let Some(p) = problem {
            self.message = p;
        }
        // Opening a run analyses it if it was not: the list's flag count follows.
        if let Some(e) = self.sessions.runs.iter_mut().find(|e| e.run.id == id) {
            e.flags = view.flags.len();
        }
        self.set_view(view);
        Ok(())
    }

    /// Quits, unless a run is recording and this is the first ask: then says what quitting
    /// does and waits for a second `q`.
    fn request_quit(&mut self) {
        if self.jobs.busy() && !self.quit_armed {
            self.quit_armed = true;
            self.message = if self.jobs.running.is_empty() {
                "an experiment is running: q again stops it (what completed is kept; r resumes it) and quits; any other key stays"
            } else {
                "a run is recording: q again stops it (kept as cancelled) and quits; any other key stays"
            }
            .into();
        } else {
            self.quit = true;
        }
    }

    /// Applies one action. The only place the state changes.
    pub fn update(&mut self, action: Action) {
        if !matches!(
            action,
            Action::Resize(..) | Action::Job(_) | Action::Lens(_) | Action::ProbeDone(_)
        ) {
            self.message.clear();
            if action != Action::Quit {
                self.quit_armed = false;
            }
        }
        if let Action::Job(ev) = action {
            self.on_job(*ev);
            return;
        }
        if let Action::Lens(reply) = action {
            self.on_lens(*reply);
            return;
        }
        if let Action::ProbeDone(reply) = action {
            self.on_probe(*reply);
            return;
        }
        if self.overlay.is_some() && !matches!(action, Action::Resize(..)) {
            self.update_overlay(action);
            return;
        }
        if self.help.open {
            match action {
                Action::Resize(w, h) => self.size = (w, h),
                other => {
                    let e = self.help.update(other);
                    self.apply(e);
                }
            }
            return;
        }
        let h = self.trace_height();
        match action {
            Action::Quit => self.request_quit(),
            Action::Help => self.help.show(),
            Action::Back if self.viewer.mark.is_some() && self.input.is_none() => {
                self.viewer.mark = None
            }
            Action::Back if self.screen == Screen::Sessions => {
                // Esc on the sessions list (typing the filter or not) clears the filter.
                self.input = None;
                if !self.sessions.filter.is_empty() {
                    let keep = self.sessions.selected_run().map(|e| e.run.id);
                    let e = self.sessions.set_filter(String::new(), self.store.as_ref());
                    self.apply(e);
                    if let Some(i) = keep.and_then(|id| self.sessions.row_of(id)) {
                        self.select_row(i);
                    }
                    self.message = "filter cleared".into();
                }
            }
            Action::Back if self.screen == Screen::Experiments && self.experiments.listing => {
                self.experiments.listing = false
            }
            Action::Back
                if self.screen == Screen::Experiments
                    && self.jobs.experiment.as_ref().is_some_and(|e| !e.cancelled()) =>
            {
                self.jobs.cancel_all();
                self.message =
                    "stopping the experiment: the samples that completed are kept; r resumes it"
                        .into();
            }
            Action::ExperimentNew | Action::ExperimentResume
                if self.screen == Screen::Experiments =>
            {
                self.open_experiment_dialog(action == Action::ExperimentResume)
            }
            Action::Back => {
                if self.input.take().is_none() {
                    self.screen = Screen::Sessions;
                }
            }
            Action::ScreenSessions => self.screen = Screen::Sessions,
            Action::ScreenTrace => self.screen = Screen::Trace,
            Action::ScreenFlags => self.screen = Screen::Flags,
            Action::ScreenRouting => self.screen = Screen::Routing,
            Action::ScreenExperiments => {
                if let Some(store) = self.store.clone() {
                    self.experiments.reload(&store);
                }
                self.screen = Screen::Experiments;
            }
            Action::Compare if self.screen == Screen::Experiments => {
                let e = self.experiments.update(action, self.store.as_ref());
                self.apply(e);
            }
            Action::NextScreen | Action::PrevScreen => {
                let i = Screen::ALL.iter().position(|s| *s == self.screen).unwrap_or(0);
                if self.screen == Screen::Compare && action == Action::PrevScreen {
                    self.screen = Screen::ALL[Screen::ALL.len() - 1];
                    return;
                }
                let n = Screen::ALL.len();
                let j = if action == Action::NextScreen { (i + 1) % n } else { (i + n - 1) % n };
                self.screen = Screen::ALL[j];
            }
            Action::Resize(w, hh) => {
                self.size = (w, hh);
                self.viewer.move_to(self.viewer.cursor, self.trace_height());
            }
            Action::Input(c) => {
                if let Some(s) = &mut self.input {
                    s.push(c);
                }
                self.after_input_edit();
            }
            Action::InputBackspace => {
                if let Some(s) = &mut self.input {
                    s.pop();
                }
                self.after_input_edit();
            }
            Action::InputSubmit => {
                if let Some(text) = self.input.take() {
                    if self.screen != Screen::Sessions {
                        let e = self.viewer.run_search(&text, h);
                        self.apply(e);
                    }
                }
            }
            Action::CycleTheme => self.cycle_theme(),
            Action::Undo => self.undo_delete(),
            Action::ToggleMouse => {
                self.mouse = !self.mouse;
                self.message = if self.mouse {
                    "mouse on: click a token or an alternative, wheel scrolls (shift-drag selects text)"
                } else {
                    "mouse off: the terminal selects text; M turns it on"
                }
                .into();
            }
            Action::Click(x, y) => self.click(x, y),
            Action::ToggleLens => self.toggle_lens(),
            Action::Probe if matches!(self.screen, Screen::Trace | Screen::Routing) => {
                self.start_probe()
            }
            Action::Scroll(down) => self.scroll(down),
            Action::EditRerun
            | Action::Fork
            | Action::Compare
            | Action::CompareMark
            | Action::CancelRun
            | Action::ExportDialog
            | Action::ImportDialog
            | Action::ResamplePanel
            | Action::Score
            | Action::ScreenCompare => self.update_loop(action),
            Action::Note | Action::UserFlag | Action::Resample
                if matches!(self.screen, Screen::Trace | Screen::Routing) =>
            {
                let e = match action {
                    Action::Note => self.viewer.open_note(&cx!(self)),
                    Action::UserFlag => self.viewer.open_user_flag(&cx!(self)),
                    _ => self.open_resample(),
                };
                self.apply(e);
            }
            other => {
                let e = match self.screen {
                    Screen::Sessions => self.sessions.update(other, &cx!(self)),
                    Screen::Flags => self.viewer.update_flags(other, &cx!(self)),
                    Screen::Trace | Screen::Routing => self.viewer.update_trace(other, &cx!(self)),
                    Screen::Compare => match &mut self.compare {
                        Some(c) => c.update(other, h),
                        None => Effect::None,
                    },
                    Screen::Experiments => {
                        match self.experiments.update(other, self.store.as_ref()) {
                            // A run opened from the list is shown in the trace view.
                            Effect::Show(id) => {
                                self.show(id);
                                Effect::Screen(Screen::Trace)
                            }
                            e => e,
                        }
                    }
                };
                self.apply(e);
            }
        }
        // The layers view follows the cursor.
        self.request_lens();
    }

    /// Keys while a dialog is open: to the dialog, or for the resample panel to its job.
    fn update_overlay(&mut self, action: Action) {
        let Some(overlay) = &mut self.overlay else { return };
        let e = match (overlay, &mut self.resample) {
            (Overlay::ResamplePanel, r) if !matches!(action, Action::Back | Action::Quit) => {
                r.as_mut().map_or(Effect::None, |r| r.update(&action))
            }
            (o, _) => o.update(action),
        };
        self.apply(e);
    }

    /// The typed filter narrows the sessions list as it changes.
    fn after_input_edit(&mut self) {
        if self.screen == Screen::Sessions {
            let filter = self.input.clone().unwrap_or_default();
            let e = self.sessions.set_filter(filter, self.store.as_ref());
            self.apply(e);
        }
    }

    /// Does what a component asked for.
    fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::None => {}
            Effect::Message(m) => self.message = m,
            Effect::Quit => self.request_quit(),
            Effect::Screen(s) => self.screen = s,
            Effect::Prompt(text) => self.input = Some(text),
            Effect::Show(id) => self.show(id),
            Effect::OpenSelected => {
                if self.viewer.view.is_some() {
                    self.screen = Screen::Trace;
                }
            }
            Effect::Open(o) => self.overlay = Some(o),
            Effect::CloseOverlay => self.overlay = None,
            Effect::Submit => self.submit_overlay(),
            Effect::Compare { a, b, at } => match self.open_compare(a, b, at) {
                Ok(()) => self.overlay = None,
                Err(e) => self.message = format!("could not compare: {e}"),
            },
            Effect::CancelContinuations => {
                let k = self.jobs.cancel_all();
                self.message = format!("cancelling {k} continuation(s)");
            }
            Effect::Delete { what, from_list } => self.delete(what, from_list),
        }
    }

    /// The debugging loop's actions on the trace, sessions and compare screens.
    fn update_loop(&mut self, action: Action) {
        match action {
            Action::EditRerun => match &self.viewer.view {
                Some(v) if self.store.is_some() => {
                    let e = PromptEditor::new(&v.run).with_last(self.jobs.last_endpoint.as_ref());
                    self.overlay = Some(Overlay::Editor(e));
                }
                _ => self.message = "no run to edit".into(),
            },
            Action::Fork => {
                let v = self.viewer.view.as_ref();
                match v.and_then(|v| Some((v, v.steps.get(self.viewer.cursor)?))) {
                    Some((v, s)) => {
                        self.overlay = Some(Overlay::Fork(ForkPicker::new(v.run.id, s)))
                    }
                    None => self.message = "no token to fork at".into(),
                }
            }
            Action::CompareMark => {
                if let Some(v) = &self.viewer.view {
                    self.compare_mark = Some(v.run.id);
                    self.sessions.marked = Some(v.run.id);
                    self.message =
                        format!("marked '{}' as side A; press C on another run", v.run.id);
                }
            }
            Action::Compare => self.compare_current(),
            Action::CancelRun => {
                let n = self.jobs.cancel_all();
                self.message = if n == 0 {
                    "no run in progress".into()
                } else {
                    format!("cancelling {n} run(s)")
                };
            }
            Action::ScreenCompare => self.screen = Screen::Compare,
            Action::ResamplePanel => {
                if self.resample.is_some() {
                    self.overlay = Some(Overlay::ResamplePanel);
                } else {
                    self.message = "no resample yet; press r on a reasoning step".into();
                }
            }
            Action::ExportDialog => match &self.viewer.view {
                Some(v) if self.store.is_some() => {
                    self.overlay = Some(Overlay::Export(ExportDialog::new(v.run.id)));
                }
                _ => self.message = "no run to export".into(),
            },
            Action::ImportDialog if self.store.is_some() => {
                let cwd = std::env::current_dir().unwrap_or_default();
                self.overlay = Some(Overlay::Import(Box::new(
                    crate::tui::components::import_dialog::ImportDialog::new(cwd),
                )));
            }
            Action::ImportDialog => self.message = "no store to import into".into(),
            Action::Score => match &self.viewer.view {
                Some(v) if self.store.is_some() => {
                    let id = v.run.id;
                    if let Err(e) = self.start_score(id) {
                        self.message = format!("could not score '{id}': {e}");
                    }
                }
                _ => self.message = "no run to score".into(),
            },
            _ => {}
        }
    }

    /// `r`: the panel of the resample still running, else the form for the reasoning step at
    /// the cursor.
    fn open_resample(&mut self) -> Effect {
        if self.resample.as_ref().is_some_and(|r| !r.finished()) {
            return Effect::Open(Overlay::ResamplePanel);
        }
        let samples = resample::configured_samples().unwrap_or_else(|e| {
            self.message = format!("{e}; using {}", resample::DEFAULT_SAMPLES);
            resample::DEFAULT_SAMPLES
        });
        self.viewer.resample_form(samples, &cx!(self))
    }

    fn cycle_theme(&mut self) {
        let names = self.themes.names();
        let i = names
            .iter()
            .position(|n| *n == self.theme.name)
            .map_or(0, |i| (i + 1) % names.len().max(1));
        let Some(name) = names.get(i) else { return };
        match self.themes.load(name, self.theme.no_color) {
            Ok(t) => {
                self.theme = t;
                let syntax = self.theme.syntax.clone();
                if let Some(v) = &mut self.viewer.view {
                    v.rehighlight(&syntax);
                }
                self.message = format!("theme '{name}'");
                if let Some(dir) = &self.config_dir {
                    if let Err(e) = super::theme::remember(dir, name) {
                        self.message = format!("theme '{name}' (not remembered: {e})");
                    }
                }
            }
            Err(e) => self.message = e.to_string(),
        }
    }
}
