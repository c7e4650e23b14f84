//! `thinkdbg forks RUN [--top N] [--resample M] [--json]`: a run's forking tokens (the
//! highest-entropy share, `[analysis.forks] share`), each with its top alternatives; with
//! `--resample M`, M continuations from each fork's alternatives are recorded as child runs
//! and the forks are ranked by how often the final answer changed.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use serde_json::{json, Value};

use super::analysis::config;
use super::replay::{record_all, Parent, ReplayArgs};
use crate::analysis::forks::{self, Fork};
use crate::engine::LoadOptions;
use crate::runs::forks::{plan, rank, Ranked};
use crate::runs::resample;
use crate::sanitize::visible_token;

/// Forks resampled when `--resample` is given without `--top`.
const DEFAULT_RESAMPLED: usize = 5;

#[derive(Debug, Clone, Args)]
pub struct ForksArgs {
    /// The run id (as `thinkdbg ls` prints it).
    pub run: String,
    /// At most this many forks, highest entropy first (default: every token of the top share;
    /// with --resample, the top 5).
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// Record M continuations from each fork's alternatives (forced in turn, most likely
    /// first) and rank the forks by how often the final answer changed.
    #[arg(long, value_name = "M")]
    pub resample: Option<usize>,
    /// Alternatives shown per fork.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub alternatives: usize,
    /// Sampling temperature of the continuations (default: the parent's, or 0.7 when greedy).
    #[arg(short, long)]
    pub temperature: Option<f32>,
    /// One JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub replay: ReplayArgs,
}

fn fork_json(f: &Fork) -> Value {
    let alts: Vec<Value> = f
        .alternatives
        .iter()
        .map(|t| json!({"id": t.id, "text": t.text, "logprob": t.logprob}))
        .collect();
    json!({
        "step": f.step,
        "token_id": f.token_id,
        "text": f.text,
        "entropy": f.entropy,
        "logprob": f.logprob,
        "alternatives": alts,
    })
}

fn alternatives_text(f: &Fork) -> String {
    let alts: Vec<String> = f
        .alternatives
        .iter()
        .map(|t| format!("{} {:.2}", visible_token(&t.text), t.logprob))
        .collect();
    if alts.is_empty() {
        "(none recorded)".into()
    } else {
        alts.join(", ")
    }
}

pub fn run(args: &ForksArgs, store_flag: Option<&Path>, offline: bool) -> Result<ExitCode> {
    let cfg = config()?;
    if args.top == Some(0) {
        bail!("'--top' must be at least 1");
    }
    if let Some(m) = args.resample {
        if m == 0 || m > resample::MAX_SAMPLES {
            bail!("'--resample' is {m}; give 1 to {}", resample::MAX_SAMPLES);
        }
    }
    let store = super::store_args::open(store_flag)?;
    let id = super::analysis::run_id(&store, &args.run)?;
    let read = store.steps(id)?;
    for e in &read.errors {
        errln!("warning: {e}");
    }
    let steps = read.steps;
    let share = cfg.forks.share;
    let top = args.top.or(args.resample.map(|_| DEFAULT_RESAMPLED));
    let found = forks::forks(&steps, share, top, args.alternatives);
    let ranked = match args.resample {
        Some(m) => Some(resample_forks(args, &store, &args.run, &found, m, offline)?),
        None => None,
    };
    if args.json {
        let list: Vec<Value> = match &ranked {
            Some(r) => r
                .iter()
                .map(|r| {
                    let mut v = fork_json(&r.fork);
                    v["resample"] = json!({
                        "samples": r.summary.total,
                        "changed": r.summary.changed,
                        "importance": r.summary.importance(),
                        "original": r.summary.original,
                        "runs": r.runs.iter().map(|id| id.to_string()).collect::<Vec<_>>(),
                        "answers": r.summary.groups.iter().map(|g| json!({
                            "answer": g.answer,
                            "count": g.runs.len(),
                            "changed": g.changed,
                        })).collect::<Vec<_>>(),
                    });
                    v
                })
                .collect(),
            None => found.iter().map(fork_json).collect(),
        };
        let v = json!({
            "run": id.to_string(),
            "share": share,
            "tokens": steps.len(),
            "forks": list,
        });
        outln!("{}", crate::sanitize::json_line(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "run {id}: {} forking tokens (the {:.0}% of {} tokens with the highest entropy{})",
        found.len(),
        share * 100.0,
        steps.len(),
        top.map_or(String::new(), |t| format!(", at most {t}"))
    );
    match &ranked {
        None => {
            outln!("  {:>6}  {:>7}  {:<16} alternatives (logprob)", "step", "entropy", "token");
            for f in &found {
                outln!(
                    "  {:>6}  {:>7.3}  {:<16} {}",
                    f.step,
                    f.entropy,
                    visible_token(&f.text),
                    alternatives_text(f)
                );
            }
        }
        Some(r) => {
            outln!(
                "ranked by how often the answer changed (original: {})",
                r.first().map_or("-".into(), |r| r.summary.original.clone())
            );
            outln!(
                "  {:>6}  {:>7}  {:>7}  {:<16} alternatives",
                "step",
                "changed",
                "entropy",
                "token"
            );
            for r in r {
                outln!(
                    "  {:>6}  {:>3}/{:<3}  {:>7.3}  {:<16} {}",
                    r.fork.step,
                    r.summary.changed,
                    r.summary.total,
                    r.fork.entropy,
                    visible_token(&r.fork.text),
                    alternatives_text(&r.fork)
                );
                for g in &r.summary.groups {
                    let what = if g.changed { "changed" } else { "same" };
                    outln!("  {:>28}× {} ({what})", g.runs.len(), g.answer);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Records `m` continuations from each fork (one model load) and ranks the forks.
fn resample_forks(
    args: &ForksArgs,
    store: &std::sync::Arc<crate::store::Store>,
    run: &str,
    found: &[Fork],
    m: usize,
    offline: bool,
) -> Result<Vec<Ranked>> {
    let parent = Parent::load(store, run)?;
    let last = found.iter().map(|f| f.step as u32).max().unwrap_or(0);
    let (path, sampler) = args.replay.prepare(&parent, last + 1, offline)?;
    let mut jobs = Vec::new();
    let mut per_fork = Vec::new();
    for f in found {
        let s = resample::sampler(&sampler, args.temperature, f.step as u32 + 1)?;
        let planned = plan(store, &parent, f, m, &s)?;
        per_fork.push((f.clone(), planned.iter().map(|(r, _)| r.id).collect::<Vec<_>>()));
        jobs.extend(planned);
    }
    errln!(
        "resampling run '{}' from {} forking tokens: {} continuations each ({} runs)",
        parent.run.id,
        found.len(),
        m,
        jobs.len()
    );
    record_all(store, path, LoadOptions::default(), jobs)?;
    Ok(rank(store, &parent, per_fork)?)
}
