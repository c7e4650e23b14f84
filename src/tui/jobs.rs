//! Runs started from the UI (edit and re-run, fork, resample): one `EngineWorker` that loads
//! the model once, a store writer per run, and a channel that brings every engine event back
//! to the event loop, which turns it into an `Action`. Nothing here blocks on generation.
//! Depends on the engine worker, the store writer and `replay`; never draws.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::error::{Error, Result};
use crate::engine::generate::{EngineEvent, Recorder, RunRequest};
use crate::engine::source::ModelSource;
use crate::engine::worker::EngineWorker;
use crate::engine::LoadOptions;
use crate::replay::Parent;
use crate::store::writer::{self, StoreRecorder, WriterOutcome};
use crate::store::Store;
use crate::trace::{Run, RunId};

/// What the engine said, and about which run (`None`: the model load).
#[derive(Debug, Clone, PartialEq)]
pub struct JobEvent {
    pub run: Option<RunId>,
    pub event: EngineEvent,
}

/// Which model re-runs use: `--model` (default: the demo model) and `--offline`.
#[derive(Debug, Clone, Default)]
pub struct ModelChoice {
    pub spec: Option<String>,
    pub offline: bool,
}

struct UiRecorder {
    run: Option<RunId>,
    tx: Sender<JobEvent>,
}

impl Recorder for UiRecorder {
    fn record(&mut self, event: EngineEvent) {
        let _ = self.tx.send(JobEvent { run: self.run, event });
    }
}

/// Sends every event to the store writer and to the UI.
struct Tee {
    store: StoreRecorder,
    ui: UiRecorder,
}

impl Recorder for Tee {
    fn record(&mut self, event: EngineEvent) {
        self.store.record(event.clone());
        self.ui.record(event);
    }
}

/// One run in flight.
pub struct Running {
    pub run: RunId,
    pub parent: RunId,
    cancel: Arc<AtomicBool>,
    writer: Option<JoinHandle<crate::store::Result<WriterOutcome>>>,
}

/// The engine worker (started on the first run) and the runs it is working on.
pub struct Jobs {
    pub model: ModelChoice,
    path: Option<PathBuf>,
    worker: Option<EngineWorker>,
    tx: Sender<JobEvent>,
    rx: Receiver<JobEvent>,
    pub running: Vec<Running>,
    /// Model loading progress (done, total) while it loads.
    pub loading: Option<(u64, u64)>,
}

impl Jobs {
    pub fn new(model: ModelChoice) -> Jobs {
        let (tx, rx) = mpsc::channel();
        Jobs { model, path: None, worker: None, tx, rx, running: Vec::new(), loading: None }
    }

    /// The next engine event, if one is waiting (never blocks).
    pub fn poll(&self) -> Option<JobEvent> {
        self.rx.try_recv().ok()
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
        let (store_rec, handle) =
            writer::start(store.clone(), run).map_err(|e| Error::Job(e.to_string()))?;
        let cancel = Arc::new(AtomicBool::new(false));
        let tee = Tee { store: store_rec, ui: UiRecorder { run: Some(id), tx: self.tx.clone() } };
        if let Some(w) = &self.worker {
            // The outcome also arrives as `Finished` / `Failed` through the recorder.
            drop(w.submit(request, Box::new(tee), cancel.clone()));
        }
        self.running.push(Running { run: id, parent: parent.run.id, cancel, writer: Some(handle) });
        Ok(id)
    }

    /// Asks every run in flight to stop (the engine checks between tokens).
    pub fn cancel_all(&self) -> usize {
        for r in &self.running {
            r.cancel.store(true, Ordering::Relaxed);
        }
        self.running.len()
    }

    /// A run ended: waits for its writer's final flush and forgets it.
    pub fn ended(&mut self, id: RunId) -> Option<(Running, Result<WriterOutcome>)> {
        let i = self.running.iter().position(|r| r.run == id)?;
        let mut r = self.running.remove(i);
        let outcome = match r.writer.take().map(JoinHandle::join) {
            Some(Ok(res)) => res.map_err(|e| Error::Job(e.to_string())),
            Some(Err(_)) => Err(Error::Job("the store writer panicked".into())),
            None => Err(Error::Job("no writer".into())),
        };
        Some((r, outcome))
    }

    /// Quitting: cancels the runs in flight and waits for their writers, so that every run
    /// is stored as cancelled rather than left recording.
    pub fn shutdown(&mut self) {
        self.cancel_all();
        for mut r in self.running.drain(..) {
            if let Some(w) = r.writer.take() {
                let _ = w.join();
            }
        }
    }

    pub fn busy(&self) -> bool {
        !self.running.is_empty()
    }
}
