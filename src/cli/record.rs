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
use super::progress::LoadProgress;
use crate::engine::generate::Prompt;
use crate::engine::worker;
use crate::record::{Event, Tee};
use crate::sanitize::for_terminal;
use crate::store::{self, Store, Target};
use crate::trace::{Run, RunId, Session, SessionId};

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
    #[command(flatten)]
    pub remote: super::record_remote::RemoteArgs,
    /// Watch the run in the terminal UI as it is recorded (quitting the UI stops the run).
    #[arg(long)]
    pub tui: bool,
}

fn title_of(prompt: &Prompt) -> String {
    let text = match prompt {
        // The user's message inside the chat markup, not `<|im_start|>system …`.
        Prompt::Raw(t) => crate::analysis::user_text_of_rendered(t),
        Prompt::Chat(m) => {
            m.iter().rev().find(|m| m.role == "user").map_or("", |m| m.content.as_str()).to_string()
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
pub(super) fn new_run(
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
    let mut run = Run::new_recording(RunId(store.new_id()?), session.id, sampler);
    run.label = args.label.clone();
    match prompt {
        Prompt::Chat(m) => run.messages = m.clone(),
        Prompt::Raw(t) => run.rendered_prompt = t.clone(),
    }
    let mut session = session;
    session.runs.push(run.id);
    store.put_session(&session)?;
    Ok(run)
}

pub fn run(args: &RecordArgs, store_flag: Option<&Path>, offline: bool) -> Result<ExitCode> {
    if args.remote.endpoint.is_some() {
        return super::record_remote::run(args, store_flag);
    }
    if args.tui {
        crate::tui::terminal::check()?;
    }
    let request = args.gen.request()?;
    let path = args.gen.source()?.resolve(offline)?;
    let store = super::store_args::open(store_flag)?;
    let run = new_run(&store, args, &request.prompt, request.sampler.clone())?;
    let run_id = run.id;
    let (writer, writer_handle) = store::writer::start(store.clone(), run)?;
    let cancel = Arc::new(AtomicBool::new(false));
    if args.tui {
        // The UI follows the run through its job channel, as it follows the runs it starts:
        // it waits for the writer when the run ends, and quitting it cancels the generation.
        let mut jobs = crate::tui::jobs::Jobs::new(Default::default());
        let ui = jobs.recorder(run_id);
        let engine = worker::spawn_run(
            path,
            args.gen.load_options(),
            request,
            Box::new(Tee::new(writer, ui)),
            cancel.clone(),
        )?;
        jobs.adopt(run_id, cancel.clone(), writer_handle);
        let ui = crate::tui::run(
            store.clone(),
            crate::tui::Options { live: Some((jobs, run_id)), ..Default::default() },
        );
        cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = engine.join();
        ui?;
        let stop = store.run(run_id)?.and_then(|r| r.stop).map_or("-", |s| s.as_str());
        errln!("{} steps, stop: {stop}", store.step_count(run_id));
        outln!("{run_id}");
        return Ok(ExitCode::SUCCESS);
    }
    let interrupt = super::interrupt::Interrupt::cancels(&cancel)?;
    let (tx, rx) = mpsc::channel();
    let progress = LoadProgress::new(&path);
    let engine = worker::spawn_run(
        path,
        args.gen.load_options(),
        request,
        Box::new(Tee::new(writer, tx)),
        cancel.clone(),
    )?;
    let mut failed = None;
    for event in rx {
        match event {
            Event::Failed(msg) => failed = Some(msg),
            ev => {
                progress.show(&ev);
            }
        }
    }
    progress.finish();
    let engine_result = engine.join().map_err(|_| anyhow!("the engine thread panicked"))?;
    let outcome = writer_handle.join().map_err(|_| anyhow!("the store writer panicked"))??;
    if let Some(msg) = failed {
        errln!("error: {msg} (run '{run_id}' kept as failed, {} steps)", outcome.steps_written);
        return Ok(ExitCode::FAILURE);
    }
    engine_result?;
    let r = &outcome.run;
    errln!(
        "{} steps, stop: {}, {:.1} tok/s, model {}, session {}",
        outcome.steps_written,
        r.stop.map_or("-", |s| s.as_str()),
        r.timings.decode_tok_s(),
        for_terminal(&r.model.name, false),
        r.session
    );
    if interrupt.seen() {
        errln!("stopped: run '{run_id}' is kept as cancelled");
    } else {
        super::analysis::after_record(&store, run_id);
    }
    outln!("{run_id}");
    Ok(interrupt.exit(ExitCode::SUCCESS))
}
