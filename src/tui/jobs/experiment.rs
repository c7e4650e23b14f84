//! Experiments started from the experiments screen: on the UI's engine worker or, for an
//! endpoint, on a thread of their own; their progress comes back on the job channel.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::Duration;

use crate::engine::source::ModelSource;
use crate::record::Event;
use crate::runs::experiment::runner::{self, Progress};
use crate::runs::experiment::spec::Source;
use crate::runs::experiment::Spec;
use crate::store::Store;
use crate::trace::RunId;
use crate::tui::error::{Error, Result};
use crate::tui::text::shown;

use super::{JobEvent, Jobs, Msg};

/// An experiment started from the UI (`thinkdbg experiment` from the experiments screen). Its
/// events come through the job channel tagged with the experiment's id as a `RunId` (ids are
/// unique in a store): a non-end event each time a sample ends, an end event when it stops.
pub struct ExperimentJob {
    /// The experiment's id (shown `e{id}`).
    pub id: u64,
    pub name: String,
    /// Samples done and tokens per variant, read while drawing.
    pub progress: Arc<Progress>,
    pub(super) cancel: Arc<AtomicBool>,
    /// Says when the runner returned (its writers joined).
    pub(super) done: Receiver<()>,
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

impl Jobs {
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
}
