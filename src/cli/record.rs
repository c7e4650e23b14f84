//! `thinkdbg record`: run the engine like `run`, streaming every step into the store through
//! the writer thread; prints a one-line summary on stderr and the new run's id as the last line
//! of stdout.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};

use anyhow::{anyhow, bail, Result};
use clap::Args;

use super::args::GenArgs;
use crate::engine::generate::{EngineEvent, Prompt, Recorder, Tee};
use crate::engine::worker;
use crate::sanitize::for_terminal;
use crate::store::{self, Store, Target};
use crate::trace::{
    LogprobKind, ModelInfo, Run, RunId, RunSource, RunStatus, Session, SessionId, Timings,
};

#[derive(Debug, Clone, Args)]
pub struct RecordArgs {
    #[command(flatten)]
    pub gen: GenArgs,
    /// Add the run to this session (default: a new session for the prompt).
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// A label for the run, e.g. R1 or R1-Zero.
    #[arg(long)]
    pub label: Option<String>,
}

fn title_of(prompt: &Prompt) -> String {
    let text = match prompt {
        Prompt::Raw(t) => t.as_str(),
        Prompt::Chat(m) => {
            m.iter().rev().find(|m| m.role == "user").map_or("", |m| m.content.as_str())
        }
    };
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut title: String = one_line.chars().take(72).collect();
    if one_line.chars().count() > 72 {
        title.push('…');
    }
    title
}

/// Creates the session (or finds the given one) and a run in state `Recording`.
fn new_run(
    store: &Store,
    args: &RecordArgs,
    prompt: &Prompt,
    sampler: crate::trace::SamplerSpec,
) -> Result<Run> {
    let session = match &args.session {
        Some(s) => match store.resolve(s)? {
            Target::Session(id) => store.session(id)?.ok_or_else(|| anyhow!("no session '{s}'"))?,
            Target::Run(_) => bail!("'{s}' is a run; --session takes a session id"),
        },
        None => Session {
            id: SessionId(store.new_id()?),
            title: title_of(prompt),
            created_at: crate::trace::now_ms(),
            tags: Vec::new(),
            runs: Vec::new(),
        },
    };
    let run = Run {
        id: RunId(store.new_id()?),
        session: session.id,
        parent: None,
        label: args.label.clone(),
        source: RunSource::Embedded,
        model: ModelInfo::default(),
        messages: match prompt {
            Prompt::Chat(m) => m.clone(),
            Prompt::Raw(_) => Vec::new(),
        },
        rendered_prompt: match prompt {
            Prompt::Raw(t) => t.clone(),
            Prompt::Chat(_) => String::new(),
        },
        prompt_tokens: Vec::new(),
        sampler,
        logprob_kind: LogprobKind::Raw,
        status: RunStatus::Recording,
        stop: None,
        timings: Timings::default(),
        created_at: crate::trace::now_ms(),
    };
    let mut session = session;
    session.runs.push(run.id);
    store.put_session(&session)?;
    Ok(run)
}

pub fn run(args: &RecordArgs, store_flag: Option<&Path>, offline: bool) -> Result<ExitCode> {
    let request = args.gen.request()?;
    let path = args.gen.source()?.resolve(offline)?;
    let store = Arc::new(super::store_args::open(store_flag)?);
    let run = new_run(&store, args, &request.prompt, request.sampler.clone())?;
    let run_id = run.id;
    let (writer, writer_handle) = store::writer::start(store.clone(), run)?;
    let (tx, rx) = mpsc::channel();
    let recorders: Vec<Box<dyn Recorder>> = vec![Box::new(writer), Box::new(tx)];
    let cancel = Arc::new(AtomicBool::new(false));
    let engine = worker::spawn_run(
        path,
        args.gen.load_options(),
        request,
        Box::new(Tee(recorders)),
        cancel,
    )?;
    let bar =
        indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    let mut failed = None;
    for event in rx {
        match event {
            EngineEvent::Loading { done, total } => {
                bar.set_length(total);
                bar.set_position(done);
            }
            EngineEvent::Loaded { warnings, .. } => {
                bar.finish_and_clear();
                for w in warnings {
                    eprintln!("warning: {}", for_terminal(&w, false));
                }
            }
            EngineEvent::Step { step, .. } if step.index % 16 == 0 => {
                bar.set_message(format!("{} tokens", step.index));
            }
            EngineEvent::Failed(msg) => failed = Some(msg),
            _ => {}
        }
    }
    bar.finish_and_clear();
    let engine_result = engine.join().map_err(|_| anyhow!("the engine thread panicked"))?;
    let outcome = writer_handle.join().map_err(|_| anyhow!("the store writer panicked"))??;
    if let Some(msg) = failed {
        eprintln!("error: {msg} (run '{run_id}' kept as failed, {} steps)", outcome.steps_written);
        return Ok(ExitCode::FAILURE);
    }
    engine_result?;
    let r = &outcome.run;
    eprintln!(
        "{} steps, stop: {}, {:.1} tok/s, model {}, session {}",
        outcome.steps_written,
        r.stop.map_or("-", |s| s.as_str()),
        r.timings.decode_tok_s(),
        for_terminal(&r.model.name, false),
        r.session
    );
    println!("{run_id}");
    Ok(ExitCode::SUCCESS)
}
