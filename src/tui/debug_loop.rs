//! The debugging loop in `App::update`: edit and re-run (on the embedded model or a server
//! endpoint), fork at a token, compare two runs, cancel, the engine events of runs started
//! from the UI, and following a live run. Store reads and job starts happen here (on an
//! action), never while drawing.

use super::action::Action;
use super::app::{App, Overlay, Screen};
use super::compare::CompareState;
use super::editor::PromptEditor;
use super::error::{Error, Result};
use super::export_dialog::ExportDialog;
use super::fork_picker::{ForkChoice, ForkPicker};
use super::jobs::{Ended, JobEvent};
use super::run_view::RunView;
use crate::analysis::AnalysisConfig;
use crate::engine::generate::{Prompt, RunRequest};
use crate::record::Event;
use crate::remote::RemoteRequest;
use crate::runs::remote::Endpoint;
use crate::runs::replay::Parent;
use crate::sanitize::visible_token;
use crate::trace::{RoutingDetail, RunId, RunStatus};

/// A run the UI started, to compare with its parent when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    pub run: RunId,
    pub parent: RunId,
    /// The fork step (0 for an edited prompt).
    pub at: u32,
    pub fork: bool,
}

impl App {
    /// Keys while an overlay (editor, fork picker) is open.
    pub(super) fn update_overlay(&mut self, action: Action) {
        match action {
            Action::Back => {
                self.overlay = None;
                return;
            }
            Action::Quit => {
                self.quit = true;
                return;
            }
            Action::InputSubmit if !matches!(self.overlay, Some(Overlay::ResamplePanel)) => {
                self.submit_overlay();
                return;
            }
            _ => {}
        }
        if matches!(self.overlay, Some(Overlay::ResamplePanel)) {
            self.resample_panel_key(&action);
            return;
        }
        let Some(overlay) = &mut self.overlay else { return };
        match (overlay, action) {
            (Overlay::Note(e), Action::Input(c)) => e.input(c),
            (Overlay::Note(e), Action::InputBackspace) => e.backspace(),
            (Overlay::UserFlag(e), Action::FieldNext | Action::FieldPrev) => e.next_field(),
            (Overlay::UserFlag(e), Action::Input(c)) => e.input(c),
            (Overlay::UserFlag(e), Action::InputBackspace) => e.backspace(),
            (Overlay::Resample(r), Action::FieldNext | Action::FieldPrev) => r.next_field(),
            (Overlay::Resample(r), Action::Input(c)) => r.input(c),
            (Overlay::Resample(r), Action::InputBackspace) => r.backspace(),
            (Overlay::Editor(e), Action::FieldNext) => e.next_field(true),
            (Overlay::Editor(e), Action::FieldPrev) => e.next_field(false),
            (Overlay::Editor(e), Action::Input(c)) => e.input(c),
            (Overlay::Editor(e), Action::InputBackspace) => e.backspace(),
            (Overlay::Editor(e), Action::Caret(m)) => e.caret(m),
            (Overlay::Fork(p), Action::FieldNext) => p.move_sel(true),
            (Overlay::Fork(p), Action::FieldPrev) => p.move_sel(false),
            (Overlay::Fork(p), Action::Input(c)) => p.text.push(c),
            (Overlay::Fork(p), Action::InputBackspace) => {
                p.text.pop();
            }
            (Overlay::Export(d), Action::FieldNext) => d.cycle(true),
            (Overlay::Export(d), Action::FieldPrev) => d.cycle(false),
            (Overlay::Export(d), Action::Input(c)) => d.input(c),
            (Overlay::Export(d), Action::InputBackspace) => d.backspace(),
            _ => {}
        }
    }

    fn submit_overlay(&mut self) {
        let result = match self.overlay.take() {
            Some(Overlay::Editor(e)) => {
                self.run_edited(&e).map_err(|err| (Overlay::Editor(e), err))
            }
            Some(Overlay::Fork(p)) => self.run_fork(&p).map_err(|err| (Overlay::Fork(p), err)),
            Some(Overlay::Export(d)) => {
                self.write_export(&d).map_err(|err| (Overlay::Export(d), err))
            }
            Some(Overlay::Note(e)) => self.save_note(&e).map_err(|err| (Overlay::Note(e), err)),
            Some(Overlay::UserFlag(e)) => {
                self.save_flag(&e).map_err(|err| (Overlay::UserFlag(e), err))
            }
            Some(Overlay::Resample(r)) => {
                self.start_resample(&r).map_err(|err| (Overlay::Resample(r), err))
            }
            Some(Overlay::ResamplePanel) | None => Ok(()),
        };
        if let Err((overlay, err)) = result {
            self.message = err.to_string();
            self.overlay = Some(overlay);
        }
    }

    /// The loop's actions on the trace, sessions and compare screens.
    pub(super) fn update_loop(&mut self, action: Action) {
        match action {
            Action::EditRerun => match &self.view {
                Some(v) if self.store.is_some() => {
                    let e = PromptEditor::new(&v.run).with_last(self.jobs.last_endpoint.as_ref());
                    self.overlay = Some(Overlay::Editor(e));
                }
                _ => self.message = "no run to edit".into(),
            },
            Action::Fork => {
                match self.view.as_ref().and_then(|v| Some((v, v.steps.get(self.cursor)?))) {
                    Some((v, s)) => {
                        self.overlay = Some(Overlay::Fork(ForkPicker::new(v.run.id, s)))
                    }
                    None => self.message = "no token to fork at".into(),
                }
            }
            Action::CompareMark => {
                if let Some(v) = &self.view {
                    self.compare_mark = Some(v.run.id);
                    self.message =
                        format!("marked '{}' as side A; press c on another run", v.run.id);
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
            Action::ResamplePanel => self.show_resample_panel(),
            Action::ExportDialog => match &self.view {
                Some(v) if self.store.is_some() => {
                    self.overlay = Some(Overlay::Export(ExportDialog::new(v.run.id)));
                }
                _ => self.message = "no run to export".into(),
            },
            _ => {}
        }
    }

    /// Keys on the compare screen: the cursor moves over run A, B follows the alignment.
    pub(super) fn update_compare(&mut self, action: Action) {
        let page = self.trace_height();
        let Some(c) = &mut self.compare else { return };
        let n = c.len();
        if n == 0 {
            return;
        }
        let to = match action {
            Action::NextToken | Action::Down | Action::LineDown => c.cursor + 1,
            Action::PrevToken | Action::Up | Action::LineUp => c.cursor.saturating_sub(1),
            Action::PageDown => c.cursor + page * 8,
            Action::PageUp => c.cursor.saturating_sub(page * 8),
            Action::Start => 0,
            Action::End => n - 1,
            Action::JumpDivergence => match c.divergence() {
                Some(d) => d,
                None => {
                    self.message = "the runs do not diverge".into();
                    return;
                }
            },
            other => {
                self.update_loop(other);
                return;
            }
        };
        c.cursor = to.min(n - 1);
    }

    fn load_view(&self, id: RunId) -> Result<RunView> {
        let store = self.store.clone().ok_or_else(|| Error::Job("no store".into()))?;
        let run = store.run(id)?.ok_or_else(|| Error::Job(format!("no run '{id}'")))?;
        Ok(RunView::read(&store, run)?.0)
    }

    /// Compares the marked run (or the current run's parent) with the current run.
    fn compare_current(&mut self) {
        let Some(v) = &self.view else {
            self.message = "no run to compare".into();
            return;
        };
        let b = v.run.id;
        let a = match (self.compare_mark, v.run.parent) {
            (Some(m), _) if m != b => m,
            (_, Some((p, _))) => p,
            _ => {
                self.message = "this run has no parent; mark another run with m first".into();
                return;
            }
        };
        let at = v.run.parent.filter(|(p, _)| *p == a).map(|(_, at)| at as usize);
        if let Err(e) = self.open_compare(a, b, at) {
            self.message = format!("could not compare: {e}");
        }
    }

    /// Builds the comparison of `a` and `b` and shows it, the cursor at `at` (else at the
    /// first divergence).
    pub fn open_compare(&mut self, a: RunId, b: RunId, at: Option<usize>) -> Result<()> {
        let (va, vb) = (self.load_view(a)?, self.load_view(b)?);
        let cfg = AnalysisConfig::load().unwrap_or_default();
        let mut c = CompareState::new(va, vb, &cfg);
        c.cursor = at.or(c.divergence()).unwrap_or(0).min(c.len().saturating_sub(1));
        self.compare = Some(c);
        self.screen = Screen::Compare;
        Ok(())
    }

    /// Writes the export the dialog describes.
    fn write_export(&mut self, d: &ExportDialog) -> Result<()> {
        let store = self.store.clone().ok_or_else(|| Error::Job("no store".into()))?;
        let record = crate::store::records::single_run(&store, d.run)?;
        // The Markdown and HTML statistics table, from the run's analysis (as `export`).
        let cfg = AnalysisConfig::load().unwrap_or_default();
        let stats: Vec<(String, String)> =
            match crate::runs::analysis::ensure(&store, d.run, &cfg, false) {
                Ok(a) => crate::analysis::stats::rows(&a.stats)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                Err(_) => Vec::new(),
            };
        let text = crate::export::render(&record, d.kind, &[stats])
            .map_err(|e| Error::Job(e.to_string()))?;
        let path = std::path::PathBuf::from(d.path.trim());
        std::fs::write(&path, text)
            .map_err(|source| Error::Write { path: path.clone(), source })?;
        self.message = format!("wrote '{}'", path.display());
        Ok(())
    }

    /// Starts the edited prompt as a new run of the same session (parent = the edited run),
    /// on the embedded model or a server endpoint.
    fn run_edited(&mut self, e: &PromptEditor) -> Result<()> {
        let (prompt, sampler) = e.build().map_err(Error::Job)?;
        let endpoint = e.endpoint().map_err(Error::Job)?;
        let store = self.store.clone().ok_or_else(|| Error::Job("no store".into()))?;
        // An edit replays no tokens, so a run recorded from a server can be edited too.
        let run =
            store.run(e.parent)?.ok_or_else(|| Error::Job(format!("no run '{}'", e.parent)))?;
        let parent = Parent { run, steps: store.steps(e.parent)?.steps };
        if let Some(ep) = endpoint {
            return self.run_remote(&store, &parent, ep, prompt, sampler);
        }
        let mut child = parent.child(&store, 0, "edit".into(), sampler.clone())?;
        match &prompt {
            crate::engine::generate::Prompt::Chat(m) => child.messages = m.clone(),
            crate::engine::generate::Prompt::Raw(r) => child.rendered_prompt = r.clone(),
        }
        let request = RunRequest {
            prompt,
            sampler,
            top_logprobs: parent.top_logprobs(),
            forced: Vec::new(),
            forced_text: None,
            routing: RoutingDetail::Selected,
            prompt_routing: true,
        };
        self.start_job(&parent, child, request, 0, false)
    }

    /// Records the edited prompt from a server endpoint into a child of `parent`.
    fn run_remote(
        &mut self,
        store: &std::sync::Arc<crate::store::Store>,
        parent: &Parent,
        ep: Endpoint,
        prompt: Prompt,
        sampler: crate::trace::SamplerSpec,
    ) -> Result<()> {
        let Prompt::Chat(messages) = prompt else {
            return Err(Error::Job("a raw prompt cannot be sent to an endpoint".into()));
        };
        // The key variable must be set before a run is made for it.
        drop(ep.options().map_err(|e| Error::Job(e.to_string()))?);
        let mut child = parent.child(store, 0, "edit".into(), sampler.clone())?;
        child.messages = messages.clone();
        let request =
            RemoteRequest { messages, sampler, top_logprobs: parent.top_logprobs().clamp(1, 20) };
        let id = self.jobs.start_remote(store, parent.run.id, child, &ep, request)?;
        self.jobs.last_endpoint = Some(ep.clone());
        self.after_start(id, parent.run.id, 0, false)?;
        self.message = format!("recording '{id}' from '{}'", ep.shown());
        Ok(())
    }

    /// Forks the run at the picker's step with the chosen token or text.
    fn run_fork(&mut self, p: &ForkPicker) -> Result<()> {
        let choice =
            p.choice().ok_or_else(|| Error::Job("pick an alternative or type a token".into()))?;
        let store = self.store.clone().ok_or_else(|| Error::Job("no store".into()))?;
        let parent = Parent::load_id(&store, p.run)?;
        let mut forced = parent.prefix(p.at)?;
        let (forced_text, what) = match &choice {
            ForkChoice::Token(t) => {
                forced.push(t.id);
                (None, visible_token(&t.text))
            }
            ForkChoice::Text(s) => (Some(s.clone()), visible_token(s)),
        };
        let mut sampler = parent.run.sampler.clone();
        sampler.max_tokens = sampler.max_tokens.max(p.at as usize + 1);
        let label = format!("fork@{}", p.at);
        let child = parent.child(&store, p.at, label, sampler.clone())?;
        let request = RunRequest {
            prompt: parent.prompt()?,
            sampler,
            top_logprobs: parent.top_logprobs(),
            forced,
            forced_text,
            routing: RoutingDetail::Selected,
            prompt_routing: true,
        };
        self.start_job(&parent, child, request, p.at, true)?;
        self.message = format!("forking at step {} with {what}", p.at);
        Ok(())
    }

    fn start_job(
        &mut self,
        parent: &Parent,
        child: crate::trace::Run,
        request: RunRequest,
        at: u32,
        fork: bool,
    ) -> Result<()> {
        let store = self.store.clone().ok_or_else(|| Error::Job("no store".into()))?;
        let id = self.jobs.start(&store, parent, child, request)?;
        self.after_start(id, parent.run.id, at, fork)
    }

    /// Follows a run just started from the UI.
    fn after_start(&mut self, id: RunId, parent: RunId, at: u32, fork: bool) -> Result<()> {
        self.started.push(Started { run: id, parent, at, fork });
        self.reload()?;
        self.follow(id);
        self.screen = Screen::Trace;
        self.message = format!("recording '{id}'");
        Ok(())
    }

    /// An event from a run started in the UI (or the model load).
    pub(super) fn on_job(&mut self, ev: JobEvent) {
        let Some(id) = ev.run else {
            match ev.event {
                Event::Loading { done, total } => self.jobs.loading = Some((done, total)),
                Event::Loaded { model, load_ms, .. } => {
                    self.jobs.loading = None;
                    self.message = format!("loaded '{}' in {load_ms} ms", model.name);
                }
                Event::Failed(msg) => {
                    self.jobs.loading = None;
                    self.message = format!("model load failed: {msg}");
                }
                _ => {}
            }
            return;
        };
        let ended = ev.event.is_end();
        self.resample_event(id, &ev.event);
        if self.live == Some(id) {
            self.on_engine(ev.event.clone());
        }
        if !ended {
            return;
        }
        let outcome = self.jobs.ended(id);
        let remote = outcome.as_ref().is_some_and(|(r, _)| r.remote);
        let started = self.started.iter().position(|s| s.run == id).map(|i| self.started.remove(i));
        let stored = matches!(outcome, Some((_, Ok(_))));
        let msg = match (&ev.event, outcome) {
            (_, Some((_, Err(e)))) => format!("run '{id}' could not be stored: {e}"),
            (_, Some((_, Ok(Ended { remote_summary: Some(m) })))) => m,
            (Event::Failed(m), _) => format!("run '{id}' failed: {m}"),
            (Event::Interrupted(m), _) => format!("run '{id}' interrupted: {m}"),
            (Event::Finished { stop, .. }, _) => {
                format!("run '{id}' finished ({}); C compares with its parent", stop.as_str())
            }
            _ => String::new(),
        };
        self.last_started = started;
        let analysis = if stored { self.analyse_ended(id) } else { None };
        self.refresh_keep_view();
        if remote && self.view.as_ref().is_some_and(|v| v.run.id == id) {
            // The server's provenance and routing were stored after the last step.
            let (cursor, top, mark) = (self.cursor, self.top_line, self.mark);
            match self.load_view(id) {
                Ok(v) => {
                    self.set_view(v);
                    self.cursor =
                        cursor.min(self.view.as_ref().map_or(0, |v| v.len().saturating_sub(1)));
                    self.top_line = top;
                    self.mark = mark;
                }
                Err(e) => self.message = e.to_string(),
            }
        }
        self.message = match analysis {
            Some(problem) => format!("{msg} ({problem})"),
            None => msg,
        };
        if self.resample_ended(id, &ev.event, stored) {
            return;
        }
        if let Some(s) = started.filter(|s| s.fork && self.live == Some(id)) {
            if let Err(e) = self.open_compare(s.parent, s.run, Some(s.at as usize)) {
                self.message = format!("could not compare: {e}");
            }
        }
    }

    /// Analyses a run that ended (as `record` does), showing its flags if it is on screen.
    /// Returns what went wrong, if anything.
    fn analyse_ended(&mut self, id: RunId) -> Option<String> {
        let store = self.store.clone()?;
        let cfg = AnalysisConfig::load().unwrap_or_default();
        match crate::runs::analysis::ensure(&store, id, &cfg, true) {
            Ok(a) => {
                if let Some(v) = self.view.as_mut().filter(|v| v.run.id == id) {
                    v.flags = a.flags;
                }
                None
            }
            Err(e) => Some(format!("analysis failed: {e}")),
        }
    }

    /// Re-reads the run list, keeping the current run, cursor and screen.
    pub(super) fn refresh_list(&mut self) {
        self.refresh_keep_view();
    }

    /// Re-reads the run list (a run ended), keeping the current run, cursor and screen.
    fn refresh_keep_view(&mut self) {
        let keep = self.view.as_ref().map(|v| v.run.id);
        let (cursor, top, screen) = (self.cursor, self.top_line, self.screen);
        // A run ending (e.g. a resample's continuation) must not end a visual selection.
        let (mark, flag_sel) = (self.mark, self.flag_sel);
        if let Err(e) = self.reload() {
            self.message = e.to_string();
            return;
        }
        if let Some(id) = keep {
            if let Some(i) = self.visible.iter().position(|&i| self.runs[i].run.id == id) {
                self.select_row(i);
            }
        }
        self.screen = screen;
        self.top_line = top;
        self.cursor = cursor.min(self.view.as_ref().map_or(0, |v| v.len().saturating_sub(1)));
        if keep.is_some() && self.view.as_ref().map(|v| v.run.id) == keep {
            self.mark = mark.map(|m| m.min(self.len().saturating_sub(1)));
            self.flag_sel = flag_sel;
        }
    }

    /// Follows the run recording in this process.
    pub(super) fn on_engine(&mut self, ev: Event) {
        let Some(live) = self.live else { return };
        let Some(v) = self.view.as_mut().filter(|v| v.run.id == live) else { return };
        match ev {
            Event::Loaded { model, .. } => v.run.model = model,
            Event::Started { rendered_prompt, prompt_tokens, .. } => {
                v.run.rendered_prompt = rendered_prompt;
                v.run.prompt_tokens = prompt_tokens;
            }
            Event::Step { step, routing } => {
                if (step.index as usize) < v.len() {
                    // Already read from the store when the run was opened.
                    return;
                }
                let at_end = v.is_empty() || self.cursor + 1 >= v.len();
                let code = step.text.contains("```");
                v.push(step, routing);
                if code {
                    let syntax = self.theme.syntax.clone();
                    v.rehighlight(&syntax);
                }
                if at_end {
                    let end = v.len() - 1;
                    self.move_to(end);
                }
            }
            Event::Finished { stop, timings } => {
                v.run.stop = Some(stop);
                v.run.timings = timings;
                v.run.status = RunStatus::Complete;
                let syntax = self.theme.syntax.clone();
                v.rehighlight(&syntax);
                self.message = format!("run finished: {}", stop.as_str());
            }
            Event::Failed(msg) => {
                v.run.status = RunStatus::Failed(msg.clone());
                self.message = format!("run failed: {msg}");
            }
            Event::Interrupted(msg) => {
                v.run.status = RunStatus::Interrupted;
                self.message = format!("run interrupted: {msg}");
            }
            Event::Loading { .. } | Event::PromptRouting(_) => {}
        }
    }
}
