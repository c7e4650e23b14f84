//! `thinkdbg export ID --format jsonl|md|html`: a run (with its session) or a whole session
//! as the lossless JSONL format, Markdown or a self-contained HTML page, to stdout or
//! `--output FILE`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use super::store_args::open;
use crate::export::Kind;
use crate::store::{records, Store, Target};
use crate::trace::RunId;
use crate::trace::SessionRecord;

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

/// The statistics rows of each run of a session, from its stored analysis (computed and
/// stored now when missing or stale, so that the flags read afterwards are current too). A
/// run that cannot be analysed gets no table and a warning.
fn stats_rows(store: &Store, runs: &[RunId]) -> Result<Vec<Vec<(String, String)>>> {
    let cfg = super::analysis::config()?;
    Ok(runs
        .iter()
        .map(|&id| match super::analysis::ensure(store, id, &cfg, false) {
            Ok(a) => {
                let conf = crate::analysis::confidence::run_confidence(&a.steps, &cfg.deepconf);
                // The answer-now probe, where one is kept beside the run.
                let probe = crate::runs::probe::stored(store, id).ok().flatten().map(|p| {
                    let v = match (p.answer_settled_step(), p.tokens_after_settle()) {
                        (Some(s), Some(after)) => {
                            format!(
                                "reasoning step {s}; {after} of {} tokens after it",
                                p.think_end
                            )
                        }
                        _ => "never".to_string(),
                    };
                    ("answer settled (probe)", v)
                });
                super::stats::lines(&a.stats)
                    .into_iter()
                    .chain(crate::analysis::confidence::rows(&conf))
                    .chain(probe)
                    .map(|(k, v)| (k.to_string(), v))
                    .collect()
            }
            Err(e) => {
                errln!("warning: run '{id}' could not be analysed: {e:#}");
                Vec::new()
            }
        })
        .collect())
}

/// The session in the chosen format; `stats` holds each run's statistics rows (Markdown and
/// HTML only).
pub fn render(
    record: &SessionRecord,
    format: Format,
    stats: &[Vec<(String, String)>],
) -> Result<String> {
    let kind = match format {
        Format::Jsonl => Kind::Jsonl,
        Format::Md => Kind::Markdown,
        Format::Html => Kind::Html,
    };
    Ok(crate::export::render(record, kind, stats)?)
}

pub fn run(args: &ExportArgs, store_flag: Option<&Path>) -> Result<ExitCode> {
    let store = open(store_flag)?;
    let target = store.resolve(&args.id)?;
    let stats = match (args.format, target) {
        (Format::Jsonl, _) => Vec::new(),
        (_, Target::Run(r)) => stats_rows(&store, &[r])?,
        (_, Target::Session(s)) => {
            let session = store.session(s)?.context("the session vanished")?;
            let runs: Vec<RunId> =
                session.runs.into_iter().filter(|r| matches!(store.run(*r), Ok(Some(_)))).collect();
            stats_rows(&store, &runs)?
        }
    };
    let record = match target {
        Target::Run(r) => records::single_run(&store, r)?,
        Target::Session(s) => records::session(&store, s)?,
    };
    let text = render(&record, args.format, &stats)?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing '{}'", path.display()))?
        }
        None => super::out::Out::stdout().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}
