//! Runs started from the UI (edit and re-run, fork, resample): one `EngineWorker` that loads
//! the model once, a store writer per run, and a channel that brings every engine event back
//! to the event loop, which turns it into an `Action`. A run from a server endpoint records on
//! its own thread through `runs::remote` (as `thinkdbg record --endpoint` does). The logit
//! lens of the inspector's layers view runs on the same engine thread, its reply on the same
//! channel (`start_lens`). Nothing here
//! blocks on generation. Depends on the engine worker, the store writer, `record`, `runs::remote`
//! and `runs::replay`; never draws.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::action::Action;
use super::error::{Error, Result};
use crate::engine::generate::{Prompt, RunRequest};
use crate::engine::lens::{LensLayer, LensState};
use crate::engine::source::ModelSource;
use crate::engine::worker::EngineWorker;
use crate::engine::LoadOptions;
use crate::record::{Event, Recorder, Tee};
use crate::remote::RemoteRequest;
use crate::runs::experiment::runner::{self, Progress};
use crate::runs::experiment::spec::Source;
use crate::runs::experiment::Spec;
use crate::runs::remote::{self as remote_run, Endpoint, Recorded};
use crate::runs::replay::Parent;
use crate::runs::score::{self, ScoreOptions};
use crate::store::writer::{self, WriterOutcome};
use crate::store::Store;
use crate::trace::{Run, RunId};
use crate::tui::text::shown;

/// What the engine said, and about which run (`None`: the model load).
#[derive(Debug, Clone, PartialEq)]
pub struct JobEvent {
    pub run: Option<RunId>,
    pub event: Event,
}

/// Which model re-runs use: `--model` (default: the demo model) and `--offline`.
#[derive(Debug, Clone, Default)]
pub struct ModelChoice {
    pub spec: Option<String>,
    pub offline: bool,
}

/// Where a producer's events reach the UI: the job channel, tagged with the run (`None`: the
/// model load). Every live run comes through it, whoever started the run.
pub struct UiRecorder {
    run: Option<RunId>,
    tx: Sender<Msg>,
}

impl Recorder for UiRecorder {
    fn record(&mut self, event: Event) {
        let _ = self.tx.send(Msg::Event(JobEvent { run: self.run, event }));
    }
}

/// The logit lens at one step of a run, computed on the engine thread (`Jobs::start_lens`).
#[derive(Debug, Clone, PartialEq)]
pub struct LensReply {
    pub run: RunId,
    pub step: usize,
    /// Each block's prediction, or why it could not be computed.
    pub result: std::result::Result<Vec<LensLayer>, String>,
}

/// What comes over the job channel: an engine event, or the lens at a step with the replay
/// state to keep (`None`: it failed) and the engine generation it was computed under.
enum Msg {
    Event(JobEvent),
    Lens(Box<LensReply>, Option<LensState>, u64),
    Probe(ProbeReply),
}

/// The answer-now probe of a run ended (`Jobs::start_probe`): stored beside the run, or why
/// not.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReply {
    pub run: RunId,
    /// What to tell the user.
    pub result: std::result::Result<String, String>,
}

/// What a run's thread hands back when it ends.
enum Finish {
    /// The store writer of an engine run.
    Writer(JoinHandle<crate::store::Result<WriterOutcome>>),
    /// A remote recording: what to tell the user.
    Remote(JoinHandle<std::result::Result<String, String>>),
    /// A score on the engine thread: what to tell the user, once its writer has flushed.
    Score(Receiver<std::result::Result<String, String>>),
}

/// One run in flight.
pub struct Running {
    pub run: RunId,
    /// The run it re-runs (none for a run recorded from the command line).
    pub parent: Option<RunId>,
    /// Recorded from a server endpoint, or a score (its view is re-read when it ends: the
    /// provenance is stored last).
    pub remote: bool,
    cancel: Arc<AtomicBool>,
    finish: Option<Finish>,
}

/// A run ended: for a remote run, a line that says how.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub remote_summary: Option<String>,
}

/// The status-line summary of a remote recording.
fn summary(rec: &Recorded) -> String {
    use crate::remote::Ended as E;
    let id = rec.run.id;
    let n = rec.steps_written;
    let model = shown(&rec.outcome.info.model);
    let mut msg = match &rec.outcome.ended {
        E::Complete(stop) => format!(
            "run '{id}' finished ({}): {n} steps from '{model}'; C compares with its parent",
            stop.as_str()
        ),
        E::Interrupted(crate::remote::Error::Cancelled) => {
            format!("run '{id}' cancelled: kept as interrupted with {n} steps")
        }
        E::Interrupted(e) => format!("run '{id}' interrupted: {e} (kept {n} steps)"),
        E::Failed(e) => format!("run '{id}' failed: {e}"),
    };
    if rec.no_logprobs() {
        msg.push_str(" · the server sent no logprobs");
    }
    shown(&msg).into_owned()
}

/// An experiment started from the UI (`thinkdbg experiment` from the experiments screen). Its
/// events come through the job channel tagged with the experiment's id as a `RunId` (ids are
/// unique in a store): a non-end event each time a sample ends, an end event when it stops.
pub struct ExperimentJob {
    /// The experiment's id (shown `e{id}`).
    pub id: u64,
    pub name: String,
    /// Samples done and tokens per variant, read while drawing.
    pub progress: Arc<Progress>,
    cancel: Arc<AtomicBool>,
    /// Says when the runner returned (its writers joined).
    done: Receiver<()>,
}

impl ExperimentJob {
    /// The status line's words: samples done of all, tokens per second.
    pub fn status(&self) -> String {
        let (done, total) = self.progress.samples();
        let per: Vec<String> = self
            .progress
            .variants
            .iter()
            .map(|v| format!("{} {}/{}", shown(&v.name), v.done.load(Ordering::Relaxed), v.total))
            .collect();
        format!(
            "experiment {} {done}/{total} ({}) {:.1} tok/s",
            runner::shown_id(self.id),
            per.join(", "),
            self.progress.tok_s()
        )
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// Requests in flight at once for an endpoint experiment (`thinkdbg experiment`'s default).
const EXPERIMENT_CONCURRENCY: usize = 8;

/// What the experiment dialog asks to run: the spec, its text and its path.
pub struct ExperimentStart {
    pub spec: Spec,
    pub text: String,
    pub path: String,
    pub resume: bool,
}

/// The engine worker (started on the first run) and the runs it is working on.
pub struct Jobs {
    pub model: ModelChoice,
    path: Option<PathBuf>,
    worker: Option<EngineWorker>,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    pub running: Vec<Running>,
    /// Model loading progress (done, total) while it loads.
    pub loading: Option<(u64, u64)>,
    /// The endpoint the last remote run used (the key variable's name, never the key).
    pub last_endpoint: Option<Endpoint>,
    /// The experiment running, if one is.
    pub experiment: Option<ExperimentJob>,
    /// The lens's replay of a run kept between steps (its prefix is in the engine's KV cache
    /// until other work uses the engine).
    lens: Option<(RunId, LensState)>,
    /// A lens job is on the engine thread.
    lens_busy: bool,
    /// Counts the work other than the lens given to the engine: a lens replay computed under
    /// an older count is stale (the KV cache was reused).
    engine_gen: u64,
    /// The answer-now probe on the engine thread, which `cancel_all` stops.
    probe: Option<(RunId, Arc<AtomicBool>)>,
}

impl Jobs {
    pub fn new(model: ModelChoice) -> Jobs {
        let (tx, rx) = mpsc::channel();
        Jobs {
            model,
            path: None,
            worker: None,
            tx,
            rx,
            running: Vec::new(),
            loading: None,
            last_endpoint: None,
            experiment: None,
            lens: None,
            lens_busy: false,
            engine_gen: 0,
            probe: None,
        }
    }

    /// The next engine event or lens reply, as the action that brings it to the UI, if one
    /// is waiting (never blocks).
    pub fn poll(&mut self) -> Option<Action> {
        match self.rx.try_recv().ok()? {
            Msg::Event(ev) => Some(Action::Job(Box::new(ev))),
            Msg::Lens(reply, state, gen) => {
                self.lens_busy = false;
                self.lens = state.filter(|_| gen == self.engine_gen).map(|st| (reply.run, st));
                Some(Action::Lens(reply))
            }
            Msg::Probe(reply) => {
                self.probe = None;
                Some(Action::ProbeDone(Box::new(reply)))
            }
        }
    }

    /// The run whose answer-now probe is on the engine thread, if any.
    pub fn probing(&self) -> Option<RunId> {
        self.probe.as_ref().map(|(r, _)| *r)
    }

    /// Runs the answer-now probe of `parent` (`runs::probe`) on the engine thread and keeps
    /// its result beside the run; the end comes back as `Action::ProbeDone`.
    pub fn start_probe(
        &mut self,
        store: &Arc<Store>,
        parent: Parent,
        cfg: crate::analysis::config::ProbeConfig,
    ) -> Result<usize> {
        use crate::runs::probe;
        if let Some(r) = self.probing() {
            return Err(Error::Job(format!("the probe of run '{r}' is still running")));
        }
        let path = self.path()?;
        parent.check_model(&path, false).map_err(|e| Error::Job(e.to_string()))?;
        let plan = probe::plan(&parent.steps, &cfg.close_think);
        let request =
            probe::request(&parent, &plan, &cfg).map_err(|e| Error::Job(e.to_string()))?;
        let n = plan.boundaries.len();
        let id = parent.run.id;
        let cancel = Arc::new(AtomicBool::new(false));
        let (store, flag, tx) = (store.clone(), cancel.clone(), self.tx.clone());
        self.engine_gen += 1;
        self.worker()?.submit_call(Box::new(
            move |engine: std::result::Result<&mut crate::engine::Engine, String>| {
                let result = engine.and_then(|engine| {
                    let outcome =
                        engine.probe(&request, &flag, &mut |_, _| {}).map_err(|e| e.to_string())?;
                    let p = probe::summarize(&parent.steps, &plan, &cfg, &outcome);
                    probe::keep(&store, id, &p).map_err(|e| e.to_string())?;
                    let settled = match p.answer_settled_step() {
                        Some(s) => format!("settled at reasoning step {s}"),
                        None => "never settled".to_string(),
                    };
                    Ok(shown(&format!(
                        "probe of run '{id}': {} boundaries, final answer '{}', {settled}",
                        p.points.len(),
                        p.final_answer
                    ))
                    .into_owned())
                });
                let _ = tx.send(Msg::Probe(ProbeReply { run: id, result }));
            },
        ));
        self.probe = Some((id, cancel));
        Ok(n)
    }

    /// Whether a lens job is on the engine thread (one at a time: the replay state travels
    /// with it).
    pub fn lens_busy(&self) -> bool {
        self.lens_busy
    }

    /// Computes the logit lens at `step` of `run` (`prompt` and its generated `tokens`) on the
    /// engine thread, loading the model first if nothing has yet. The replay of the run is
    /// kept, so the next step costs one token's forward pass; the reply comes back on the job
    /// channel as `Action::Lens`.
    pub fn start_lens(
        &mut self,
        run: RunId,
        prompt: Prompt,
        tokens: Vec<u32>,
        step: usize,
        top: usize,
    ) -> Result<()> {
        if self.lens_busy {
            return Err(Error::Job("the lens is already computing".into()));
        }
        let state = self.lens.take().filter(|(r, _)| *r == run).map(|(_, st)| st);
        let (tx, gen) = (self.tx.clone(), self.engine_gen);
        self.worker()?.submit_call(Box::new(
            move |engine: std::result::Result<&mut crate::engine::Engine, String>| {
                let mut state = state;
                let result = engine.and_then(|engine| {
                    let mut st = match state.take() {
                        Some(st) => st,
                        None => engine.lens_begin(&prompt, &tokens).map_err(|e| e.to_string())?,
                    };
                    let layers = engine.lens_at(&mut st, step, top).map_err(|e| e.to_string());
                    if layers.is_ok() {
                        state = Some(st);
                    }
                    layers
                });
                let reply = LensReply { run, step, result };
                let _ = tx.send(Msg::Lens(Box::new(reply), state, gen));
            },
        ));
        self.lens_busy = true;
        Ok(())
    }

    /// The model file, resolved once.
    fn path(&mut self) -> Result<PathBuf> {
        if let Some(p) = &self.path {
            return Ok(p.clone());
        }
        let p = ModelSource::parse(self.model.spec.as_deref())
            .and_then(|s| s.resolve(self.model.offline))
            .map_err(|e| Error::Job(e.to_string()))?;
        self.path = Some(p.clone());
        Ok(p)
    }

    /// Checks that the model re-runs use is the one `parent` was recorded with.
    pub fn check_model(&mut self, parent: &Parent) -> Result<()> {
        let path = self.path()?;
        parent.check_model(&path, false).map_err(|e| Error::Job(e.to_string()))
    }

    /// Starts recording `run` (a child of `parent`, already in the store's session) from
    /// `request`; loads the model first if no run has yet.
    pub fn start(
        &mut self,
        store: &Arc<Store>,
        parent: &Parent,
        run: Run,
        request: RunRequest,
    ) -> Result<RunId> {
        let path = self.path()?;
        parent.check_model(&path, false).map_err(|e| Error::Job(e.to_string()))?;
        if self.worker.is_none() {
            self.loading = Some((0, 1));
            let rec = UiRecorder { run: None, tx: self.tx.clone() };
            let w = EngineWorker::start(path, LoadOptions::default(), Box::new(rec))
                .map_err(|e| Error::Job(e.to_string()))?;
            self.worker = Some(w);
        }
        let id = run.id;
        self.engine_gen += 1;
        let (store_rec, handle) =
            writer::start(store.clone(), run).map_err(|e| Error::Job(e.to_string()))?;
        let cancel = Arc::new(AtomicBool::new(false));
        let tee = Tee::new(store_rec, UiRecorder { run: Some(id), tx: self.tx.clone() });
        if let Some(w) = &self.worker {
            // The outcome also arrives as `Finished` / `Failed` through the recorder.
            drop(w.submit(request, Box::new(tee), cancel.clone()));
        }
        self.running.push(Running {
            run: id,
            parent: Some(parent.run.id),
            remote: false,
            cancel,
            finish: Some(Finish::Writer(handle)),
        });
        Ok(id)
    }

    /// The engine worker, started (the model loading) if no run has started it yet.
    fn worker(&mut self) -> Result<&EngineWorker> {
        if self.worker.is_none() {
            let path = self.path()?;
            self.loading = Some((0, 1));
            let rec = UiRecorder { run: None, tx: self.tx.clone() };
            let w = EngineWorker::start(path, LoadOptions::default(), Box::new(rec))
                .map_err(|e| Error::Job(e.to_string()))?;
            self.worker = Some(w);
        }
        self.worker.as_ref().ok_or_else(|| Error::Job("the engine did not start".into()))
    }

    /// Scores `parent`'s text with the model into `run` (made by `runs::score::child`): any
    /// run, whichever model or server recorded it.
    pub fn start_score(
        &mut self,
        store: &Arc<Store>,
        parent: Parent,
        run: Run,
        opts: ScoreOptions,
    ) -> Result<RunId> {
        let id = run.id;
        self.engine_gen += 1;
        let parent_id = parent.run.id;
        let cancel = Arc::new(AtomicBool::new(false));
        let (done_tx, done_rx) = mpsc::channel();
        let (store, flag, ui) = (store.clone(), cancel.clone(), self.recorder(id));
        self.worker()?.submit_call(Box::new(
            move |engine: std::result::Result<&mut crate::engine::Engine, String>| {
                let result = match engine {
                    Ok(engine) => score::score_child(
                        engine,
                        &store,
                        run,
                        &parent,
                        &opts,
                        Some(Box::new(ui)),
                        &flag,
                    )
                    .map(|s| {
                        format!(
                            "run '{id}' scored {} tokens of '{parent_id}' ({}); C compares",
                            s.steps_written,
                            s.plan.tokens.as_str()
                        )
                    })
                    .map_err(|e| e.to_string()),
                    Err(msg) => {
                        let mut ui = ui;
                        ui.record(Event::Failed(msg.clone()));
                        Err(msg)
                    }
                };
                let _ = done_tx.send(result);
            },
        ));
        self.running.push(Running {
            run: id,
            parent: Some(parent_id),
            remote: true,
            cancel,
            finish: Some(Finish::Score(done_rx)),
        });
        Ok(id)
    }

    /// Starts recording `run` (a child of `parent`, already in the store's session) from the
    /// server `endpoint` on its own thread. The API key is read from the environment now and
    /// lives only in that thread.
    pub fn start_remote(
        &mut self,
        store: &Arc<Store>,
        parent: RunId,
        mut run: Run,
        endpoint: &Endpoint,
        request: RemoteRequest,
    ) -> Result<RunId> {
        let opts = endpoint.options().map_err(|e| Error::Job(e.to_string()))?;
        endpoint.prepare(&mut run);
        // In the store before the UI lists the session's runs (the writer starts on the thread).
        store.put_run(&run).map_err(|e| Error::Job(e.to_string()))?;
        let id = run.id;
        let cancel = Arc::new(AtomicBool::new(false));
        let (store, flag, tx) = (store.clone(), cancel.clone(), self.tx.clone());
        let ui = UiRecorder { run: Some(id), tx: self.tx.clone() };
        let handle = std::thread::Builder::new()
            .name("thinkdbg-remote".into())
            .spawn(move || {
                // The end of the run reaches the UI after the provenance is stored.
                match remote_run::record(&store, run, &opts, &request, Some(Box::new(ui)), &flag) {
                    Ok(rec) => Ok(summary(&rec)),
                    Err(e) => {
                        let _ = tx.send(Msg::Event(JobEvent {
                            run: Some(id),
                            event: Event::Failed(e.to_string()),
                        }));
                        Err(e.to_string())
                    }
                }
            })
            .map_err(|e| Error::Job(format!("could not start the recording thread: {e}")))?;
        self.running.push(Running {
            run: id,
            parent: Some(parent),
            remote: true,
            cancel,
            finish: Some(Finish::Remote(handle)),
        });
        Ok(id)
    }

    /// Starts (or resumes) an experiment: a spec naming a model runs on this UI's engine
    /// worker (the model must be the one the UI runs), one naming an endpoint on its own
    /// thread, as `thinkdbg experiment` runs them. Returns the experiment's id and the number
    /// of samples it has to run.
    pub fn start_experiment(
        &mut self,
        store: &Arc<Store>,
        start: ExperimentStart,
    ) -> Result<(u64, usize)> {
        if self.experiment.is_some() {
            return Err(Error::Job("an experiment is already running (X cancels it)".into()));
        }
        let ExperimentStart { spec, text, path, resume } = start;
        let job = |e: crate::runs::experiment::Error| Error::Job(e.to_string());
        let ep = runner::endpoint(&spec);
        match (&spec.source, &ep) {
            (Source::Model(m), _) => {
                let theirs = ModelSource::parse(Some(m.as_str()))
                    .and_then(|s| s.resolve(self.model.offline))
                    .map_err(|e| Error::Job(format!("the spec's 'model' '{m}': {e}")))?;
                let ours = self.path()?;
                let same = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
                if same(&theirs) != same(&ours) {
                    return Err(Error::Job(format!(
                        "the spec's 'model' '{}' is not the model this UI runs ('{}'): start \
                         'thinkdbg tui --model {}' or run 'thinkdbg experiment {path}'",
                        theirs.display(),
                        ours.display(),
                        theirs.display()
                    )));
                }
                // The engine worker starts (the model loading) before anything is stored.
                self.worker()?;
            }
            (Source::Endpoint { .. }, Some(e)) => {
                e.check().map_err(|e| Error::Job(e.to_string()))?;
            }
            (Source::Endpoint { .. }, None) => {
                return Err(Error::Job("the spec names no 'endpoint'".into()));
            }
        }
        let (mut record, todo) =
            runner::prepare(store, &spec, &text, &path, resume).map_err(job)?;
        // The samples reuse the engine's KV cache: a kept lens replay is stale after them.
        self.engine_gen += 1;
        let id = record.id;
        let tx = self.tx.clone();
        let progress = Arc::new(Progress::new(&spec, &record, store).with_notify(move |_, _| {
            let _ = tx.send(Msg::Event(JobEvent {
                run: Some(RunId(id)),
                event: Event::Loading { done: 0, total: 0 },
            }));
        }));
        let cancel = Arc::new(AtomicBool::new(false));
        let (done_tx, done_rx) = mpsc::channel();
        let n = todo.len();
        let (store2, flag, prog, tx) =
            (store.clone(), cancel.clone(), progress.clone(), self.tx.clone());
        let cfg = crate::analysis::AnalysisConfig::load().unwrap_or_default();
        // The end reaches the UI after every sample's writer has flushed.
        let end = move |result: std::result::Result<(), String>, cancelled: bool| {
            let event = match result {
                Ok(()) => Event::Finished {
                    stop: if cancelled {
                        crate::trace::StopReason::User
                    } else {
                        crate::trace::StopReason::Eos
                    },
                    timings: crate::trace::Timings::default(),
                },
                Err(e) => Event::Failed(e),
            };
            let _ = tx.send(Msg::Event(JobEvent { run: Some(RunId(id)), event }));
            let _ = done_tx.send(());
        };
        match ep {
            None => {
                let spec2 = spec.clone();
                self.worker()?.submit_call(Box::new(
                    move |engine: std::result::Result<&mut crate::engine::Engine, String>| {
                        let result = engine.and_then(|engine| {
                            runner::run_embedded(
                                &store2,
                                &spec2,
                                &mut record,
                                &todo,
                                engine,
                                &prog,
                                &flag,
                                &cfg,
                            )
                            .map_err(|e| e.to_string())
                        });
                        end(result, flag.load(Ordering::Relaxed));
                    },
                ));
            }
            Some(_) => {
                let spec2 = spec.clone();
                std::thread::Builder::new()
                    .name("thinkdbg-experiment".into())
                    .spawn(move || {
                        let result = runner::run_remote(
                            &store2,
                            &spec2,
                            &mut record,
                            &todo,
                            EXPERIMENT_CONCURRENCY,
                            &prog,
                            &flag,
                            &cfg,
                        )
                        .map_err(|e| e.to_string());
                        end(result, flag.load(Ordering::Relaxed));
                    })
                    .map_err(|e| {
                        Error::Job(format!("could not start the experiment thread: {e}"))
                    })?;
            }
        }
        self.experiment =
            Some(ExperimentJob { id, name: spec.name, progress, cancel, done: done_rx });
        Ok((id, n))
    }

    /// The experiment `id` ended (its end event arrived): forgets it.
    pub fn experiment_ended(&mut self, id: u64) -> Option<ExperimentJob> {
        if self.experiment.as_ref().is_some_and(|e| e.id == id) {
            let e = self.experiment.take()?;
            let _ = e.done.recv_timeout(Duration::from_secs(3));
            Some(e)
        } else {
            None
        }
    }

    /// A recorder whose events reach the UI about `run`, as those of the runs started here do.
    pub fn recorder(&self, run: RunId) -> UiRecorder {
        UiRecorder { run: Some(run), tx: self.tx.clone() }
    }

    /// Follows a run started elsewhere in this process (`thinkdbg record --tui`) whose events
    /// come through `recorder(run)`: its store writer is waited for when it ends, and
    /// cancelling or quitting stops it through `cancel`, as for a run started here.
    pub fn adopt(
        &mut self,
        run: RunId,
        cancel: Arc<AtomicBool>,
        writer: JoinHandle<crate::store::Result<WriterOutcome>>,
    ) {
        self.running.push(Running {
            run,
            parent: None,
            remote: false,
            cancel,
            finish: Some(Finish::Writer(writer)),
        });
    }

    /// Asks every run in flight to stop (the engine checks between tokens).
    pub fn cancel_all(&self) -> usize {
        for r in &self.running {
            r.cancel.store(true, Ordering::Relaxed);
        }
        if let Some(e) = &self.experiment {
            e.cancel.store(true, Ordering::Relaxed);
        }
        if let Some((_, c)) = &self.probe {
            c.store(true, Ordering::Relaxed);
        }
        self.running.len()
            + usize::from(self.experiment.is_some())
            + usize::from(self.probe.is_some())
    }

    /// A run ended: waits for its writer's final flush (a remote run's thread, which sent
    /// the end last) and forgets it.
    pub fn ended(&mut self, id: RunId) -> Option<(Running, Result<Ended>)> {
        let i = self.running.iter().position(|r| r.run == id)?;
        let mut r = self.running.remove(i);
        let outcome = match r.finish.take() {
            Some(Finish::Writer(h)) => match h.join() {
                Ok(res) => res
                    .map(|_| Ended { remote_summary: None })
                    .map_err(|e| Error::Job(e.to_string())),
                Err(_) => Err(Error::Job("the store writer panicked".into())),
            },
            Some(Finish::Remote(h)) => match h.join() {
                Ok(res) => res.map(|m| Ended { remote_summary: Some(m) }).map_err(Error::Job),
                Err(_) => Err(Error::Job("the recording thread panicked".into())),
            },
            Some(Finish::Score(rx)) => match rx.recv() {
                Ok(res) => res.map(|m| Ended { remote_summary: Some(m) }).map_err(Error::Job),
                Err(_) => Err(Error::Job("the engine stopped while scoring".into())),
            },
            None => Err(Error::Job("no writer".into())),
        };
        Some((r, outcome))
    }

    /// Quitting: cancels the runs in flight and waits for their writers, so that every run
    /// is stored as cancelled rather than left recording. A remote recording stops at the
    /// server's next byte; one that stays silent for 3 s is left behind (the store marks it
    /// interrupted when it is next opened).
    pub fn shutdown(&mut self) {
        self.cancel_all();
        if let Some(e) = self.experiment.take() {
            // The engine checks between tokens; the samples in flight are kept as cancelled.
            let _ = e.done.recv_timeout(Duration::from_secs(10));
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        for mut r in self.running.drain(..) {
            match r.finish.take() {
                Some(Finish::Writer(w)) => {
                    let _ = w.join();
                }
                Some(Finish::Score(rx)) => {
                    let _ = rx.recv_timeout(Duration::from_secs(3));
                }
                Some(Finish::Remote(h)) => {
                    while !h.is_finished() && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    if h.is_finished() {
                        let _ = h.join();
                    }
                }
                None => {}
            }
        }
    }

    pub fn busy(&self) -> bool {
        !self.running.is_empty() || self.experiment.is_some()
    }
}
