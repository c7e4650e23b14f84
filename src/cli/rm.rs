//! `thinkdbg rm ID`: delete a run (with its steps, routing, flags and notes) or a session.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::store_args::open;
use crate::store::Target;

#[derive(Debug, Clone, Args)]
pub struct RmArgs {
    /// Run or session ids.
    #[arg(required = true)]
    pub ids: Vec<String>,
}

pub fn run(args: &RmArgs, store_flag: Option<&Path>) -> Result<ExitCode> {
    let store = open(store_flag)?;
    // Resolve everything first, so a typo removes nothing.
    let targets = args.ids.iter().map(|s| store.resolve(s)).collect::<Result<Vec<_>, _>>()?;
    for t in targets {
        match t {
            Target::Run(r) => {
                store.remove_run(r)?;
                errln!("removed run {r}");
            }
            Target::Session(s) => {
                store.remove_session(s)?;
                errln!("removed session {s}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
