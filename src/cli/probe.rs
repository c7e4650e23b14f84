//! `thinkdbg probe RUN [--json]`: the answer-now probe. Replays the run once and, at each
//! reasoning-step boundary of its thinking, asks the model for its answer right now
//! (`</think>` and an answer prefix, a short greedy answer); prints each answer with its
//! probability and whether it matches the run's final answer, the reasoning step from which the
//! answer settled and the thinking tokens spent after that. The result is kept beside the run
//! (`stats` shows it; the terminal UI draws it as a row of the timeline). `--stored` prints
//! the kept result without running the model.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use serde_json::json;

use super::analysis::config;
use super::replay::Parent;
use crate::engine::source::ModelSource;
use crate::engine::{Engine, LoadOptions};
use crate::runs::probe::{self, StoredProbe};
use crate::sanitize::visible_token;

#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// The run to probe (recorded with the embedded engine).
    pub run: String,
    /// One JSON object.
    #[arg(long)]
    pub json: bool,
    /// Print the probe kept beside the run instead of running the model again.
    #[arg(long)]
    pub stored: bool,
    /// The model file (default: 'demo'); it must be the one the run was recorded with.
    #[arg(short, long, env = "THINKDBG_MODEL", value_name = "MODEL")]
    pub model: Option<String>,
    /// Probe with a model other than the run's.
    #[arg(long)]
    pub any_model: bool,
    /// The answer prefix (default: `[analysis.probe] answer_prefix`, "\n\nThe final answer is").
    #[arg(long, value_name = "TEXT")]
    pub prefix: Option<String>,
    /// Most answer tokens per boundary (default: `[analysis.probe] max_tokens`, 16).
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<usize>,
}

impl ProbeArgs {
    pub fn for_each_path(&mut self, f: &mut dyn FnMut(&mut std::path::PathBuf)) {
        super::args::model_path(&mut self.model, f);
    }
}

pub fn run(args: &ProbeArgs, store_flag: Option<&Path>, offline: bool) -> Result<ExitCode> {
    let mut cfg = config()?.probe;
    if let Some(p) = &args.prefix {
        cfg.answer_prefix = p.clone();
    }
    if let Some(n) = args.max_tokens {
        anyhow::ensure!((1..=256).contains(&n), "'--max-tokens' is {n}; give 1 to 256");
        cfg.max_tokens = n;
    }
    let store = super::store_args::open(store_flag)?;
    let result = if args.stored {
        let id = super::analysis::run_id(&store, &args.run)?;
        probe::stored(&store, id)?.ok_or_else(|| {
            anyhow!(
                "run '{id}' has no stored probe for its current steps; run `thinkdbg probe {id}`"
            )
        })?
    } else {
        let parent = Parent::load(&store, &args.run)?;
        let path = ModelSource::parse(args.model.as_deref())?.resolve(offline)?;
        parent.check_model(&path, args.any_model)?;
        let plan = probe::plan(&parent.steps, &cfg.close_think);
        let request = probe::request(&parent, &plan, &cfg)?;
        let mut engine = Engine::load(&path, &LoadOptions::default(), &mut |_, _| {})
            .with_context(|| format!("loading '{}'", path.display()))?;
        errln!(
            "probing run '{}' at {} boundaries ({} thinking tokens)",
            parent.run.id,
            plan.boundaries.len(),
            plan.think_end
        );
        let cancel = AtomicBool::new(false);
        let outcome = engine.probe(&request, &cancel, &mut |_, _| {})?;
        let p = probe::summarize(&parent.steps, &plan, &cfg, &outcome);
        probe::keep(&store, parent.run.id, &p)?;
        p
    };
    let id = super::analysis::run_id(&store, &args.run)?;
    if args.json {
        outln!("{}", crate::sanitize::json_line(&to_json(&result, &id.to_string()))?);
    } else {
        print(&result, &id.to_string());
    }
    Ok(ExitCode::SUCCESS)
}

fn to_json(p: &StoredProbe, run: &str) -> serde_json::Value {
    let points: Vec<serde_json::Value> = p
        .points
        .iter()
        .map(|x| {
            json!({
                "step": x.at,
                "reasoning_step": x.reasoning_step,
                "text": x.text,
                "answer": x.answer,
                "logprob": x.logprob,
                "prob": x.logprob.exp(),
                "matches_final": x.matches,
                "us": x.us,
            })
        })
        .collect();
    json!({
        "run": run,
        "suffix": p.suffix,
        "final_answer": p.final_answer,
        "think_tokens": p.think_end,
        "answer_settled_step": p.answer_settled_step(),
        "settled_at_token": p.settled_at(),
        "tokens_after_settle": p.tokens_after_settle(),
        "points": points,
        "prefill_us": p.prefill_us,
        "replay_us": p.replay_us,
        "mean_branch_us": p.mean_branch_us(),
    })
}

fn print(p: &StoredProbe, run: &str) {
    outln!(
        "run {run}: answer-now probe ({}), final answer: {}",
        visible_token(&p.suffix),
        p.final_answer
    );
    outln!("  {:>5}  {:>6}  {:>7}  {:<5} answer", "rstep", "token", "p", "final");
    for x in &p.points {
        outln!(
            "  {:>5}  {:>6}  {:>6.1}%  {:<5} {}",
            x.reasoning_step,
            x.at,
            x.logprob.exp() * 100.0,
            if x.matches { "yes" } else { "no" },
            visible_token(x.text.trim())
        );
    }
    let think = p.think_end.max(1);
    let what = if p.thinks { "thinking tokens" } else { "tokens (the run does not think)" };
    match (p.answer_settled_step(), p.settled_at(), p.tokens_after_settle()) {
        (Some(rs), Some(at), Some(after)) => outln!(
            "settled at reasoning step {rs} (token {at}); {after} of {} {what} came after it \
             ({:.0}%)",
            p.think_end,
            100.0 * after as f64 / think as f64
        ),
        _ => outln!("never settled: the answer at the end of the thinking is not the final one"),
    }
    outln!(
        "cost: prefill {:.1} ms, replay {:.1} ms, {:.1} ms per boundary",
        p.prefill_us as f64 / 1000.0,
        p.replay_us as f64 / 1000.0,
        p.mean_branch_us() / 1000.0
    );
}
