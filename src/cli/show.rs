//! `thinkdbg show RUN`: the transcript of a recorded run, or (`--steps`) a per-token table.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use crossterm::style::{ContentStyle, Stylize};

use super::ls::status_name;
use super::store_args::{date, open};
use crate::sanitize::{for_terminal, visible_token};
use crate::store::Target;
use crate::trace::Phase;

#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    /// The run id (as `thinkdbg ls` prints it).
    pub run: String,
    /// One line per token: index, phase, token, logprob, probability, entropy.
    #[arg(long)]
    pub steps: bool,
}

pub fn run(args: &ShowArgs, store_flag: Option<&Path>) -> Result<ExitCode> {
    let store = open(store_flag)?;
    let Target::Run(id) = store.resolve(&args.run)? else {
        bail!("'{}' is a session; show takes a run id", args.run)
    };
    let Some(run) = store.run(id)? else { bail!("no run '{}'", args.run) };
    let read = store.steps(id)?;
    for e in &read.errors {
        errln!("warning: {e}");
    }
    let mut out = super::out::Out::stdout();
    let color = super::analysis::use_color();
    let status = match &run.status {
        crate::trace::RunStatus::Failed(m) => format!("failed: {}", for_terminal(m, false)),
        s => status_name(s).to_string(),
    };
    writeln!(out, "run {}  session {}  {}  {}", run.id, run.session, date(run.created_at), status)?;
    writeln!(
        out,
        "model {} ({}, {})",
        for_terminal(&run.model.name, false),
        for_terminal(&run.model.arch, false),
        for_terminal(&run.model.quant, false)
    )?;
    if let crate::trace::RunSource::File { path, format, place, server, .. } = &run.source {
        let at = if place.is_empty() { String::new() } else { format!(" ({place})") };
        writeln!(out, "source imported {format} file {}{at}", for_terminal(path, false))?;
        if !server.missing.is_empty() {
            writeln!(out, "not in the file: {}", for_terminal(&server.missing.join(", "), false))?;
        }
    }
    // A scored run forces every token; none is marked.
    let forced = run.forced_step();
    let s = &run.sampler;
    writeln!(
        out,
        "sampler temperature {} top-k {} top-p {} min-p {} repeat-penalty {} seed {} max-tokens {}",
        s.temperature,
        s.top_k,
        s.top_p,
        s.min_p,
        s.repeat_penalty,
        s.seed,
        s.max_tokens_text()
    )?;
    if let Some(s) = run.scored() {
        let parent = run.parent.map_or("-".into(), |(p, _)| p.to_string());
        writeln!(out, "scores run {parent}'s text: {}", s.tokens.as_str())?;
    } else if let Some((parent, at)) = run.parent {
        if run.label.as_deref() == Some("edit") {
            writeln!(out, "parent {parent}, re-run with an edited prompt")?;
        } else {
            let what = if forced == Some(at) { "forked" } else { "resampled" };
            writeln!(out, "parent {parent}, {what} at step {at}")?;
        }
    }
    for m in &run.messages {
        writeln!(out, "[{}] {}", for_terminal(&m.role, false), for_terminal(&m.content, true))?;
    }
    if run.messages.is_empty() && !run.rendered_prompt.is_empty() {
        // A `--raw` run: the prompt is the text as given.
        writeln!(out, "[raw prompt] {}", for_terminal(&run.rendered_prompt, true))?;
    }
    writeln!(out)?;
    if args.steps {
        for st in &read.steps {
            write!(
                out,
                "{:>6} {:<6} {:<24} lp {:>8.4}  p {:>6.2}%  H {:>6.3}",
                st.index,
                st.phase.as_str(),
                format!("'{}'", visible_token(&st.text)),
                st.logprob,
                100.0 * f64::from(st.logprob).exp(),
                st.entropy
            )?;
            if forced == Some(st.index) {
                write!(out, "  forced{}", forced_rank(st))?;
            }
            writeln!(out)?;
        }
    } else {
        let mut phase = None;
        for st in &read.steps {
            if phase != Some(st.phase) && !color {
                writeln!(
                    out,
                    "{}",
                    if st.phase == Phase::Think { "--- thinking ---" } else { "\n--- answer ---" }
                )?;
            }
            phase = Some(st.phase);
            let text = for_terminal(&st.text, true);
            if color && st.phase == Phase::Think {
                out.styled(&text, ContentStyle::new().dim().italic())?;
            } else {
                write!(out, "{text}")?;
            }
        }
        writeln!(out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Where a forced token stood among the model's own alternatives: ` (rank N)`, or ` (not in
/// the top K)`.
fn forced_rank(st: &crate::trace::Step) -> String {
    match st.top.iter().position(|t| t.id == st.token_id) {
        Some(k) => format!(" (rank {})", k + 1),
        None if st.top.is_empty() => String::new(),
        None => format!(" (not in the top {})", st.top.len()),
    }
}
