//! `thinkdbg import FILE`: a thinkdbg export, an OpenAI exchange or response, a captured SSE
//! stream, a JSONL or Parquet dataset, or a text file with `<think>` (detected, or
//! `--format`); all or nothing, under fresh ids; prints the new run ids.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::store_args::open;
use crate::runs::import::{self, detect, FieldMap, Format, Input, Options, Progress, Where};
use crate::sanitize::for_terminal;

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The file (gzipped or not), a pipe (`<(zcat x.jsonl.gz)`), or `-` for standard input.
    pub file: PathBuf,
    /// The file's format; detected from its name and first bytes when not given.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// The user message (openai bare responses, sse, text: the file has none).
    #[arg(long)]
    pub prompt: Option<String>,
    /// A system message before the prompt.
    #[arg(long)]
    pub system: Option<String>,
    /// A label for every imported run.
    #[arg(long)]
    pub label: Option<String>,
    /// dataset: the prompt field (text, or a `messages`-style list); dotted paths work.
    #[arg(long, value_name = "FIELD")]
    pub prompt_field: Option<String>,
    /// dataset: the response field (text, or a list: one run per element).
    #[arg(long, value_name = "FIELD")]
    pub response_field: Option<String>,
    /// dataset: the reasoning field (thinking steps before the response or answer).
    #[arg(long, value_name = "FIELD")]
    pub reasoning_field: Option<String>,
    /// dataset: the answer field (the text after the reasoning, without a response field).
    #[arg(long, value_name = "FIELD")]
    pub answer_field: Option<String>,
    /// dataset: the runs' label (a list labels one run per element).
    #[arg(long, value_name = "FIELD")]
    pub label_field: Option<String>,
    /// Import at most N rows (dataset) or exchanges (openai).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// dataset: keep rows whose FIELD is VALUE (repeatable: all must hold).
    #[arg(long = "where", value_name = "FIELD=VALUE")]
    pub wheres: Vec<Where>,
}

impl ImportArgs {
    fn options(&self) -> Options {
        Options {
            prompt: self.prompt.clone(),
            system: self.system.clone(),
            label: self.label.clone(),
            fields: FieldMap {
                prompt: self.prompt_field.clone(),
                response: self.response_field.clone(),
                reasoning: self.reasoning_field.clone(),
                answer: self.answer_field.clone(),
                label: self.label_field.clone(),
            },
            limit: self.limit,
            wheres: self.wheres.clone(),
        }
    }
}

/// Files this large (or Parquet files with this many rows) get a progress bar.
const BAR_BYTES: u64 = 4 << 20;
const BAR_ROWS: u64 = 1000;

/// A progress bar shown once the import is big enough to need one.
struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    fn show(&mut self, p: Progress) {
        let Some(total) = p.total else { return };
        if self.0.is_none() && !super::out::is_redirected() {
            let big = if p.rows { total >= BAR_ROWS } else { total >= BAR_BYTES };
            if big {
                let bar = indicatif::ProgressBar::with_draw_target(
                    Some(total),
                    indicatif::ProgressDrawTarget::stderr(),
                );
                let template = if p.rows {
                    "importing {bar:30} {pos}/{len} rows · {msg}"
                } else {
                    "importing {bar:30} {binary_bytes}/{binary_total_bytes} · {msg}"
                };
                bar.set_style(
                    indicatif::ProgressStyle::with_template(template)
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                self.0 = Some(bar);
            }
        }
        if let Some(bar) = &self.0 {
            bar.set_position(p.done);
            bar.set_message(format!("{} sessions", p.sessions));
        }
    }
}

pub fn run(args: &ImportArgs, store_flag: Option<&Path>) -> Result<ExitCode> {
    let input = Input::open(&args.file)?;
    let format = args.format.unwrap_or_else(|| detect(&input));
    let cfg = super::analysis::config()?;
    let store = open(store_flag)?;
    let mut bar = Bar(None);
    let result = import::import(&store, input, format, &args.options(), &cfg, &mut |p| bar.show(p));
    if let Some(b) = &bar.0 {
        b.finish_and_clear();
    }
    let done = match result {
        Ok(d) => d,
        Err(e) if args.format.is_none() && format == Format::Thinkdbg => {
            return Err(anyhow::anyhow!(
                "{e} (read as a thinkdbg export; give '--format' to import another tool's file)"
            ))
        }
        Err(e) => return Err(anyhow::anyhow!("{}", for_terminal(&e.to_string(), false))),
    };
    let skipped = if done.skipped > 0 {
        format!(", {} rows left out by --where", done.skipped)
    } else {
        String::new()
    };
    errln!(
        "imported {} session(s), {} run(s) ({}{skipped})",
        done.imported.sessions.len(),
        done.imported.runs.len(),
        format.as_str()
    );
    for r in done.imported.runs {
        outln!("{r}");
    }
    Ok(ExitCode::SUCCESS)
}
