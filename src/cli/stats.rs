//! `thinkdbg stats RUN`: a run's statistics (tokens by phase, logprob, perplexity, entropy,
//! flags by kind, language mix, backtracks, speed, MoE expert usage), or one JSON object.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::analysis_store::{config, ensure, note_recomputed, run_id};
use super::store_args::open;
use crate::analysis::language::lang_name;
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
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        let mut v = serde_json::to_value(&a.stats)?;
        v["run"] = serde_json::Value::String(id.to_string());
        writeln!(out, "{}", serde_json::to_string(&v)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "run {id}")?;
    for (k, v) in lines(&a.stats) {
        writeln!(out, "  {k:<22} {v}")?;
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

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.digits$}"))
}

/// The statistics as label/value pairs (shared with `diff --stat`).
pub fn lines(s: &RunStats) -> Vec<(&'static str, String)> {
    let mix: Vec<String> =
        s.language_mix.iter().map(|(l, n)| format!("{} {n}", lang_name(l))).collect();
    let flags: Vec<String> = s.flags_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    vec![
        ("tokens", format!("{} (think {}, answer {})", s.tokens, s.think_tokens, s.answer_tokens)),
        ("words / sentences", format!("{} / {}", s.words, s.sentences)),
        ("reasoning steps", s.reasoning_steps.to_string()),
        ("mean logprob", opt(s.mean_logprob, 4)),
        ("perplexity", opt(s.perplexity, 3)),
        ("mean entropy (nats)", opt(s.mean_entropy, 4)),
        ("target language", s.target_language.as_deref().map_or("-".into(), lang_name)),
        ("target-language ratio", opt(s.target_language_ratio, 3)),
        ("language mix (words)", if mix.is_empty() { "-".into() } else { mix.join(", ") }),
        ("backtracks", format!("{} ({:.2} per 1k tokens)", s.backtracks, s.backtracks_per_1k)),
        ("flags", if flags.is_empty() { "none".into() } else { flags.join(", ") }),
        ("decode tok/s", opt(s.tok_s, 1)),
        ("routing entropy", opt(s.moe.as_ref().and_then(|m| m.mean_routing_entropy), 4)),
    ]
}
