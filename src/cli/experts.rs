//! `thinkdbg experts [RUN|SESSION|--model M] [--marker think|backtrack|language_switch]
//! [--json]`: cognitive experts of MoE runs, the normalised PMI between each (layer, expert)
//! being selected and the marker, over a run, a session or every run of a model in the store.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use clap::Args;
use serde_json::json;

use super::analysis::config;
use crate::analysis::experts::Marker;
use crate::store::Target;
use crate::trace::RunId;

#[derive(Debug, Clone, Args)]
pub struct ExpertsArgs {
    /// A run or session id (as `thinkdbg ls` prints them).
    #[arg(required_unless_present = "model", conflicts_with = "model")]
    pub target: Option<String>,
    /// Every run of this model in the store: its name, architecture or fingerprint prefix.
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// The marker: think (thinking vs answering), backtrack ("Wait", "等等") or
    /// language_switch.
    #[arg(long, default_value = "backtrack", value_name = "MARKER")]
    pub marker: String,
    /// Experts listed (highest nPMI first).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top: usize,
    /// Leave out experts selected for fewer tokens than this.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub min_count: u64,
    /// One JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ExpertsArgs, store_flag: Option<&Path>) -> Result<ExitCode> {
    let marker = Marker::parse(&args.marker).ok_or_else(|| {
        anyhow!("unknown marker '{}' (think, backtrack, language_switch)", args.marker)
    })?;
    let cfg = config()?;
    let store = super::store_args::open(store_flag)?;
    let (runs, scope): (Vec<RunId>, String) = match (&args.target, &args.model) {
        (Some(t), _) => match store.resolve(t)? {
            Target::Run(r) => (vec![r], format!("run {r}")),
            Target::Session(s) => {
                let sess = store.session(s)?.ok_or_else(|| anyhow!("no session '{t}'"))?;
                (sess.runs.clone(), format!("session {s}"))
            }
        },
        (None, Some(m)) => {
            let runs: Vec<RunId> = store
                .runs()?
                .into_iter()
                .filter(|r| crate::runs::experts::is_model(r, m))
                .map(|r| r.id)
                .collect();
            if runs.is_empty() {
                bail!("no run in the store was recorded with model '{m}'");
            }
            (runs, format!("model {m}"))
        }
        (None, None) => bail!("give a run or session id, or --model"),
    };
    let (counts, used) = crate::runs::experts::count(&store, &runs, marker, &cfg)?;
    if used.is_empty() {
        bail!("{scope} has no MoE routing recorded (dense model, or recorded with --routing off)");
    }
    let assoc: Vec<_> =
        counts.associations().into_iter().filter(|a| a.count >= args.min_count).collect();
    if args.json {
        let v = json!({
            "scope": scope,
            "marker": marker.as_str(),
            "runs": used.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            "tokens": counts.tokens,
            "marked": counts.marked,
            "experts": assoc.iter().take(args.top).collect::<Vec<_>>(),
            "least": assoc.iter().rev().take(args.top).collect::<Vec<_>>(),
        });
        outln!("{}", crate::sanitize::json_line(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{scope}: {} runs with routing, {} tokens, {} marked '{}'",
        used.len(),
        counts.tokens,
        counts.marked,
        marker.as_str()
    );
    if counts.marked == 0 || counts.marked == counts.tokens {
        outln!("every token or none carries the marker: nPMI is 0 throughout");
    }
    outln!("  {:>5}  {:>6}  {:>7}  {:>7}  {:>7}", "layer", "expert", "nPMI", "tokens", "marked");
    for a in assoc.iter().take(args.top) {
        outln!(
            "  {:>5}  {:>6}  {:>7.3}  {:>7}  {:>7}",
            a.layer,
            a.expert,
            a.npmi,
            a.count,
            a.marked
        );
    }
    Ok(ExitCode::SUCCESS)
}
