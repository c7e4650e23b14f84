//! `thinkdbg fork RUN --at STEP`: re-run a recorded run's prefix, force another token at
//! STEP (an alternative from its top-k, a token id, or typed text), continue with the same
//! sampler and seed, and record the result as a child run of the same session.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

use super::replay::{record_all, Parent, ReplayArgs};
use crate::engine::generate::RunRequest;
use crate::engine::LoadOptions;
use crate::sanitize::visible_token;

#[derive(Debug, Clone, Args)]
pub struct ForkArgs {
    /// The run to fork from.
    pub run: String,
    /// The step at which the fork takes another token (0 is the first generated token).
    #[arg(long, value_name = "STEP")]
    pub at: u32,
    /// Take the alternative of this rank from the step's top-k list (1 = most likely; the
    /// default is the most likely token the parent did not choose).
    #[arg(long, value_name = "RANK", conflicts_with_all = ["token_id", "text"])]
    pub alt: Option<usize>,
    /// Force this token id.
    #[arg(long, value_name = "ID", conflicts_with = "text")]
    pub token_id: Option<u32>,
    /// Force the tokens of this text.
    #[arg(long, value_name = "TEXT")]
    pub text: Option<String>,
    #[command(flatten)]
    pub replay: ReplayArgs,
    /// Alternatives kept per step (default: as many as the parent kept).
    #[arg(long, value_name = "N")]
    pub top_logprobs: Option<usize>,
    /// A label for the child run (default: fork@STEP).
    #[arg(long)]
    pub label: Option<String>,
}

/// The forced tokens (the parent's prefix, then the chosen token) and the text forced after
/// them, with a description of the choice.
fn choice(args: &ForkArgs, parent: &Parent) -> Result<(Vec<u32>, Option<String>, String)> {
    let mut forced = parent.prefix(args.at)?;
    if let Some(text) = &args.text {
        return Ok((forced, Some(text.clone()), format!("text {}", visible_token(text))));
    }
    if let Some(id) = args.token_id {
        forced.push(id);
        return Ok((forced, None, format!("token id {id}")));
    }
    let step = parent.step(args.at)?;
    let alt = match args.alt {
        Some(0) => bail!("'--alt' ranks start at 1 (the most likely token)"),
        Some(rank) => step.top.get(rank - 1).ok_or_else(|| {
            anyhow::anyhow!(
                "step {} kept {} alternatives; there is no rank {rank}",
                args.at,
                step.top.len()
            )
        })?,
        None => step.top.iter().find(|t| t.id != step.token_id).ok_or_else(|| {
            anyhow::anyhow!(
                "step {} kept no alternative to its own token; pass --token-id or --text",
                args.at
            )
        })?,
    };
    forced.push(alt.id);
    Ok((
        forced,
        None,
        format!("{} (id {}, logprob {:.3})", visible_token(&alt.text), alt.id, alt.logprob),
    ))
}

pub fn run(args: &ForkArgs, store_flag: Option<&Path>, offline: bool) -> Result<ExitCode> {
    let store = super::store_args::open(store_flag)?;
    let parent = Parent::load(&store, &args.run)?;
    let (forced, forced_text, described) = choice(args, &parent)?;
    let (path, sampler) = args.replay.prepare(&parent, args.at, offline)?;
    let request = RunRequest {
        prompt: parent.prompt()?,
        sampler: sampler.clone(),
        top_logprobs: args.top_logprobs.unwrap_or_else(|| parent.top_logprobs()),
        forced,
        forced_text,
        routing: crate::trace::RoutingDetail::Selected,
        prompt_routing: true,
    };
    let label = args.label.clone().unwrap_or_else(|| format!("fork@{}", args.at));
    let child = parent.child(&store, args.at, label, sampler)?;
    let child_id = child.id;
    errln!("forking run '{}' at step {} with {described}", parent.run.id, args.at);
    let outcomes = record_all(&store, path, LoadOptions::default(), vec![(child, request)])?;
    for o in &outcomes {
        errln!("{} steps, stop: {}", o.steps_written, o.run.stop.map_or("-", |s| s.as_str()));
    }
    outln!("{child_id}");
    Ok(ExitCode::SUCCESS)
}
