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
use crate::engine::generate::RunRequest;
use crate::engine::lens::{LensLayer, LensState};
use crate::engine::source::ModelSource;
use crate::engine::worker::EngineWorker;
use crate::engine::LoadOptions;
use crate::record::{Event, Recorder, Tee};
use crate::remote::RemoteRequest;
use crate::runs::remote::{self as remote_run, Endpoint, Recorded};
use crate::runs::replay::Parent;
use crate::runs::score::{self, ScoreOptions};
use crate::store::writer::{self, WriterOutcome};
use crate::store::Store;
use crate::trace::{Run, RunId};
use crate::tui::text::shown;

mod dynamics;
mod experiment;
pub use experiment::{ExperimentJob, ExperimentStart};

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
