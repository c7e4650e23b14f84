//! The engine's worker thread: loads a model and runs generations on one OS thread, inside
//! candle's thread-pool context, reporting through a `Recorder`. candle is synchronous, so no
//! async runtime is involved; the caller keeps a cancel flag and the join handle.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::error::{Error, Result};
use super::generate::{EngineEvent, Recorder, RunRequest, RunSummary};
use super::{device, Engine, LoadOptions};

/// Loads the model at `path` and runs `request` on a new thread. Every event, including a
/// failure, also goes to `recorder`; the join handle returns the outcome.
pub fn spawn_run(
    path: PathBuf,
    opts: LoadOptions,
    request: RunRequest,
    mut recorder: Box<dyn Recorder>,
    cancel: Arc<AtomicBool>,
) -> Result<JoinHandle<Result<RunSummary>>> {
    let dev = device()?;
    std::thread::Builder::new()
        .name("thinkdbg-engine".into())
        .spawn(move || {
            dev.with_context(move || {
                let outcome = (|| -> Result<RunSummary> {
                    let mut last_pct = u64::MAX;
                    let mut progress = |done: u64, total: u64| {
                        // Report whole percents only: loading has thousands of tensors.
                        let pct = (done * 100).checked_div(total).unwrap_or(100);
                        if pct != last_pct {
                            last_pct = pct;
                            recorder.record(EngineEvent::Loading { done, total });
                        }
                    };
                    let mut engine = Engine::load(&path, &opts, &mut progress)?;
                    recorder.record(EngineEvent::Loaded {
                        model: engine.info.clone(),
                        load_ms: engine.load_ms,
                        warnings: engine.warnings.clone(),
                    });
                    let mut summary = engine.generate(&request, recorder.as_mut(), &cancel)?;
                    summary.timings.load_ms = engine.load_ms;
                    Ok(summary)
                })();
                if let Err(e) = &outcome {
                    recorder.record(EngineEvent::Failed(e.to_string()));
                }
                outcome
            })
        })
        .map_err(|e| Error::Worker(format!("could not start the engine thread: {e}")))
}
