//! Replaying a recorded run: reading the parent run, checking that a model file is the one
//! it was recorded with, and creating child runs in its session. Shared by `fork`, `resample`
//! and the terminal UI's edit / fork / resample. Depends on `store`, `trace` and the engine's
//! GGUF reader; must not depend on `cli` or `tui`.

use std::path::Path;

use crate::engine::generate::Prompt;
use crate::engine::gguf::Gguf;
use crate::store::{Store, Target};
use crate::trace::{Run, RunId, RunSource, SamplerSpec, Step};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Engine(#[from] crate::engine::Error),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

fn invalid<T>(msg: String) -> Result<T> {
    Err(Error::Invalid(msg))
}

/// A recorded run and its steps, the starting point of a replay.
#[derive(Debug, Clone)]
pub struct Parent {
    pub run: Run,
    pub steps: Vec<Step>,
}

impl Parent {
    pub fn load(store: &Store, id: &str) -> Result<Parent> {
        let run_id = match store.resolve(id)? {
            Target::Run(r) => r,
            Target::Session(_) => return invalid(format!("'{id}' is a session; give a run id")),
        };
        Parent::load_id(store, run_id)
    }

    pub fn load_id(store: &Store, run_id: RunId) -> Result<Parent> {
        let Some(run) = store.run(run_id)? else { return invalid(format!("no run '{run_id}'")) };
        if matches!(run.source, RunSource::Remote { .. }) {
            return invalid(format!(
                "run '{run_id}' was recorded from a server; only embedded runs can be replayed"
            ));
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
            invalid(format!("run '{}' recorded no prompt", self.run.id))
        }
    }

    /// The parent's tokens before step `at` (checked to exist).
    pub fn prefix(&self, at: u32) -> Result<Vec<u32>> {
        let at = at as usize;
        if at > self.steps.len() {
            return invalid(format!(
                "run '{}' has {} steps; '--at {at}' is past its end",
                self.run.id,
                self.steps.len()
            ));
        }
        Ok(self.steps[..at].iter().map(|s| s.token_id).collect())
    }

    /// How many alternatives the parent kept per step (20 when it recorded none).
    pub fn top_logprobs(&self) -> usize {
        self.steps.iter().map(|s| s.top.len()).max().unwrap_or(20)
    }

    /// The step at `at`, whose alternatives a fork chooses from.
    pub fn step(&self, at: u32) -> Result<&Step> {
        match self.steps.get(at as usize) {
            Some(s) => Ok(s),
            None => invalid(format!(
                "run '{}' has {} steps; there is no step {at}",
                self.run.id,
                self.steps.len()
            )),
        }
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
            return invalid(format!(
                "'{}' is not the model run '{}' was recorded with ('{}', fingerprint {}…); pass \
                 --model with that file, or --any-model to replay on this one",
                path.display(),
                self.run.id,
                self.run.model.name,
                want.chars().take(12).collect::<String>()
            ));
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
        let Some(mut session) = store.session(self.run.session)? else {
            return invalid(format!("run '{}' has no session", self.run.id));
        };
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
