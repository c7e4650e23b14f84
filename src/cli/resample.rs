//! `thinkdbg resample RUN --at STEP -N 8`: from a point of a recorded run (a token step, or
//! the start of a reasoning step), replay the prefix and sample N continuations with other
//! seeds; each is stored as a child run of the session. The summary says how often the final
//! answer changes: the counterfactual importance of what came after that point.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use clap::Args;

use super::replay::{record_all, Parent, ReplayArgs};
use crate::engine::LoadOptions;
use crate::runs::resample::{self, FinalAnswer, Summary};

#[derive(Debug, Clone, Args)]
pub struct ResampleArgs {
    /// The run to resample.
    pub run: String,
    /// Resample from this token step (the prefix before it is replayed).
    #[arg(
        long,
        value_name = "STEP",
        required_unless_present = "reasoning_step",
        conflicts_with = "reasoning_step"
    )]
    pub at: Option<u32>,
    /// Resample from the start of this reasoning step (0-based, as `thinkdbg show` and the
    /// TUI number them).
    #[arg(long, value_name = "N")]
    pub reasoning_step: Option<usize>,
    /// How many continuations (default: `[resample] samples` in config.toml, 8).
    #[arg(short = 'N', long, value_name = "N")]
    pub samples: Option<usize>,
    /// Sampling temperature (default: the parent's, or 0.7 when the parent was greedy, since
    /// greedy continuations would all be the same).
    #[arg(short, long)]
    pub temperature: Option<f32>,
    #[command(flatten)]
    pub replay: ReplayArgs,
}

fn start_step(args: &ResampleArgs, parent: &Parent) -> Result<u32> {
    if let Some(at) = args.at {
        return Ok(at);
    }
    let n = args.reasoning_step.ok_or_else(|| anyhow!("give --at STEP or --reasoning-step N"))?;
    Ok(resample::reasoning_step_start(parent, n)?)
}

pub fn run(args: &ResampleArgs, store_flag: Option<&Path>, offline: bool) -> Result<ExitCode> {
    let samples = match args.samples {
        Some(n) => n,
        None => resample::configured_samples()?,
    };
    if samples == 0 || samples > resample::MAX_SAMPLES {
        bail!("'--samples' is {samples}; give 1 to {}", resample::MAX_SAMPLES);
    }
    let store = super::store_args::open(store_flag)?;
    let parent = Parent::load(&store, &args.run)?;
    let at = start_step(args, &parent)?;
    let (path, sampler) = args.replay.prepare(&parent, at, offline)?;
    let sampler = resample::sampler(&sampler, args.temperature, at)?;
    let jobs = resample::plan(&store, &parent, at, samples, &sampler)?;
    errln!(
        "resampling run '{}' from step {at}: {} continuations at temperature {}",
        parent.run.id,
        samples,
        sampler.temperature
    );
    let outcomes = record_all(&store, path, LoadOptions::default(), jobs)?;
    let original = FinalAnswer::of(&parent.steps);
    outln!("parent {}: {}", parent.run.id, original.short());
    let mut answers = Vec::with_capacity(outcomes.len());
    for o in &outcomes {
        let answer = FinalAnswer::of(&store.steps(o.run.id)?.steps);
        let differs = original.changed(&answer);
        outln!("{} {} {}", o.run.id, if differs { "changed " } else { "same    " }, answer.short());
        answers.push((o.run.id, answer));
    }
    let summary = Summary::new(&original, &answers);
    for g in &summary.groups {
        let what = if g.changed { "changed" } else { "same" };
        outln!("{:>4}× {} ({what})", g.runs.len(), g.answer);
    }
    outln!(
        "answer changed in {} of {} continuations from step {at} (importance {:.2})",
        summary.changed,
        summary.total,
        summary.importance()
    );
    Ok(ExitCode::SUCCESS)
}
