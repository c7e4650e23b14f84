//! `thinkdbg ls`: sessions and their runs, as a table or one JSON object per run.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::store_args::{date, open};
use crate::sanitize::{for_terminal, json_line};
use crate::trace::RunStatus;

#[derive(Debug, Clone, Args)]
pub struct LsArgs {
    /// One JSON object per run: {"session","run","label","model","status","steps","created"}.
    #[arg(long)]
    pub json: bool,
}

pub fn status_name(s: &RunStatus) -> &'static str {
    s.as_str()
}

pub fn run(args: &LsArgs, store_flag: Option<&Path>) -> Result<ExitCode> {
    let store = open(store_flag)?;
    let mut sessions = store.sessions()?;
    sessions.sort_by_key(|s| s.created_at);
    let (runs, errors) = store.runs_lossy()?;
    for e in &errors {
        errln!("warning: {e}");
    }
    for s in &sessions {
        if !args.json {
            outln!("{}  {}  {}", s.id, date(s.created_at), for_terminal(&s.title, false));
        }
        for r in runs.iter().filter(|r| r.session == s.id) {
            let steps = store.step_count(r.id);
            if args.json {
                let v = serde_json::json!({
                    "session": s.id.to_string(),
                    "run": r.id.to_string(),
                    "label": r.label,
                    "model": r.model.name,
                    "status": status_name(&r.status),
                    "steps": steps,
                    "created": r.created_at,
                });
                outln!("{}", json_line(&v)?);
            } else {
                outln!(
                    "  {:<8} {:<10} {:<36} {:>6} tok  {:<11}  {}",
                    r.id.to_string(),
                    for_terminal(r.label.as_deref().unwrap_or("-"), false),
                    for_terminal(&r.model.name, false).chars().take(36).collect::<String>(),
                    steps,
                    status_name(&r.status),
                    date(r.created_at)
                );
            }
        }
    }
    if sessions.is_empty() && !args.json {
        errln!(
            "the store '{}' has no sessions yet; record one with 'thinkdbg record PROMPT'",
            store.path().display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
