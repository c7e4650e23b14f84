//! Several samples of one request (`Engine::generate_many`): the seeds of an experiment's
//! variant, all sharing their prompt. This version runs them one after the other through
//! `generate`; a batched decode (one forward over N sequences per step) keeps the same
//! signature and the same results. Depends on the rest of `engine` and `record`.

use std::sync::atomic::{AtomicBool, Ordering};

use super::error::{Error, Result};
use super::generate::{RunRequest, RunSummary};
use super::Engine;
use crate::record::{Event, Recorder};

impl Engine {
    /// Runs `req` once per seed (each sample's `sampler.seed` replaced by its seed), all
    /// sharing the prompt; sample i reports to `recorders[i]`. Every sample gives the same
    /// tokens and logprobs as `generate` run alone with that seed.
    pub fn generate_many(
        &mut self,
        req: &RunRequest,
        seeds: &[u64],
        recorders: &mut [&mut dyn Recorder],
        cancel: &AtomicBool,
    ) -> Result<Vec<RunSummary>> {
        if seeds.len() != recorders.len() {
            return Err(Error::Worker(format!(
                "{} seeds but {} recorders for one batch",
                seeds.len(),
                recorders.len()
            )));
        }
        let mut out = Vec::with_capacity(seeds.len());
        for (i, (seed, recorder)) in seeds.iter().zip(recorders.iter_mut()).enumerate() {
            if i > 0 && cancel.load(Ordering::Relaxed) {
                // Samples not started yet end at once, as a run the user stopped.
                let summary = RunSummary {
                    stop: crate::trace::StopReason::User,
                    timings: crate::trace::Timings::default(),
                };
                recorder.record(Event::Finished { stop: summary.stop, timings: summary.timings });
                out.push(summary);
                continue;
            }
            let mut one = req.clone();
            one.sampler.seed = *seed;
            match self.generate(&one, &mut **recorder, cancel) {
                Ok(s) => out.push(s),
                Err(e) => {
                    recorder.record(Event::Failed(e.to_string()));
                    return Err(e);
                }
            }
        }
        Ok(out)
    }
}
