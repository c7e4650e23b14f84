//! `thinkdbg stats RUN`: a run's statistics (tokens by phase, logprob, perplexity, entropy,
//! flags by kind, language mix, backtracks, speed, MoE expert usage), or one JSON object.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::analysis::{config, ensure, note_recomputed, run_id};
use super::store_args::open;
use crate::analysis::confidence::{rows as confidence_rows, run_confidence};
use crate::analysis::RunStats;

#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    /// The run id (as `thinkdbg ls` prints it).
    pub run: String,
    /// One JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &StatsArgs, store_flag: Option<&Path>) -> Result<ExitCode> {
    let cfg = config()?;
    let store = open(store_flag)?;
    let id = run_id(&store, &args.run)?;
    let a = ensure(&store, id, &cfg, false)?;
    note_recomputed(&a, id);
    let probe = crate::runs::probe::stored(&store, id)?;
    let mut out = super::out::Out::stdout();
    if args.json {
        let mut v = serde_json::to_value(&a.stats)?;
        v["run"] = serde_json::Value::String(id.to_string());
        v["confidence"] = serde_json::to_value(run_confidence(&a.steps, &cfg.deepconf))?;
        if let Some(p) = &probe {
            v["answer_settled_step"] = serde_json::json!(p.answer_settled_step());
            v["tokens_after_settle"] = serde_json::json!(p.tokens_after_settle());
        }
        // Labels in the statistics are the user's or an import's text: escaped like `ls --json`.
        writeln!(out, "{}", crate::sanitize::json_line(&v)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "run {id}")?;
    for (k, v) in lines(&a.stats) {
        writeln!(out, "  {k:<22} {}", crate::sanitize::for_terminal(&v, false))?;
    }
    for (k, v) in confidence_rows(&run_confidence(&a.steps, &cfg.deepconf)) {
        writeln!(out, "  {k:<22} {v}")?;
    }
    if let Some(p) = &probe {
        let settled = match (p.answer_settled_step(), p.tokens_after_settle()) {
            (Some(s), Some(after)) => {
                let what = if p.thinks { "thinking tokens" } else { "tokens" };
                format!("reasoning step {s}; {after} of {} {what} after it", p.think_end)
            }
            _ => "never (the answer at the end of the thinking is not the final one)".into(),
        };
        writeln!(out, "  {:<22} {settled}", "answer settled (probe)")?;
    }
    if let Some(moe) = &a.stats.moe {
        writeln!(out, "  expert usage ({} experts; balance 1 = even)", moe.experts)?;
        for l in &moe.layers {
            let mut top: Vec<(usize, u64)> = l.counts.iter().copied().enumerate().collect();
            top.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
            let total: u64 = l.counts.iter().sum::<u64>().max(1);
            let top: Vec<String> = top
                .iter()
                .take(5)
                .filter(|(_, c)| *c > 0)
                .map(|(e, c)| format!("e{e} {:.0}%", 100.0 * *c as f64 / total as f64))
                .collect();
            writeln!(
                out,
                "    layer {:>3}  balance {:.3}  H {:.3}  top: {}",
                l.layer,
                l.balance,
                l.usage_entropy,
                top.join(", ")
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The statistics as label/value pairs (shared with `diff --stat` and the exports).
pub fn lines(s: &RunStats) -> Vec<(&'static str, String)> {
    crate::analysis::stats::rows(s)
}
