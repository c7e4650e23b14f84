//! The UI state and `App::update`, the only place it changes. Loading from the store happens
//! here (on an action), never while drawing. Depends on the store, `trace` and the tui's
//! `action`, `keymap`, `theme` and `run_view`.

use std::sync::Arc;

use crate::store::Store;
use crate::trace::{Run, RunId, Session};

use super::action::Action;
use super::annotations::FlagRow;
use super::compare::CompareState;
use super::debug_loop::Started;
use super::error::Result;
use super::jobs::{Jobs, ModelChoice};
use super::keymap::Keymap;
use super::navigate::Unit;
use super::run_view::{RunView, LOW_LOGPROB};
use super::theme::{Theme, ThemeSet};

/// The screens, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Sessions,
    Trace,
    Flags,
    Routing,
    /// Two runs side by side (shown as a tab once a comparison is open).
    Compare,
}

/// An overlay that takes typed keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    Editor(super::editor::PromptEditor),
    Fork(super::fork_picker::ForkPicker),
    Export(super::export_dialog::ExportDialog),
    Note(super::annotate::NoteEditor),
    UserFlag(super::annotate::FlagEditor),
    Resample(super::resample::ResampleForm),
    /// The resample panel (its state is `App::resample`).
    ResamplePanel,
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
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Screen::Sessions => "1 Sessions",
            Screen::Trace => "2 Trace",
            Screen::Flags => "3 Flags",
            Screen::Routing => "4 Routing",
            Screen::Compare => "5 Compare",
        }
    }
}

/// What the trace text is coloured by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColourBy {
    Logprob,
    Entropy,
    /// The top expert of the chosen layer (MoE runs only).
    Expert,
    /// Plain phase colours, with syntax colours in code blocks.
    Syntax,
}

impl ColourBy {
    pub fn label(self) -> &'static str {
        match self {
            ColourBy::Logprob => "logprob",
            ColourBy::Entropy => "entropy",
            ColourBy::Expert => "expert",
            ColourBy::Syntax => "syntax",
        }
    }
}

/// One run in the sessions list.
#[derive(Debug, Clone)]
pub struct RunEntry {
    pub run: Run,
    pub steps: usize,
    pub flags: usize,
    /// The run's text, loaded the first time the list is filtered.
    pub text: Option<String>,
}

/// The whole UI state.
pub struct App {
    pub store: Option<Arc<Store>>,
    pub keymap: Keymap,
    pub themes: ThemeSet,
    pub theme: Theme,
    pub screen: Screen,
    pub help: bool,
    pub help_scroll: usize,
    pub sessions: Vec<Session>,
    pub runs: Vec<RunEntry>,
    /// Indexes into `runs` that pass the filter, grouped by session.
    pub visible: Vec<usize>,
    pub selected: usize,
    pub filter: String,
    /// The search / filter line being typed, if any.
    pub input: Option<String>,
    pub view: Option<RunView>,
    pub cursor: usize,
    /// First logical line of the trace viewport.
    pub top_line: usize,
    pub mark: Option<usize>,
    pub colour: ColourBy,
    pub layer: usize,
    pub search: String,
    /// Byte ranges in the run text that match `search`.
    pub matches: Vec<(usize, usize)>,
    pub flag_sel: usize,
    pub size: (u16, u16),
    pub message: String,
    pub quit: bool,
    /// The run recording in this process, followed live.
    pub live: Option<RunId>,
    /// The engine worker and the runs started from the UI.
    pub jobs: Jobs,
    pub overlay: Option<Overlay>,
    pub compare: Option<CompareState>,
    /// The run marked as side A of the next comparison.
    pub compare_mark: Option<RunId>,
    /// Runs started from the UI that have not ended.
    pub started: Vec<Started>,
    /// The last run started from the UI that ended.
    pub last_started: Option<Started>,
    /// The last resample started from the UI.
    pub resample: Option<super::resample::ResampleJob>,
}

impl App {
    pub fn new(store: Option<Arc<Store>>, keymap: Keymap, themes: ThemeSet, theme: Theme) -> App {
        App {
            store,
            keymap,
            themes,
            theme,
            screen: Screen::Sessions,
            help: false,
            help_scroll: 0,
            sessions: Vec::new(),
            runs: Vec::new(),
            visible: Vec::new(),
            selected: 0,
            filter: String::new(),
            input: None,
            view: None,
            cursor: 0,
            top_line: 0,
            mark: None,
            colour: ColourBy::Logprob,
            layer: 0,
            search: String::new(),
            matches: Vec::new(),
            flag_sel: 0,
            size: (120, 40),
            message: String::new(),
            quit: false,
            live: None,
            jobs: Jobs::new(ModelChoice::default()),
            overlay: None,
            compare: None,
            compare_mark: None,
            started: Vec::new(),
            last_started: None,
            resample: None,
        }
    }

    /// Reads the session list from the store and selects the first run.
    pub fn reload(&mut self) -> Result<()> {
        let Some(store) = self.store.clone() else { return Ok(()) };
        let mut sessions = store.sessions()?;
        sessions.sort_by_key(|s| s.created_at);
        let (runs, errors) = store.runs_lossy()?;
        if !errors.is_empty() {
            self.message = format!("{} run(s) could not be read", errors.len());
        }
        self.runs.clear();
        for s in &sessions {
            for id in &s.runs {
                if let Some(r) = runs.iter().find(|r| r.id == *id) {
                    let flags = store.flags(r.id).map(|f| f.len()).unwrap_or(0);
                    self.runs.push(RunEntry {
                        run: r.clone(),
                        steps: store.step_count(r.id),
                        flags,
                        text: None,
                    });
                }
            }
        }
        self.sessions = sessions;
        self.refilter();
        self.select(0);
        Ok(())
    }

    /// Shows `view` as the current run (tests, benchmarks, live runs).
    pub fn set_view(&mut self, mut view: RunView) {
        view.rehighlight(&self.theme.syntax);
        self.view = Some(view);
        self.cursor = 0;
        self.top_line = 0;
        self.mark = None;
        self.matches.clear();
        self.flag_sel = 0;
        self.layer = 0;
        if self.colour == ColourBy::Expert && !self.view.as_ref().is_some_and(RunView::is_moe) {
            self.colour = ColourBy::Logprob;
        }
    }

    /// Opens the run `id` in the trace view and follows it as the engine reports steps.
    pub fn follow(&mut self, id: RunId) {
        self.live = Some(id);
        if let Some(i) = self.visible.iter().position(|&i| self.runs[i].run.id == id) {
            self.select(i);
        }
        if self.view.as_ref().is_some_and(|v| v.run.id == id) {
            self.screen = Screen::Trace;
        }
    }

    pub fn selected_run(&self) -> Option<&RunEntry> {
        self.visible.get(self.selected).and_then(|&i| self.runs.get(i))
    }

    pub fn session_of(&self, run: &Run) -> Option<&Session> {
        self.sessions.iter().find(|s| s.id == run.session)
    }

    fn refilter(&mut self) {
        let needle = self.filter.to_lowercase();
        if !needle.is_empty() {
            if let Some(store) = self.store.clone() {
                for e in self.runs.iter_mut().filter(|e| e.text.is_none()) {
                    let steps = store.steps(e.run.id).map(|r| r.steps).unwrap_or_default();
                    e.text = Some(steps.iter().map(|s| s.text.as_str()).collect());
                }
            }
        }
        let sessions = &self.sessions;
        self.visible = (0..self.runs.len())
            .filter(|&i| {
                let e = &self.runs[i];
                if needle.is_empty() {
                    return true;
                }
                let title = sessions
                    .iter()
                    .find(|s| s.id == e.run.session)
                    .map_or(String::new(), |s| s.title.to_lowercase());
                title.contains(&needle)
                    || e.run.label.as_deref().unwrap_or("").to_lowercase().contains(&needle)
                    || e.run.model.name.to_lowercase().contains(&needle)
                    || e.text.as_deref().unwrap_or("").to_lowercase().contains(&needle)
            })
            .collect();
    }

    /// Selects row `i` of the visible runs and loads that run.
    pub(super) fn select_row(&mut self, i: usize) {
        self.select(i);
    }

    /// Selects row `i` of the visible runs and loads that run.
    fn select(&mut self, i: usize) {
        if self.visible.is_empty() {
            self.selected = 0;
            return;
        }
        self.selected = i.min(self.visible.len() - 1);
        let Some(id) = self.selected_run().map(|e| e.run.id) else { return };
        if self.view.as_ref().is_some_and(|v| v.run.id == id) {
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
        self.set_view(view);
        Ok(())
    }

    /// Applies one action. The only place the state changes.
    pub fn update(&mut self, action: Action) {
        if !matches!(action, Action::Resize(..) | Action::Job(_)) {
            self.message.clear();
        }
        if let Action::Job(ev) = action {
            self.on_job(*ev);
            return;
        }
        if self.overlay.is_some() && !matches!(action, Action::Resize(..)) {
            self.update_overlay(action);
            return;
        }
        if self.help {
            match action {
                Action::Help | Action::Back => self.help = false,
                Action::Quit => self.quit = true,
                Action::Down | Action::LineDown => self.help_scroll += 1,
                Action::Up | Action::LineUp => {
                    self.help_scroll = self.help_scroll.saturating_sub(1)
                }
                Action::Resize(w, h) => self.size = (w, h),
                _ => {}
            }
            return;
        }
        match action {
            Action::Quit => self.quit = true,
            Action::Help => {
                self.help = true;
                self.help_scroll = 0;
            }
            Action::Back if self.mark.is_some() && self.input.is_none() => self.mark = None,
            Action::Back => {
                if self.input.take().is_none() && self.screen != Screen::Sessions {
                    self.screen = Screen::Sessions;
                }
            }
            Action::ScreenSessions => self.screen = Screen::Sessions,
            Action::ScreenTrace => self.screen = Screen::Trace,
            Action::ScreenFlags => self.screen = Screen::Flags,
            Action::ScreenRouting => self.screen = Screen::Routing,
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
            Action::Resize(w, h) => {
                self.size = (w, h);
                self.move_to(self.cursor);
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
                        self.run_search(&text);
                    }
                }
            }
            Action::CycleTheme => self.cycle_theme(),
            Action::EditRerun
            | Action::Fork
            | Action::Compare
            | Action::CompareMark
            | Action::CancelRun
            | Action::ExportDialog
            | Action::ResamplePanel
            | Action::ScreenCompare => self.update_loop(action),
            Action::Note | Action::UserFlag | Action::Resample
                if matches!(self.screen, Screen::Trace | Screen::Routing) =>
            {
                self.update_annotate(action)
            }
            other => match self.screen {
                Screen::Sessions => self.update_sessions(other),
                Screen::Flags => self.update_flags(other),
                Screen::Trace | Screen::Routing => self.update_trace(other),
                Screen::Compare => self.update_compare(other),
            },
        }
    }

    fn after_input_edit(&mut self) {
        if self.screen == Screen::Sessions {
            self.filter = self.input.clone().unwrap_or_default();
            self.refilter();
            self.selected = 0;
            self.select(0);
        }
    }

    fn update_sessions(&mut self, action: Action) {
        let page = self.trace_height().max(2) / 2;
        match action {
            Action::Down => self.select(self.selected + 1),
            Action::Up => self.select(self.selected.saturating_sub(1)),
            Action::PageDown => self.select(self.selected + page),
            Action::PageUp => self.select(self.selected.saturating_sub(page)),
            Action::Start => self.select(0),
            Action::End => self.select(self.visible.len().saturating_sub(1)),
            Action::Open if self.view.is_some() => self.screen = Screen::Trace,
            Action::Search => self.input = Some(self.filter.clone()),
            _ => {}
        }
    }

    fn update_flags(&mut self, action: Action) {
        let rows = self.flag_rows();
        match action {
            Action::Down => self.flag_sel = (self.flag_sel + 1).min(rows.len().saturating_sub(1)),
            Action::Up => self.flag_sel = self.flag_sel.saturating_sub(1),
            Action::Open => {
                let Some(v) = &self.view else { return };
                let start = match rows.get(self.flag_sel) {
                    Some(FlagRow::Flag(i)) => v.flags.get(*i).map(|f| f.start),
                    Some(FlagRow::Note(i)) => v.notes.get(*i).map(|n| n.start),
                    None => None,
                };
                if let Some(s) = start {
                    self.screen = Screen::Trace;
                    self.move_to(s as usize);
                }
            }
            Action::EditAnnotation => self.edit_selected_row(),
            Action::DeleteAnnotation => self.delete_selected_row(),
            _ => {}
        }
    }

    /// Flag indexes grouped by kind (in the order kinds first appear), as the Flags screen
    /// lists them.
    pub fn flag_order(&self) -> Vec<usize> {
        let Some(v) = &self.view else { return Vec::new() };
        let mut kinds = Vec::new();
        for f in &v.flags {
            if !kinds.contains(&&f.kind) {
                kinds.push(&f.kind);
            }
        }
        kinds
            .iter()
            .flat_map(|k| {
                v.flags.iter().enumerate().filter(move |(_, f)| &f.kind == *k).map(|(i, _)| i)
            })
            .collect()
    }

    fn update_trace(&mut self, action: Action) {
        let Some(v) = &self.view else { return };
        let n = v.len();
        let page = self.trace_height();
        match action {
            Action::NextToken => self.move_to(self.cursor + 1),
            Action::PrevToken => self.move_to(self.cursor.saturating_sub(1)),
            Action::LineDown => self.line_move(1),
            Action::LineUp => self.line_move(-1),
            Action::PageDown => self.line_move(page as isize),
            Action::PageUp => self.line_move(-(page as isize)),
            Action::Start => self.move_to(0),
            Action::End => self.move_to(n.saturating_sub(1)),
            Action::NextWord => self.segment_move(Unit::Word, true),
            Action::PrevWord => self.segment_move(Unit::Word, false),
            Action::NextSentence => self.segment_move(Unit::Sentence, true),
            Action::PrevSentence => self.segment_move(Unit::Sentence, false),
            Action::NextStep => self.segment_move(Unit::Step, true),
            Action::PrevStep => self.segment_move(Unit::Step, false),
            Action::NextFlag => self.jump_flag(true),
            Action::PrevFlag => self.jump_flag(false),
            Action::NextLowConfidence | Action::PrevLowConfidence => {
                let fwd = action == Action::NextLowConfidence;
                let steps = &v.steps;
                match self.find_step(fwd, |i| steps[i].logprob < LOW_LOGPROB) {
                    Some(i) => self.move_to(i),
                    None => self.message = "no more low-confidence tokens".into(),
                }
            }
            Action::Search => self.input = Some(String::new()),
            Action::SearchNext => self.jump_match(true),
            Action::SearchPrev => self.jump_match(false),
            Action::CycleColour => {
                self.colour = match self.colour {
                    ColourBy::Logprob => ColourBy::Entropy,
                    ColourBy::Entropy if v.is_moe() => ColourBy::Expert,
                    ColourBy::Entropy | ColourBy::Expert => ColourBy::Syntax,
                    ColourBy::Syntax => ColourBy::Logprob,
                };
            }
            Action::NextLayer if v.layers > 0 => self.layer = (self.layer + 1) % v.layers,
            Action::PrevLayer if v.layers > 0 => {
                self.layer = (self.layer + v.layers - 1) % v.layers;
            }
            Action::Mark => {
                self.mark = if self.mark.is_some() { None } else { Some(self.cursor) };
            }
            Action::DeleteAnnotation => self.delete_at_cursor(),
            _ => {}
        }
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
                if let Some(v) = &mut self.view {
                    v.rehighlight(&syntax);
                }
                self.message = format!("theme '{name}'");
            }
            Err(e) => self.message = e.to_string(),
        }
    }
}
