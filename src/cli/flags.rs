//! `thinkdbg flags RUN`: a run's flags (automatic and the user's), recomputed first when the
//! thresholds changed, one per line or as JSON lines; `--kind` filters.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use crossterm::style::{ContentStyle, Stylize};

use super::analysis::{config, ensure, note_recomputed, run_id, use_color};
use super::store_args::open;
use crate::sanitize::{for_terminal, json_line};
use crate::trace::{Origin, Severity};

/// The kind names `--kind` accepts.
pub const KINDS: &[&str] = &[
    "language_switch",
    "low_confidence",
    "entropy_spike",
    "repetition",
    "backtrack",
    "think_integrity",
    "answer_mismatch",
    "user",
];

#[derive(Debug, Clone, Args)]
pub struct FlagsArgs {
    /// The run id (as `thinkdbg ls` prints it).
    pub run: String,
    /// Only flags of these kinds (repeat or separate with commas): language_switch,
    /// low_confidence, entropy_spike, repetition, backtrack, think_integrity,
    /// answer_mismatch, user.
    #[arg(long, value_delimiter = ',', value_name = "KIND")]
    pub kind: Vec<String>,
    /// One JSON object per flag.
    #[arg(long)]
    pub json: bool,
    /// Recompute the automatic flags even if the stored ones are current.
    #[arg(long)]
    pub recompute: bool,
}

pub fn run(args: &FlagsArgs, store_flag: Option<&Path>) -> Result<ExitCode> {
    for k in &args.kind {
        if !KINDS.contains(&k.as_str()) {
            bail!("unknown flag kind '{k}'; one of: {}", KINDS.join(", "));
        }
    }
    let cfg = config()?;
    let store = open(store_flag)?;
    let id = run_id(&store, &args.run)?;
    let a = ensure(&store, id, &cfg, args.recompute)?;
    note_recomputed(&a, id);
    let color = use_color();
    let mut out = super::out::Out::stdout();
    let wanted = |name: &str| {
        args.kind.is_empty()
            || args.kind.iter().any(|k| k == name || (k == "user" && name.starts_with("user:")))
    };
    for f in a.flags.iter().filter(|f| wanted(&f.kind.as_str())) {
        if args.json {
            writeln!(out, "{}", json_line(f)?)?;
            continue;
        }
        let excerpt: String = a
            .steps
            .get(f.start as usize..(f.end as usize).min(a.steps.len()))
            .unwrap_or(&[])
            .iter()
            .map(|s| s.text.as_str())
            .collect();
        let excerpt = excerpt.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut short: String = excerpt.chars().take(60).collect();
        if excerpt.chars().count() > 60 {
            short.push('…');
        }
        let sev = f.severity.as_str();
        let sev_text = format!("{sev:<5}");
        let style = match (color, f.severity) {
            (false, _) => ContentStyle::new(),
            (true, Severity::Error) => ContentStyle::new().red().bold(),
            (true, Severity::Warn) => ContentStyle::new().yellow(),
            (true, Severity::Info) => ContentStyle::new().dim(),
        };
        let origin = if f.origin == Origin::User { " (user)" } else { "" };
        write!(out, "{:>6}..{:<6} ", f.start, f.end)?;
        out.styled(&sev_text, style)?;
        writeln!(
            out,
            " {:<15} {}{origin}  | {}",
            for_terminal(&f.kind.as_str(), false),
            for_terminal(&f.detail, false),
            for_terminal(&short, false)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
