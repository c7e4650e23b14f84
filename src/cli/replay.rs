//! What `fork` and `resample` share beyond `crate::runs::replay` (the parent run, the model check,
//! child runs): recording several generations with one model load (an `EngineWorker`).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};

use anyhow::{anyhow, bail, Result};
use clap::Args;

use super::progress::LoadProgress;
use crate::engine::generate::RunRequest;
use crate::engine::source::ModelSource;
use crate::engine::worker::EngineWorker;
use crate::engine::LoadOptions;
use crate::record::Event;
pub use crate::runs::replay::Parent;
use crate::store::writer::{self, WriterOutcome};
use crate::store::Store;
use crate::trace::Run;
use crate::trace::SamplerSpec;

/// The model and length options of a replay.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// The model file (default: 'demo'); it must be the one the parent was recorded with.
    #[arg(short, long, env = "THINKDBG_MODEL", value_name = "MODEL")]
    pub model: Option<String>,
    /// Replay on a model other than the parent's.
    #[arg(long)]
    pub any_model: bool,
    /// Most tokens per new run (default: the parent's setting).
    #[arg(short = 'n', long, value_name = "N")]
    pub max_tokens: Option<usize>,
}

impl ReplayArgs {
    /// The model file, when one is named (`serve` makes it absolute).
    pub fn for_each_path(&mut self, f: &mut dyn FnMut(&mut std::path::PathBuf)) {
        super::args::model_path(&mut self.model, f);
    }

    /// The model file, checked against the parent, and the parent's sampler with the new
    /// length, which must reach past step `at`.
    pub fn prepare(
        &self,
        parent: &Parent,
        at: u32,
        offline: bool,
    ) -> Result<(PathBuf, SamplerSpec)> {
        let mut sampler = parent.run.sampler.clone();
        if let Some(n) = self.max_tokens {
            sampler.max_tokens = n;
        }
        if sampler.max_tokens <= at as usize {
            bail!(
                "the replay starts at step {at} but at most {} tokens are generated; raise --max-tokens",
                sampler.max_tokens
            );
        }
        let path = ModelSource::parse(self.model.as_deref())?.resolve(offline)?;
        parent.check_model(&path, self.any_model)?;
        Ok((path, sampler))
    }
}

/// Records each (run, request) in turn with one model load, showing load progress on stderr.
pub fn record_all(
    store: &Arc<Store>,
    path: PathBuf,
    opts: LoadOptions,
    jobs: Vec<(Run, RunRequest)>,
) -> Result<Vec<WriterOutcome>> {
    let progress = LoadProgress::new(&path);
    let (tx, rx) = mpsc::channel::<Event>();
    let worker = EngineWorker::start(path, opts, Box::new(tx))?;
    for event in rx {
        if let Event::Failed(msg) = &event {
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
        super::analysis::after_record(store, run_id);
        outcomes.push(outcome);
    }
    worker.shutdown()?;
    Ok(outcomes)
}
