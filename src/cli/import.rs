//! `thinkdbg import FILE.jsonl`: all or nothing, under fresh ids; prints the new run ids.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::store_args::open;
use crate::export::jsonl;
use crate::store::import;

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// A file written by `thinkdbg export --format jsonl`.
    pub file: PathBuf,
}

pub fn run(args: &ImportArgs, store_flag: Option<&Path>) -> Result<ExitCode> {
    let kind = std::fs::metadata(&args.file)
        .with_context(|| format!("reading '{}'", args.file.display()))?
        .file_type();
    // A FIFO or a device (`/dev/urandom`) never ends: reading it whole would fill memory.
    anyhow::ensure!(kind.is_file(), "'{}' is not a regular file", args.file.display());
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading '{}'", args.file.display()))?;
    // Parse before opening the store: a bad file never touches it.
    let records =
        jsonl::parse_bytes(&bytes).with_context(|| format!("'{}'", args.file.display()))?;
    let store = open(store_flag)?;
    let done = import::import(&store, records)?;
    errln!("imported {} session(s), {} run(s)", done.sessions.len(), done.runs.len());
    for r in done.runs {
        outln!("{r}");
    }
    Ok(ExitCode::SUCCESS)
}
