//! The engine's worker thread: loads a model once and runs generations on one OS thread, inside
//! candle's thread-pool context, reporting through a `Recorder`. candle is synchronous, so no
//! async runtime is involved: jobs arrive over a channel, each with its own recorder and cancel
//! flag, and each returns its outcome on its own channel. A UI keeps one worker while the user
//! edits, re-runs, forks and resamples, so the model is loaded once.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::error::{Error, Result};
use super::generate::{RunRequest, RunSummary};
use super::{device, Engine, LoadOptions};
use crate::record::{Event, Recorder};

struct Job {
    request: RunRequest,
    recorder: Box<dyn Recorder>,
    cancel: Arc<AtomicBool>,
    done: Sender<Result<RunSummary>>,
}

/// Work run on the engine thread with the loaded engine (`Err` with the load error's message
/// when loading failed): what is neither a plain generation nor worth its own job type, such
/// as scoring a recorded run.
pub type Call = Box<dyn FnOnce(std::result::Result<&mut Engine, String>) + Send>;

enum Work {
    Run(Job),
    Call(Call),
}

/// A model loaded on its own thread, running one job at a time in submission order.
pub struct EngineWorker {
    jobs: Option<Sender<Work>>,
    thread: Option<JoinHandle<()>>,
}

fn load(path: &std::path::Path, opts: &LoadOptions, recorder: &mut dyn Recorder) -> Result<Engine> {
    let mut last_pct = u64::MAX;
    let mut progress = |done: u64, total: u64| {
        // Report whole percents only: loading has thousands of tensors.
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        if pct != last_pct {
            last_pct = pct;
            recorder.record(Event::Loading { done, total });
        }
    };
    Engine::load(path, opts, &mut progress)
}

fn loaded(engine: &Engine) -> Event {
    Event::Loaded {
        model: engine.info.clone(),
        load_ms: engine.load_ms,
        warnings: engine.warnings.clone(),
    }
}

/// Runs one job on a loaded engine: every event, including a failure, goes to the job's
/// recorder, which first hears `Loaded` so that a run learns which model made it.
fn run_job(engine: &mut Engine, job: Job) {
    let Job { request, mut recorder, cancel, done } = job;
    recorder.record(loaded(engine));
    let outcome = engine.generate(&request, recorder.as_mut(), &cancel).map(|mut s| {
        s.timings.load_ms = engine.load_ms;
        s
    });
    if let Err(e) = &outcome {
        recorder.record(Event::Failed(e.to_string()));
    }
    // The submitter may have stopped waiting; its recorder already has everything.
    let _ = done.send(outcome);
}

impl EngineWorker {
    /// Starts the thread and loads the model there. Loading progress, `Loaded` and a load
    /// failure go to `load_recorder`; jobs submitted before the load ends wait for it, and fail
    /// with the load error if it fails.
    pub fn start(
        path: PathBuf,
        opts: LoadOptions,
        mut load_recorder: Box<dyn Recorder>,
    ) -> Result<EngineWorker> {
        let dev = device()?;
        let (tx, rx) = mpsc::channel::<Work>();
        let thread = std::thread::Builder::new()
            .name("thinkdbg-engine".into())
            .spawn(move || {
                dev.with_context(move || match load(&path, &opts, load_recorder.as_mut()) {
                    Ok(mut engine) => {
                        load_recorder.record(loaded(&engine));
                        drop(load_recorder);
                        for work in rx {
                            match work {
                                Work::Run(job) => run_job(&mut engine, job),
                                Work::Call(call) => call(Ok(&mut engine)),
                            }
                        }
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        load_recorder.record(Event::Failed(msg.clone()));
                        for work in rx {
                            match work {
                                Work::Run(mut job) => {
                                    job.recorder.record(Event::Failed(msg.clone()));
                                    let _ = job.done.send(Err(Error::Worker(msg.clone())));
                                }
                                Work::Call(call) => call(Err(msg.clone())),
                            }
                        }
                    }
                })
            })
            .map_err(|e| Error::Worker(format!("could not start the engine thread: {e}")))?;
        Ok(EngineWorker { jobs: Some(tx), thread: Some(thread) })
    }

    /// Queues a generation. The returned channel yields its outcome when it ends.
    pub fn submit(
        &self,
        request: RunRequest,
        recorder: Box<dyn Recorder>,
        cancel: Arc<AtomicBool>,
    ) -> Receiver<Result<RunSummary>> {
        let (done, outcome) = mpsc::channel();
        let job = Job { request, recorder, cancel, done };
        match &self.jobs {
            Some(jobs) => {
                if let Err(mpsc::SendError(Work::Run(mut job))) = jobs.send(Work::Run(job)) {
                    let msg = "the engine thread has stopped".to_string();
                    job.recorder.record(Event::Failed(msg.clone()));
                    let _ = job.done.send(Err(Error::Worker(msg)));
                }
            }
            None => {
                let _ = job.done.send(Err(Error::Worker("the engine worker was shut down".into())));
            }
        }
        outcome
    }

    /// Queues `call`, run on the engine thread after the jobs before it.
    pub fn submit_call(&self, call: Call) {
        match &self.jobs {
            Some(jobs) => {
                if let Err(mpsc::SendError(Work::Call(call))) = jobs.send(Work::Call(call)) {
                    call(Err("the engine thread has stopped".into()));
                }
            }
            None => call(Err("the engine worker was shut down".into())),
        }
    }

    /// Lets queued jobs finish, then ends the thread.
    pub fn shutdown(mut self) -> Result<()> {
        self.jobs.take();
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| Error::Worker("the engine thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for EngineWorker {
    fn drop(&mut self) {
        // Closing the job channel ends the thread after its current job; it is not joined here
        // so that dropping a worker never blocks a UI.
        self.jobs.take();
    }
}

/// Loads the model at `path` and runs `request` on a new thread. Every event, including a
/// failure, also goes to `recorder`; the join handle returns the outcome.
pub fn spawn_run(
    path: PathBuf,
    opts: LoadOptions,
    request: RunRequest,
    recorder: Box<dyn Recorder>,
    cancel: Arc<AtomicBool>,
) -> Result<JoinHandle<Result<RunSummary>>> {
    let dev = device()?;
    std::thread::Builder::new()
        .name("thinkdbg-engine".into())
        .spawn(move || {
            dev.with_context(move || {
                let mut recorder = recorder;
                match load(&path, &opts, recorder.as_mut()) {
                    Ok(mut engine) => {
                        let (done, outcome) = mpsc::channel();
                        run_job(&mut engine, Job { request, recorder, cancel, done });
                        outcome.recv().unwrap_or_else(|_| {
                            Err(Error::Worker("the run ended without an outcome".into()))
                        })
                    }
                    Err(e) => {
                        recorder.record(Event::Failed(e.to_string()));
                        Err(e)
                    }
                }
            })
        })
        .map_err(|e| Error::Worker(format!("could not start the engine thread: {e}")))
}
