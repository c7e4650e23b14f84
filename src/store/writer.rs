//! The store writer: a thread that takes a producer's events (`record::Event`) and writes them into the store
//! without ever making generation wait for the disk.
//!
//! Steps are batched (`apply_batch` every ~50 ms or 64 steps), the database is flushed at
//! checkpoints (about once a second) and at the end, and only after that final flush is the
//! run marked `Complete`. The writer is a `record::Recorder` (a channel send) for any producer.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::Store;
use crate::record::{Event, Recorder};
use crate::trace::{Routing, Run, RunStatus, Step, StopReason};

const BATCH_STEPS: usize = 64;
const BATCH_EVERY: Duration = Duration::from_millis(50);
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// The engine side of the writer: sends events to the writer thread.
pub struct StoreRecorder {
    tx: mpsc::Sender<Event>,
}

impl Recorder for StoreRecorder {
    fn record(&mut self, event: Event) {
        // If the writer died its error comes back through its join handle.
        let _ = self.tx.send(event);
    }
}

/// What the writer did.
#[derive(Debug, Clone, PartialEq)]
pub struct WriterOutcome {
    pub run: Run,
    pub steps_written: usize,
}

/// Starts a writer for `run` (already created by the caller with status `Recording`).
pub fn start(
    store: Arc<Store>,
    run: Run,
) -> Result<(StoreRecorder, JoinHandle<Result<WriterOutcome>>)> {
    store.ensure_space(0)?;
    store.put_run(&run)?;
    store.flush()?;
    let (tx, rx) = mpsc::channel::<Event>();
    let handle = std::thread::Builder::new()
        .name("thinkdbg-store".into())
        .spawn(move || write_loop(&store, run, &rx))
        .map_err(|e| Error::Writer(format!("could not start the writer thread: {e}")))?;
    Ok((StoreRecorder { tx }, handle))
}

fn write_loop(store: &Store, mut run: Run, rx: &mpsc::Receiver<Event>) -> Result<WriterOutcome> {
    let mut pending: Vec<(Step, Option<Routing>)> = Vec::new();
    let mut written = 0usize;
    let mut last_batch = Instant::now();
    let mut last_checkpoint = Instant::now();
    let write = |pending: &mut Vec<(Step, Option<Routing>)>, written: &mut usize| -> Result<()> {
        if !pending.is_empty() {
            store.put_steps(run.id, pending)?;
            *written += pending.len();
            pending.clear();
        }
        Ok(())
    };
    let finished = loop {
        let event = match rx.recv_timeout(BATCH_EVERY) {
            Ok(ev) => Some(ev),
            Err(RecvTimeoutError::Timeout) => None,
            // The engine went away without saying how it ended.
            Err(RecvTimeoutError::Disconnected) => break false,
        };
        match event {
            Some(Event::Loaded { model, load_ms, .. }) => {
                run.model = model;
                run.timings.load_ms = load_ms;
                store.put_run(&run)?;
            }
            Some(Event::Started { rendered_prompt, prompt_tokens, .. }) => {
                run.rendered_prompt = rendered_prompt;
                run.timings.prompt_tokens = prompt_tokens.len() as u32;
                run.prompt_tokens = prompt_tokens;
                store.put_run(&run)?;
            }
            Some(Event::PromptRouting(routing)) => store.put_prompt_routing(run.id, &routing)?,
            Some(Event::Step { step, routing }) => pending.push((step, routing)),
            Some(Event::Finished { stop, timings }) => {
                run.stop = Some(stop);
                run.timings = crate::trace::Timings { load_ms: run.timings.load_ms, ..timings };
                break true;
            }
            Some(Event::Failed(msg)) => {
                run.status = RunStatus::Failed(msg);
                break true;
            }
            Some(Event::Interrupted(why)) => {
                tracing::info!(run = %run.id, "interrupted: {why}");
                run.status = RunStatus::Interrupted;
                break true;
            }
            Some(Event::Loading { .. }) | None => {}
        }
        if pending.len() >= BATCH_STEPS
            || (!pending.is_empty() && last_batch.elapsed() >= BATCH_EVERY)
        {
            write(&mut pending, &mut written)?;
            last_batch = Instant::now();
        }
        if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            write(&mut pending, &mut written)?;
            if let Err(e) = store.ensure_space(0) {
                // sled does not survive a full disk: stop while there is room to say so.
                run.status = RunStatus::Interrupted;
                run.timings.generated_tokens = written as u32;
                store.put_run(&run)?;
                store.flush()?;
                return Err(e);
            }
            store.flush()?;
            // The kill test reads these lines: every step counted here is durable.
            tracing::info!(run = %run.id, steps = written, "checkpoint flushed");
            last_checkpoint = Instant::now();
        }
    };
    write(&mut pending, &mut written)?;
    store.flush()?;
    if run.status == RunStatus::Recording {
        run.status = match (finished, run.stop) {
            (true, Some(StopReason::User)) => RunStatus::Cancelled,
            (true, _) => RunStatus::Complete,
            (false, _) => RunStatus::Interrupted,
        };
    }
    if matches!(run.status, RunStatus::Interrupted | RunStatus::Cancelled) {
        run.timings.generated_tokens = written as u32;
    }
    // Complete only now that every step is on disk.
    store.put_run(&run)?;
    store.flush()?;
    Ok(WriterOutcome { run, steps_written: written })
}
