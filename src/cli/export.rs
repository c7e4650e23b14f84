//! `thinkdbg export ID --format jsonl|md|html`: a run (with its session) or a whole session
//! as the lossless JSONL format, Markdown or a self-contained HTML page, to stdout or
//! `--output FILE`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use super::store_args::open;
use crate::export::jsonl::SessionRecord;
use crate::export::Kind;
use crate::store::{records, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Lossless, re-importable with `thinkdbg import`.
    Jsonl,
    /// Markdown: prompt, settings, CoT with flags and notes inline, statistics.
    #[value(alias = "markdown")]
    Md,
    /// One self-contained HTML page (no script, strict Content-Security-Policy).
    Html,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// A run or session id.
    pub id: String,
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// Write here instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// The session in the chosen format.
pub fn render(record: &SessionRecord, format: Format) -> Result<String> {
    let kind = match format {
        Format::Jsonl => Kind::Jsonl,
        Format::Md => Kind::Markdown,
        Format::Html => Kind::Html,
    };
    Ok(crate::export::render(record, kind)?)
}

pub fn run(args: &ExportArgs, store_flag: Option<&Path>) -> Result<ExitCode> {
    let store = open(store_flag)?;
    let record = match store.resolve(&args.id)? {
        Target::Run(r) => records::single_run(&store, r)?,
        Target::Session(s) => records::session(&store, s)?,
    };
    let text = render(&record, args.format)?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing '{}'", path.display()))?
        }
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}
