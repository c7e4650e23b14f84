//! Forking tokens resampled: for each forking token of a run (`analysis::forks`), M child runs
//! that replay the prefix, force one of the token's recorded alternatives in its place
//! (the most likely first, round robin) and sample on; the forks ranked by how often the
//! final answer changed (`resample::Summary`). Shared by `thinkdbg forks --resample` and any
//! front end. Depends on `resample`, `replay`, `analysis`, `store` and `trace`; never on `cli`
//! or `tui`.

use crate::analysis::forks::Fork;
use crate::engine::generate::RunRequest;
use crate::runs::replay::{Error, Parent, Result};
use crate::runs::resample::{self, FinalAnswer, Summary};
use crate::store::Store;
use crate::trace::{Run, RunId, SamplerSpec};

/// The token forced at the start of continuation `i` of `fork`: its alternatives in turn;
/// `None` (sample the step afresh) when it recorded none.
pub fn forced_token(fork: &Fork, i: usize) -> Option<u32> {
    (!fork.alternatives.is_empty()).then(|| fork.alternatives[i % fork.alternatives.len()].id)
}

/// Creates `samples` child runs of `parent` from `fork` (labels `fork@STEP/I`, parent = it at
/// the fork's step, seeds after the sampler's) with the request that records each.
pub fn plan(
    store: &Store,
    parent: &Parent,
    fork: &Fork,
    samples: usize,
    sampler: &SamplerSpec,
) -> Result<Vec<(Run, RunRequest)>> {
    if samples == 0 || samples > resample::MAX_SAMPLES {
        return Err(Error::Invalid(format!(
            "'samples' is {samples}; give 1 to {}",
            resample::MAX_SAMPLES
        )));
    }
    let at = fork.step as u32;
    let prefix = parent.prefix(at)?;
    let mut jobs = Vec::with_capacity(samples);
    for i in 0..samples {
        let mut s = sampler.clone();
        s.seed = sampler.seed.wrapping_add(1 + i as u64);
        let mut forced = prefix.clone();
        forced.extend(forced_token(fork, i));
        let request = RunRequest {
            prompt: parent.prompt()?,
            sampler: s.clone(),
            top_logprobs: parent.top_logprobs(),
            forced,
            forced_text: None,
            routing: crate::trace::RoutingDetail::Selected,
            prompt_routing: true,
        };
        let child = parent.child(store, at, format!("fork@{at}/{}", i + 1), s)?;
        jobs.push((child, request));
    }
    Ok(jobs)
}

/// A forking token and what its continuations did to the answer.
#[derive(Debug, Clone)]
pub struct Ranked {
    pub fork: Fork,
    pub summary: Summary,
    pub runs: Vec<RunId>,
}

/// Summarises each fork's continuations (their final answers read from the store) against the
/// parent's answer and ranks the forks: the largest share of changed answers first (ties:
/// higher entropy first).
pub fn rank(store: &Store, parent: &Parent, done: Vec<(Fork, Vec<RunId>)>) -> Result<Vec<Ranked>> {
    let original = FinalAnswer::of(&parent.steps);
    let mut out = Vec::with_capacity(done.len());
    for (fork, runs) in done {
        let mut answers = Vec::with_capacity(runs.len());
        for id in &runs {
            answers.push((*id, FinalAnswer::of(&store.steps(*id)?.steps)));
        }
        out.push(Ranked { fork, summary: Summary::new(&original, &answers), runs });
    }
    out.sort_by(|a, b| {
        b.summary
            .importance()
            .total_cmp(&a.summary.importance())
            .then(b.fork.entropy.total_cmp(&a.fork.entropy))
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::TopToken;

    #[test]
    fn continuations_take_the_alternatives_in_turn() {
        let mut f = Fork {
            step: 3,
            token_id: 1,
            text: "x".into(),
            entropy: 1.0,
            logprob: -1.0,
            alternatives: vec![
                TopToken { id: 5, text: "a".into(), logprob: -1.5 },
                TopToken { id: 6, text: "b".into(), logprob: -2.5 },
            ],
        };
        let got: Vec<Option<u32>> = (0..5).map(|i| forced_token(&f, i)).collect();
        assert_eq!(got, vec![Some(5), Some(6), Some(5), Some(6), Some(5)]);
        f.alternatives.clear();
        assert_eq!(forced_token(&f, 0), None);
    }
}
