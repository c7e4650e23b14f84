//! Starting runs from the UI and the other work a submitted dialog asks for, in `App`:
//! re-running an edited prompt (on the embedded model or a server endpoint), forking at a
//! token, starting a resample's continuations, writing an export, and opening a comparison.
//! Every run starts on the job channel (`jobs::Jobs`) and is followed from there. Store reads
//! and job starts happen here, on an action, never while drawing.

use super::{App, Started};
use crate::analysis::AnalysisConfig;
use crate::engine::generate::{Prompt, RunRequest};
use crate::remote::RemoteRequest;
use crate::runs::remote::Endpoint;
use crate::runs::replay::Parent;
use crate::runs::resample::{self, FinalAnswer};
use crate::trace::{RoutingDetail, RunId};
use crate::tui::components::compare::CompareState;
use crate::tui::components::editor::PromptEditor;
use crate::tui::components::experiment_dialog::ExperimentDialog;
use crate::tui::components::export_dialog::ExportDialog;
use crate::tui::components::fork_picker::{ForkChoice, ForkPicker};
use crate::tui::components::import_dialog::ImportDialog;
use crate::tui::components::resample::form::ResampleForm;
use crate::tui::components::resample::{Outcome, ResampleJob};
use crate::tui::components::{Overlay, Screen};
use crate::tui::error::{Error, Result};
use crate::tui::jobs::ExperimentStart;
use crate::tui::run_view::RunView;
use crate::tui::text::shown_token;

impl App {
    /// Enter in a dialog: does what it describes; on failure the dialog stays open and the
    /// message says why.
    pub(super) fn submit_overlay(&mut self) {
        let result = match self.overlay.take() {
            Some(Overlay::Editor(e)) => {
                self.run_edited(&e).map_err(|err| (Overlay::Editor(e), err))
            }
            Some(Overlay::Fork(p)) => self.run_fork(&p).map_err(|err| (Overlay::Fork(p), err)),
            Some(Overlay::Export(mut d)) if !d.overwrite && d.target().exists() => {
                // Ask before overwriting: enter again writes, any edit asks again.
                self.message = format!("'{}' exists; enter overwrites it", d.target().display());
                d.overwrite = true;
                self.overlay = Some(Overlay::Export(d));
                Ok(())
            }
            Some(Overlay::Export(d)) => {
                self.write_export(&d).map_err(|err| (Overlay::Export(d), err))
            }
            Some(Overlay::Import(d)) => {
                self.run_import(&d).map_err(|err| (Overlay::Import(d), err))
            }
            Some(Overlay::Experiment(mut d)) => match self.start_experiment(&d) {
                Ok(()) => Ok(()),
                Err(err) => {
                    d.fail(err.to_string());
                    Err((Overlay::Experiment(d), err))
                }
            },
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

    pub(super) fn load_view(&self, id: RunId) -> Result<RunView> {
        let store = self.store.clone().ok_or_else(|| Error::Job("no store".into()))?;
        let run = store.run(id)?.ok_or_else(|| Error::Job(format!("no run '{id}'")))?;
        Ok(RunView::read(&store, run)?.0)
    }

    /// Compares the marked run (or the current run's parent) with the current run.
    pub(super) fn compare_current(&mut self) {
        let Some(v) = &self.viewer.view else {
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
        c.open_at(at);
        self.compare = Some(c);
        self.screen = Screen::Compare;
        Ok(())
    }

    /// Starts (or resumes) the experiment the dialog names on the job channel; the
    /// experiments screen shows it and refreshes its table as samples end.
    fn start_experiment(&mut self, d: &ExperimentDialog) -> Result<()> {
        let store = self.store.clone().ok_or_else(|| Error::Job("no store".into()))?;
        let (spec, text) = d.read().map_err(Error::Job)?;
        let start = ExperimentStart {
            spec,
            text,
            path: d.full_path().display().to_string(),
            resume: d.resume,
        };
        let (id, todo) = self.jobs.start_experiment(&store, start)?;
        self.experiments.reload(&store);
        self.experiments.show(id);
        self.screen = Screen::Experiments;
        self.message = if todo == 0 {
            format!("experiment e{id}: every sample is complete, nothing to run")
        } else {
            format!("experiment e{id}: {todo} samples to run (X cancels, keeping what completed)")
        };
        Ok(())
    }

    /// Imports the file the import dialog names (all or nothing), then lists its runs and
    /// shows the first.
    fn run_import(&mut self, d: &ImportDialog) -> Result<()> {
        use crate::runs::import;
        let (path, format, opts) = d.request().map_err(Error::Job)?;
        let store = self.store.clone().ok_or_else(|| Error::Job("no store".into()))?;
        let input = import::Input::open(&path).map_err(|e| Error::Job(e.to_string()))?;
        let format = format.unwrap_or_else(|| import::detect(&input));
        let cfg = AnalysisConfig::load().unwrap_or_default();
        let done = import::import(&store, input, format, &opts, &cfg, &mut |_| {})
            .map_err(|e| Error::Job(e.to_string()))?;
        self.refresh_list();
        if let Some(i) = done.imported.runs.first().and_then(|id| self.sessions.row_of(*id)) {
            let e = self.sessions.select(i);
            self.apply(e);
        }
        self.message = format!(
            "imported {} session(s), {} run(s) ({}) from '{}'",
            done.imported.sessions.len(),
            done.imported.runs.len(),
            format.as_str(),
            path.display()
        );
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
        let path = d.target();
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
                (None, shown_token(&t.text))
            }
            ForkChoice::Text(s) => (Some(s.clone()), shown_token(s)),
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

    /// Scores the run's text with the model into a new child run and follows it.
    pub(super) fn start_score(&mut self, id: RunId) -> Result<()> {
        let store = self.store.clone().ok_or_else(|| Error::Job("no store".into()))?;
        let parent = crate::runs::score::load_id(&store, id)?;
        let opts = crate::runs::score::ScoreOptions::default();
        let child = crate::runs::score::child(&store, &parent, &opts)?;
        let cid = self.jobs.start_score(&store, parent, child, opts)?;
        self.after_start(cid, id, 0, false)?;
        self.message = format!("scoring '{id}' with the model into '{cid}'");
        Ok(())
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

    /// Starts the continuations the resample form describes.
    fn start_resample(&mut self, form: &ResampleForm) -> Result<()> {
        let (samples, max_tokens) = form.values().map_err(Error::Job)?;
        let store = self.store.clone().ok_or_else(|| Error::Job("no store".into()))?;
        let parent = Parent::load_id(&store, form.run)?;
        let mut base = parent.run.sampler.clone();
        base.max_tokens = max_tokens;
        let sampler = resample::sampler(&base, None, form.at)?;
        self.jobs.check_model(&parent)?;
        let plan = resample::plan(&store, &parent, form.at, samples, &sampler)?;
        let mut runs = Vec::with_capacity(plan.len());
        for (run, request) in plan {
            runs.push(self.jobs.start(&store, &parent, run, request)?);
        }
        self.resample = Some(ResampleJob {
            parent: parent.run.id,
            reasoning_step: form.reasoning_step,
            at: form.at,
            max_tokens,
            temperature: sampler.temperature,
            tokens: vec![0; runs.len()],
            outcomes: vec![Outcome::Running; runs.len()],
            runs,
            original: FinalAnswer::of(&parent.steps),
            summary: None,
            sel: 0,
        });
        self.overlay = Some(Overlay::ResamplePanel);
        self.refresh_keep_view();
        self.message = format!("resampling {samples} continuations from step {}", form.at);
        Ok(())
    }
}

impl App {
    /// `n` / `r` on the experiments screen: the dialog for a spec, for `r` the spec of the
    /// experiment shown with resume on.
    pub(super) fn open_experiment_dialog(&mut self, resume: bool) {
        if self.store.is_none() {
            self.message = "no store to record into".into();
            return;
        }
        if self.jobs.experiment.is_some() {
            self.message = "an experiment is running: X (or esc) stops it first".into();
            return;
        }
        let cwd = std::env::current_dir().unwrap_or_default();
        let path = if resume {
            self.experiments.current_spec_path().unwrap_or_default().to_string()
        } else {
            String::new()
        };
        self.overlay = Some(Overlay::Experiment(Box::new(
            crate::tui::components::experiment_dialog::ExperimentDialog::new(cwd, path, resume),
        )));
    }
}
