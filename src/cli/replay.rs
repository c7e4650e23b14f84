//! What `fork` and `resample` share: reading the parent run, checking that the model file is
//! the one the parent was recorded with, creating child runs in the parent's session, and
//! recording several generations with one model load (an `EngineWorker`).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};

use anyhow::{anyhow, bail, Context, Result};

use super::progress::LoadProgress;
use crate::engine::generate::{EngineEvent, Prompt, RunRequest};
use crate::engine::gguf::Gguf;
use crate::engine::worker::EngineWorker;
use crate::engine::LoadOptions;
use crate::store::writer::{self, WriterOutcome};
use crate::store::{Store, Target};
use crate::trace::{Run, RunId, RunSource, SamplerSpec, Step};

/// A recorded run and its steps, the starting point of a replay.
pub struct Parent {
    pub run: Run,
    pub steps: Vec<Step>,
}

impl Parent {
    pub fn load(store: &Store, id: &str) -> Result<Parent> {
        let run_id = match store.resolve(id)? {
            Target::Run(r) => r,
            Target::Session(_) => bail!("'{id}' is a session; give a run id"),
        };
        let run = store.run(run_id)?.ok_or_else(|| anyhow!("no run '{id}'"))?;
        if matches!(run.source, RunSource::Remote { .. }) {
            bail!("run '{id}' was recorded from a server; only embedded runs can be replayed");
        }
        let read = store.steps(run_id)?;
        if let Some(e) = read.errors.into_iter().next() {
            return Err(e.into());
        }
        Ok(Parent { run, steps: read.steps })
    }

    /// The prompt the parent was generated from.
    pub fn prompt(&self) -> Result<Prompt> {
        if !self.run.messages.is_empty() {
            Ok(Prompt::Chat(self.run.messages.clone()))
        } else if !self.run.rendered_prompt.is_empty() {
            Ok(Prompt::Raw(self.run.rendered_prompt.clone()))
        } else {
            bail!("run '{}' recorded no prompt", self.run.id)
        }
    }

    /// The parent's tokens before step `at` (checked to exist).
    pub fn prefix(&self, at: u32) -> Result<Vec<u32>> {
        let at = at as usize;
        if at > self.steps.len() {
            bail!(
                "run '{}' has {} steps; '--at {at}' is past its end",
                self.run.id,
                self.steps.len()
            );
        }
        Ok(self.steps[..at].iter().map(|s| s.token_id).collect())
    }

    /// How many alternatives the parent kept per step (20 when it recorded none).
    pub fn top_logprobs(&self) -> usize {
        self.steps.iter().map(|s| s.top.len()).max().unwrap_or(20)
    }

    /// The step at `at`, whose alternatives a fork chooses from.
    pub fn step(&self, at: u32) -> Result<&Step> {
        self.steps.get(at as usize).ok_or_else(|| {
            anyhow!("run '{}' has {} steps; there is no step {at}", self.run.id, self.steps.len())
        })
    }

    /// Refuses a model file other than the one the parent was recorded with (the replayed
    /// prefix would not be the parent's), unless `any_model`.
    pub fn check_model(&self, path: &Path, any_model: bool) -> Result<()> {
        let want = &self.run.model.fingerprint;
        if any_model || want.is_empty() {
            return Ok(());
        }
        let got = Gguf::open(path)?.fingerprint()?;
        if &got != want {
            bail!(
                "'{}' is not the model run '{}' was recorded with ('{}', fingerprint {}…); pass \
                 --model with that file, or --any-model to replay on this one",
                path.display(),
                self.run.id,
                self.run.model.name,
                want.chars().take(12).collect::<String>()
            );
        }
        Ok(())
    }

    /// A new run in the parent's session that forks from it at `at`.
    pub fn child(
        &self,
        store: &Store,
        at: u32,
        label: String,
        sampler: SamplerSpec,
    ) -> Result<Run> {
        let mut session = store
            .session(self.run.session)?
            .with_context(|| format!("run '{}' has no session", self.run.id))?;
        let mut run = Run::new_recording(RunId(store.new_id()?), session.id, sampler);
        run.parent = Some((self.run.id, at));
        run.label = Some(label);
        run.messages = self.run.messages.clone();
        if run.messages.is_empty() {
            run.rendered_prompt = self.run.rendered_prompt.clone();
        }
        session.runs.push(run.id);
        store.put_session(&session)?;
        Ok(run)
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
