//! `thinkdbg resample RUN --at STEP -N 8`: from a point of a recorded run (a token step, or
//! the start of a reasoning step), replay the prefix and sample N continuations with other
//! seeds; each is stored as a child run of the session. The summary says how often the final
//! answer changes: the counterfactual importance of what came after that point.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use clap::Args;

use super::replay::{record_all, Parent, ReplayArgs};
use crate::analysis::integrity::{disagree, stated_answer, Stated};
use crate::analysis::segment;
use crate::analysis::text::StepText;
use crate::engine::generate::RunRequest;
use crate::engine::LoadOptions;
use crate::sanitize::for_terminal;
use crate::trace::{RoutingDetail, Step};

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
    /// How many continuations.
    #[arg(short = 'N', long, default_value_t = 8, value_name = "N")]
    pub samples: usize,
    /// Sampling temperature (default: the parent's, or 0.7 when the parent was greedy, since
    /// greedy continuations would all be the same).
    #[arg(short, long)]
    pub temperature: Option<f32>,
    #[command(flatten)]
    pub replay: ReplayArgs,
}

/// The final answer of a run: the stated answer (`\boxed{}`, "the answer is ...") of its
/// answer part (or of all its text when it has none), with the answer text itself.
pub struct FinalAnswer {
    pub stated: Option<Stated>,
    pub text: String,
}

impl FinalAnswer {
    pub fn of(steps: &[Step]) -> FinalAnswer {
        let text = StepText::new(steps);
        let seg = segment(steps);
        let bytes = match seg.answer {
            Some(a) => text.bytes_of(a),
            None => 0..text.text.len(),
        };
        let answer = text.text[bytes.clone()].split_whitespace().collect::<Vec<_>>().join(" ");
        FinalAnswer { stated: stated_answer(&text.text, bytes), text: answer }
    }

    /// Whether `other` reached a different final answer: compared as stated answers when both
    /// state one, else as whitespace-normalized answer text.
    pub fn changed(&self, other: &FinalAnswer) -> bool {
        match (&self.stated, &other.stated) {
            (Some(a), Some(b)) => disagree(a, b),
            _ => self.text != other.text,
        }
    }

    pub fn short(&self) -> String {
        let s = self.stated.as_ref().map_or(self.text.as_str(), |s| s.value.as_str());
        let mut out: String = for_terminal(s, false).chars().take(60).collect();
        if s.chars().count() > 60 {
            out.push('…');
        }
        if out.is_empty() {
            out.push_str("(empty)");
        }
        out
    }
}

fn start_step(args: &ResampleArgs, parent: &Parent) -> Result<u32> {
    if let Some(at) = args.at {
        return Ok(at);
    }
    let n = args.reasoning_step.ok_or_else(|| anyhow!("give --at STEP or --reasoning-step N"))?;
    let steps = segment(&parent.steps).steps;
    let step = steps.get(n).ok_or_else(|| {
        anyhow!("run '{}' has {} reasoning steps; there is no step {n}", parent.run.id, steps.len())
    })?;
    Ok(step.span.start as u32)
}

pub fn run(args: &ResampleArgs, store_flag: Option<&Path>, offline: bool) -> Result<ExitCode> {
    if args.samples == 0 || args.samples > 256 {
        bail!("'--samples' is {}; give 1 to 256", args.samples);
    }
    let store = Arc::new(super::store_args::open(store_flag)?);
    let parent = Parent::load(&store, &args.run)?;
    let at = start_step(args, &parent)?;
    let prefix = parent.prefix(at)?;
    let (path, mut sampler) = args.replay.prepare(&parent, at, offline)?;
    sampler.temperature = args.temperature.unwrap_or(if sampler.temperature > 0.0 {
        sampler.temperature
    } else {
        0.7
    });
    crate::engine::sampler::Sampler::new(&sampler)?;
    let mut jobs = Vec::with_capacity(args.samples);
    for i in 0..args.samples {
        let mut s = sampler.clone();
        s.seed = sampler.seed.wrapping_add(1 + i as u64);
        let request = RunRequest {
            prompt: parent.prompt()?,
            sampler: s.clone(),
            top_logprobs: parent.top_logprobs(),
            forced: prefix.clone(),
            forced_text: None,
            routing: RoutingDetail::Selected,
            prompt_routing: true,
        };
        let child = parent.child(&store, at, format!("resample@{at}/{}", i + 1), s)?;
        jobs.push((child, request));
    }
    eprintln!(
        "resampling run '{}' from step {at}: {} continuations at temperature {}",
        parent.run.id, args.samples, sampler.temperature
    );
    let outcomes = record_all(&store, path, LoadOptions::default(), jobs)?;
    let original = FinalAnswer::of(&parent.steps);
    println!("parent {}: {}", parent.run.id, original.short());
    let mut changed = 0;
    for o in &outcomes {
        let steps = store.steps(o.run.id)?.steps;
        let answer = FinalAnswer::of(&steps);
        let differs = original.changed(&answer);
        changed += usize::from(differs);
        println!(
            "{} {} {}",
            o.run.id,
            if differs { "changed " } else { "same    " },
            answer.short()
        );
    }
    println!(
        "answer changed in {changed} of {} continuations from step {at} (importance {:.2})",
        outcomes.len(),
        changed as f64 / outcomes.len().max(1) as f64
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Phase;

    fn steps(text: &[(&str, Phase)]) -> Vec<Step> {
        text.iter()
            .enumerate()
            .map(|(i, (t, p))| Step {
                index: i as u32,
                token_id: 0,
                text: (*t).into(),
                logprob: 0.0,
                entropy: 0.0,
                phase: *p,
                t_us: 0,
                top: vec![],
            })
            .collect()
    }

    #[test]
    fn answers_compare_by_stated_value_then_by_text() {
        use Phase::*;
        let a = FinalAnswer::of(&steps(&[
            ("<think>6*7</think>", Think),
            ("The answer is 42.", Answer),
        ]));
        let b = FinalAnswer::of(&steps(&[
            ("<think>hm</think>", Think),
            ("So the answer is 42", Answer),
        ]));
        let c =
            FinalAnswer::of(&steps(&[("<think>hm</think>", Think), ("The answer is 41.", Answer)]));
        assert!(!a.changed(&b));
        assert!(a.changed(&c));
        let d = FinalAnswer::of(&steps(&[("Paris  is nice", Answer)]));
        let e = FinalAnswer::of(&steps(&[("Paris is\nnice", Answer)]));
        let f = FinalAnswer::of(&steps(&[("Lyon", Answer)]));
        assert!(!d.changed(&e) && d.changed(&f));
        assert_eq!(a.short(), "42");
    }
}
