//! `thinkdbg export ID --format jsonl|md|html`: a run (with its session) or a whole session
//! as the lossless JSONL format, Markdown or a self-contained HTML page, to stdout or
//! `--output FILE`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use super::store_args::open;
use crate::export::jsonl::{self, RunRecord, SessionRecord};
use crate::export::{html, markdown};
use crate::store::{Store, Target};
use crate::trace::{Routing, RunId};

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

/// Reads a run with everything recorded about it.
pub fn run_record(store: &Store, id: RunId) -> Result<RunRecord> {
    let read = store.steps(id)?;
    if let Some(e) = read.errors.into_iter().next() {
        return Err(e.into());
    }
    let mut routing: std::collections::HashMap<u32, Routing> =
        store.routing(id)?.into_iter().collect();
    Ok(RunRecord {
        run: store.run(id)?,
        steps: read
            .steps
            .into_iter()
            .map(|s| {
                let r = routing.remove(&s.index);
                (s, r)
            })
            .collect(),
        flags: store.flags(id)?,
        notes: store.notes(id)?,
    })
}

/// The session in the chosen format.
pub fn render(record: &SessionRecord, format: Format) -> Result<String> {
    Ok(match format {
        Format::Jsonl => {
            let mut text = jsonl::header()?;
            text.push('\n');
            for line in jsonl::session_lines(record)? {
                text.push_str(&line);
                text.push('\n');
            }
            text
        }
        Format::Md => markdown::render(record, &[]),
        Format::Html => html::render(record, &[]),
    })
}

pub fn run(args: &ExportArgs, store_flag: Option<&Path>) -> Result<ExitCode> {
    let store = open(store_flag)?;
    let record = match store.resolve(&args.id)? {
        Target::Run(r) => {
            let rec = run_record(&store, r)?;
            let sid = rec.run.as_ref().map(|x| x.session).context("the run vanished")?;
            let mut session =
                store.session(sid)?.with_context(|| format!("run '{r}' has no session '{sid}'"))?;
            session.runs = vec![r];
            SessionRecord { session, runs: vec![rec] }
        }
        Target::Session(s) => {
            let session = store.session(s)?.context("the session vanished")?;
            let runs = session
                .runs
                .iter()
                .filter(|r| matches!(store.run(**r), Ok(Some(_))))
                .map(|r| run_record(&store, *r))
                .collect::<Result<Vec<_>>>()?;
            SessionRecord { session, runs }
        }
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
