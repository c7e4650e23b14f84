//! What `fork` and `resample` share beyond `crate::replay` (the parent run, the model check,
//! child runs): recording several generations with one model load (an `EngineWorker`).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};

use anyhow::{anyhow, bail, Result};

use super::progress::LoadProgress;
use crate::engine::generate::{EngineEvent, RunRequest};
use crate::engine::worker::EngineWorker;
use crate::engine::LoadOptions;
pub use crate::replay::Parent;
use crate::store::writer::{self, WriterOutcome};
use crate::store::Store;
use crate::trace::Run;

/// Records each (run, request) in turn with one model load, showing load progress on stderr.
pub fn record_all(
    store: &Arc<Store>,
    path: PathBuf,
    opts: LoadOptions,
    jobs: Vec<(Run, RunRequest)>,
) -> Result<Vec<WriterOutcome>> {
    let progress = LoadProgress::new(&path);
    let (tx, rx) = mpsc::channel::<EngineEvent>();
    let worker = EngineWorker::start(path, opts, Box::new(tx))?;
    for event in rx {
        if let EngineEvent::Failed(msg) = &event {
            progress.finish();
            bail!("{msg}");
        }
        progress.show(&event);
    }
    progress.finish();
    let mut outcomes = Vec::new();
    for (run, request) in jobs {
        let run_id = run.id;
        let (recorder, handle) = writer::start(store.clone(), run)?;
        let done = worker.submit(request, Box::new(recorder), Arc::new(AtomicBool::new(false)));
        let result = done.recv().map_err(|_| anyhow!("the engine stopped during run '{run_id}'"));
        let outcome = handle.join().map_err(|_| anyhow!("the store writer panicked"))??;
        result??;
        outcomes.push(outcome);
    }
    worker.shutdown()?;
    Ok(outcomes)
}
