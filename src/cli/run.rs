//! `thinkdbg run`: generate from a prompt on the embedded engine and stream the result:
//! text with think and answer visibly distinct, per-token logprobs and alternatives on request,
//! or exactly one JSON object per step with `--jsonl`. Everything meant for people other than
//! the generated text goes to stderr.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};

use anyhow::{anyhow, Context, Result};
use clap::Args;
use crossterm::style::{ContentStyle, Stylize};

use super::args::GenArgs;
use super::progress::LoadProgress;
use crate::engine::worker;
use crate::record::Event;
use crate::sanitize::{for_terminal, json_line, visible_token};
use crate::trace::{LayerRoute, Phase, Routing, Step};

/// One `--jsonl` line: the step and, for MoE models, how its token was routed.
#[derive(serde::Serialize)]
struct JsonStep<'a> {
    #[serde(flatten)]
    step: &'a Step,
    #[serde(skip_serializing_if = "Option::is_none")]
    routing: Option<&'a [LayerRoute]>,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub gen: GenArgs,
    /// Print one JSON object per generated step on stdout, and nothing else.
    #[arg(long, conflicts_with = "show_logprobs")]
    pub jsonl: bool,
    /// Print every step's logprob, probability, entropy and alternatives instead of plain text.
    #[arg(long)]
    pub show_logprobs: bool,
}

/// How generated text is shown.
struct Printer {
    color: bool,
    mode: Mode,
    phase: Option<Phase>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Text,
    Logprobs,
    Jsonl,
}

impl Printer {
    fn step(
        &mut self,
        out: &mut super::out::Out<impl Write>,
        step: &Step,
        routing: Option<&Routing>,
        stop_token: bool,
    ) -> Result<()> {
        match self.mode {
            Mode::Jsonl => {
                let line = JsonStep { step, routing: routing.map(|r| r.layers.as_slice()) };
                writeln!(out, "{}", json_line(&line)?)?
            }
            Mode::Logprobs => {
                let tok = visible_token(&step.text);
                let alts: Vec<String> = step
                    .top
                    .iter()
                    .map(|t| format!("{} {:.3}", quote(&visible_token(&t.text)), t.logprob))
                    .collect();
                writeln!(
                    out,
                    "{:>5} {:<6} {:<24} lp {:>8.4}  p {:>6.2}%  H {:>6.3}  | {}",
                    step.index,
                    step.phase.as_str(),
                    quote(&tok),
                    step.logprob,
                    100.0 * f64::from(step.logprob).exp(),
                    step.entropy,
                    alts.join(" | ")
                )?;
            }
            Mode::Text => {
                if stop_token {
                    return Ok(());
                }
                if self.phase != Some(step.phase) && !self.color {
                    // Without colour, mark where thinking starts and ends with a rule.
                    if self.phase.is_some() || step.phase == Phase::Think {
                        if step.phase == Phase::Answer {
                            write!(out, "\n--- answer ---\n")?;
                        } else {
                            writeln!(out, "--- thinking ---")?;
                        }
                    }
                }
                self.phase = Some(step.phase);
                let text = for_terminal(&step.text, true);
                if self.color && step.phase == Phase::Think {
                    out.styled(&text, ContentStyle::new().dim().italic())?;
                } else {
                    write!(out, "{text}")?;
                }
                out.flush()?;
            }
        }
        Ok(())
    }
}

fn quote(s: &str) -> String {
    format!("'{s}'")
}

pub fn run(args: &RunArgs, offline: bool) -> Result<ExitCode> {
    let request = args.gen.request()?;
    let path = args.gen.source()?.resolve(offline)?;
    let (tx, rx) = mpsc::channel();
    let cancel = Arc::new(AtomicBool::new(false));
    let interrupt = super::interrupt::Interrupt::cancels(&cancel)?;
    let handle =
        worker::spawn_run(path.clone(), args.gen.load_options(), request, Box::new(tx), cancel)?;
    let mut out = super::out::Out::stdout();
    let mode = if args.jsonl {
        Mode::Jsonl
    } else if args.show_logprobs {
        Mode::Logprobs
    } else {
        Mode::Text
    };
    let color = mode == Mode::Text && super::analysis::use_color();
    let mut printer = Printer { color, mode, phase: None };
    let progress = LoadProgress::new(&path);
    let mut stop_ids: Vec<u32> = Vec::new();
    let mut failed = None;
    for event in rx {
        match event {
            ev @ (Event::Loading { .. } | Event::Loaded { .. }) => {
                progress.show(&ev);
            }
            Event::Started { prompt_tokens, stop_ids: ids, .. } => {
                errln!("prompt: {} tokens", prompt_tokens.len());
                stop_ids = ids;
            }
            // `run` prints steps only; `record` stores the prompt's routing.
            Event::PromptRouting(_) => {}
            Event::Step { step, routing } => {
                printer.step(
                    &mut out,
                    &step,
                    routing.as_ref(),
                    stop_ids.contains(&step.token_id),
                )?;
            }
            Event::Finished { stop, timings } => {
                if mode == Mode::Text {
                    writeln!(out)?;
                }
                errln!(
                    "{} tokens, stop: {}, prefill {:.1} tok/s, decode {:.1} tok/s",
                    timings.generated_tokens,
                    stop.as_str(),
                    timings.prefill_tok_s(),
                    timings.decode_tok_s()
                );
            }
            Event::Failed(msg) | Event::Interrupted(msg) => failed = Some(msg),
        }
    }
    progress.finish();
    let joined = handle.join().map_err(|_| anyhow!("the engine thread panicked"))?;
    if let Some(msg) = failed {
        return Err(anyhow!(msg));
    }
    joined.with_context(|| format!("running '{}'", path.display()))?;
    Ok(interrupt.exit(ExitCode::SUCCESS))
}
