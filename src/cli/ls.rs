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
    /// One JSON object per run: {"session","run","label","model","status","steps","created",
    /// "source"} (source: embedded, remote, or the format of an imported file).
    #[arg(long)]
    pub json: bool,
}

pub fn status_name(s: &RunStatus) -> &'static str {
    s.as_str()
}

/// `text` in exactly `width` terminal columns: cut with `…` when wider (wide characters count
/// two columns), padded with spaces when narrower, so that the columns after it never shift.
pub fn fit(text: &str, width: usize) -> String {
    use unicode_width::UnicodeWidthChar;
    let total: usize = text.chars().map(|c| c.width().unwrap_or(0)).sum();
    let mut out = String::new();
    let mut used = 0;
    if total <= width {
        out.push_str(text);
        used = total;
    } else {
        for c in text.chars() {
            let w = c.width().unwrap_or(0);
            if used + w + 1 > width {
                break;
            }
            out.push(c);
            used += w;
        }
        out.push('…');
        used += 1;
    }
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(used)));
    out
}

/// The model column: an imported run says so, with its format and the model its file names.
fn model_column(r: &crate::trace::Run) -> String {
    match &r.source {
        crate::trace::RunSource::File { format, .. } if r.model.name.is_empty() => {
            format!("imported {format}")
        }
        crate::trace::RunSource::File { format, .. } => {
            format!("{} (imported {format})", r.model.name)
        }
        _ => r.model.name.clone(),
    }
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
                    "source": r.source.short(),
                });
                outln!("{}", json_line(&v)?);
            } else {
                outln!(
                    "  {} {} {} {:>6} tok  {:<11}  {}",
                    fit(&r.id.to_string(), 8),
                    fit(&for_terminal(r.label.as_deref().unwrap_or("-"), false), 16),
                    fit(&for_terminal(&model_column(r), false), 36),
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

#[cfg(test)]
mod tests {
    use super::fit;

    #[test]
    fn fit_cuts_and_pads_to_display_columns() {
        assert_eq!(fit("R1", 5), "R1   ");
        assert_eq!(fit("abcdef", 5), "abcd…");
        assert_eq!(fit("abcde", 5), "abcde");
        // Wide characters take two columns: three of them and the ellipsis fill 7 of 8.
        assert_eq!(fit("深度求索推理模型", 8), "深度求… ");
        assert_eq!(fit("", 0), "");
    }
}
