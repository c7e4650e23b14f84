//! The command line: clap arguments (raw) turned into validated settings, one file per
//! subcommand, and logging to a file. This module and `main` are the only users of `anyhow`.

/// `println!` through `out::print_out`: sanitized (see `out`).
macro_rules! outln {
    () => { $crate::cli::out::print_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::out::print_out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` through `out::print_out`: sanitized (see `out`).
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::out::print_out(format_args!($($arg)*)) };
}

/// `eprintln!` through `out::print_err`: sanitized (see `out`).
macro_rules! errln {
    ($($arg:tt)*) => { $crate::cli::out::print_err(format_args!("{}\n", format_args!($($arg)*))) };
}

mod analysis;
mod args;
mod bench;
mod bench_decode;
mod bench_dynamics;
mod bench_remote;
mod bench_render;
mod bench_score;
mod diff;
mod experiment;
mod experts;
mod export;
mod flags;
mod fork;
mod forks;
mod import;
mod interrupt;
mod lens;
mod logging;
mod ls;
mod model;
pub mod out;
mod probe;
mod progress;
mod record;
mod record_remote;
mod replay;
mod resample;
mod rm;
mod run;
mod score;
mod serve;
mod show;
mod stats;
mod store_args;
mod store_cmd;
mod tui;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use args::GenArgs;

/// The help heading of the options every subcommand takes: listed once, apart from the
/// subcommand's own.
const GLOBAL: &str = "Global options";

/// Where the user's files are, for `--help`.
fn files_help() -> String {
    let shown = |p: Option<std::path::PathBuf>| {
        p.map_or_else(|| "the platform config directory".into(), |p| p.display().to_string())
    };
    format!(
        "Files: {} sets the analysis thresholds, [generate] max_tokens and [resample] samples \
         (THINKDBG_CONFIG names another file); keymap.toml and themes/*.toml in {} set the \
         terminal UI's keys and colours. Each overrides the built-in defaults key by key.",
        shown(crate::analysis::config::user_config_path()),
        shown(crate::tui::config_dir())
    )
}

/// A terminal debugger for reasoning language models.
#[derive(Debug, Parser)]
#[command(name = "thinkdbg", version, about, long_about = None, after_help = files_help())]
pub struct Cli {
    /// Write logs to this file (default: thinkdbg.log in the data directory).
    #[arg(help_heading = GLOBAL, long, global = true, env = "THINKDBG_LOG_FILE", value_name = "PATH")]
    pub log_file: Option<std::path::PathBuf>,
    /// Never download anything; models must already be cached.
    #[arg(help_heading = GLOBAL, long, global = true, env = "THINKDBG_OFFLINE")]
    pub offline: bool,
    /// The session store (default: 'store' in the platform data directory).
    #[arg(help_heading = GLOBAL, long, global = true, env = "THINKDBG_STORE", value_name = "PATH")]
    pub store: Option<std::path::PathBuf>,
    /// Compute threads (default: physical cores; same as CANDLE_NUM_THREADS).
    #[arg(help_heading = GLOBAL, long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    /// Element type of the KV cache of the embedded engine: f16 (the default on the CPU, as
    /// llama.cpp's: half the memory and the bytes read per token) or f32 (the default on a
    /// GPU; what an F32 model needs to match llama.cpp run with an f32 cache); also
    /// THINKDBG_KV_CACHE.
    #[arg(help_heading = GLOBAL, long, global = true, value_name = "TYPE", value_parser = ["f16", "f32"])]
    pub kv_cache: Option<String>,
    /// Import the sample sessions (real runs of the demo model) into the store, then open
    /// the terminal UI (without a terminal: import only).
    #[arg(long)]
    pub import_samples: bool,
    /// Terminal UI theme: dark, light, high-contrast, colorblind or a user theme (also
    /// THINKDBG_THEME).
    #[arg(help_heading = GLOBAL, long, global = true, value_name = "NAME")]
    pub theme: Option<String>,
    /// The model the terminal UI re-runs, forks and resamples with (default: 'demo'); it must
    /// be the one the run was recorded with.
    #[arg(long, env = "THINKDBG_MODEL", value_name = "MODEL")]
    pub model: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate from a prompt, streaming the text (think and answer distinct) or one JSON
    /// object per token.
    Run(run::RunArgs),
    /// Generate like `run`, recording every step into the store; prints the run id last.
    Record(record::RecordArgs),
    /// List sessions and runs.
    Ls(ls::LsArgs),
    /// Show a recorded run's transcript (or its per-token table).
    Show(show::ShowArgs),
    /// Delete runs or sessions.
    Rm(rm::RmArgs),
    /// Export a run or session: JSONL (lossless), Markdown or HTML.
    Export(export::ExportArgs),
    /// Re-run a run's prefix, force another token at a step, and record the child run.
    Fork(fork::ForkArgs),
    /// Sample N continuations from a step of a run and count how often the answer changes.
    Resample(resample::ResampleArgs),
    /// Score a run's text under a local model (teacher forcing, one chunked prefill) and record
    /// that model's view as a child run: logprob, entropy, top-k and routing of every token.
    Score(score::ScoreArgs),
    /// Import a trace: a thinkdbg export, an OpenAI exchange, a captured SSE stream, a JSONL or
    /// Parquet dataset, a text file with <think> (all or nothing, under new ids).
    Import(import::ImportArgs),
    /// A run's flags: language switches, low confidence, loops, backtracks, think integrity.
    Flags(flags::FlagsArgs),
    /// A run's statistics.
    Stats(stats::StatsArgs),
    /// A run's forking tokens (highest entropy), optionally ranked by resampling them.
    Forks(forks::ForksArgs),
    /// Answer-now probe: at each reasoning step, the answer the model would give right now.
    Probe(probe::ProbeArgs),
    /// Cognitive experts of MoE runs: nPMI between experts and think / backtrack / language.
    Experts(experts::ExpertsArgs),
    /// Logit lens: what every layer predicts for the token at a step.
    Lens(lens::LensArgs),
    /// Two runs aligned, the first divergence marked (`--stat` for a summary).
    Diff(diff::DiffArgs),
    /// Measure speed: decode, store, analysis, diff, render (all by default), remote.
    Bench(bench::BenchArgs),
    /// Fetch the demo model or describe a GGUF file.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Check a store, or salvage the runs of a damaged one into a new store.
    #[command(subcommand)]
    Store(store_cmd::StoreCommand),
    /// Run prompt variants N times each (paired seeds) and compare them with intervals.
    Experiment(experiment::ExperimentArgs),
}

/// Parses the arguments, runs the command and prints any error as one line on stderr.
pub fn main() -> ExitCode {
    stdout_failures_unwind_quietly();
    let mut outcome = run_caught(Cli::parse());
    // A holder that was exiting when it was handed the command: open the store here instead.
    for _ in 0..20 {
        let Ok(Err(e)) = &outcome else { break };
        let Some(held) = e.downcast_ref::<store_args::HeldElsewhere>() else { break };
        match serve::forward(&held.0) {
            Err(gone) if gone.downcast_ref::<serve::HolderGone>().is_some() => {
                std::thread::sleep(std::time::Duration::from_millis(20));
                outcome = run_caught(Cli::parse());
            }
            forwarded => {
                outcome = Ok(Ok(Forwarded(forwarded)));
                break;
            }
        }
    }
    serve::cleanup();
    match outcome {
        Ok(Ok(Forwarded(forwarded))) => match forwarded {
            Ok(code) => code,
            // The reader is done (`… | head`): not a fault.
            Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
            Err(e) => {
                errln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Ok(Ok(Ran(code))) => code,
        Ok(Err(err)) => {
            // A closed stdout (e.g. `| head`) is not an error worth reporting.
            if broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            // Errors quote what they found (GGUF strings, a template's exception, a server's
            // message): untrusted text, made safe here for every error at once.
            let msg = format!("{err:#}");
            errln!("error: {}", crate::sanitize::for_terminal(&msg, true));
            ExitCode::FAILURE
        }
        Err(payload) => {
            let text = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or_default();
            match text.strip_prefix(STDOUT_FAILED) {
                // The reader is done (`thinkdbg show … | head`): not a fault.
                Some(why) if why.contains("Broken pipe") => ExitCode::SUCCESS,
                Some(why) => {
                    errln!("error: cannot write to standard output{why}");
                    ExitCode::FAILURE
                }
                None => std::panic::resume_unwind(payload),
            }
        }
    }
}

/// Whether `err` comes from writing to a closed pipe.
fn broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// How `println!` words its panic when stdout cannot be written.
const STDOUT_FAILED: &str = "failed printing to stdout";

/// `println!` panics when stdout cannot be written: a closed pipe (`thinkdbg show … | head`),
/// a full disk (`thinkdbg ls > /dev/full`). Such a panic is not a crash: the hook stays silent,
/// the stack unwinds (the store is closed as usual) and `main` turns it into an exit code.
/// Other panics keep the previous hook.
fn stdout_failures_unwind_quietly() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // The message is formatted, so it is read from the hook info's text (the payload is
        // not a plain string here).
        if !info.to_string().contains(STDOUT_FAILED) {
            previous(info);
        }
    }));
}

/// How a command ended here: it ran, or it was handed to the process holding the store.
enum Outcome {
    Ran(ExitCode),
    Forwarded(anyhow::Result<ExitCode>),
}
use Outcome::{Forwarded, Ran};

/// `run_cli` with its panics caught (`main` sorts out the ones from writing to stdout).
fn run_caught(cli: Cli) -> std::thread::Result<anyhow::Result<Outcome>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_cli(cli).map(Ran)))
}

/// The environment variable with which candle's thread pool takes its spin limit.
const SPIN_LIMIT_VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";

/// How many times (`spin_loop`) an idle worker of candle's thread pool checks for work before
/// it sleeps, unless the user sets `CANDLE_BARRIER_POOL_SPIN_LIMIT`: 4000, about 50 µs on the
/// development machine, against candle's 25 000 (0.3–0.4 ms). A decode step's matmuls follow
/// each other within microseconds, so the workers still never sleep inside one; but candle's
/// float matmuls run on rayon's threads, and a worker spinning beside them for its whole limit
/// took a core from them. Measured when a prompt's attention products were such matmuls (7% of
/// a 2k-token prefill's samples spinning; now `models/dense/flash.rs` runs them on the pool,
/// but other float ops and the fallback attention still use rayon): row b's 2k prefill, 2
/// threads, alternating single runs, 285–310 tok/s at 25 000, 312–333 at 1000, 2000 or 5000;
/// decode within the noise.
const POOL_SPIN_LIMIT: u32 = 4000;

fn run_cli(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(n) = cli.threads {
        anyhow::ensure!(n > 0, "'--threads' must be at least 1");
        // Read once by candle at its first operation, which has not happened yet.
        std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    }
    if let Some(t) = &cli.kv_cache {
        // Read by the engine when it loads a model (`engine::models::kv_cache_dtype`).
        std::env::set_var("THINKDBG_KV_CACHE", t);
    }
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // candle asks for rayon's thread count in every float matmul; unset, that reads
        // /proc/cpuinfo each time (4% of a decode step in a profile). Same count as before.
        let n = cli.threads.unwrap_or_else(candle_core::utils::get_num_threads);
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    if std::env::var_os(SPIN_LIMIT_VAR).is_none() {
        // Read once by candle when it starts its thread pool, which has not happened yet.
        std::env::set_var(SPIN_LIMIT_VAR, POOL_SPIN_LIMIT.to_string());
    }
    let _guard = logging::init(cli.log_file.as_deref());
    dispatch(cli)
}

/// Runs a parsed command (here, or for another process: `serve`).
fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    if serve_refuses(&cli) && out::is_redirected() {
        anyhow::bail!(
            "the terminal UI cannot be handed to the process that holds the store; close it first"
        );
    }
    match cli.command {
        Some(Command::Run(args)) => run::run(&args, cli.offline),
        Some(Command::Model(cmd)) => model::run(&cmd, cli.offline),
        Some(Command::Record(args)) => record::run(&args, cli.store.as_deref(), cli.offline),
        Some(Command::Bench(args)) => bench::run(&args, cli.offline),
        Some(Command::Ls(args)) => ls::run(&args, cli.store.as_deref()),
        Some(Command::Show(args)) => show::run(&args, cli.store.as_deref()),
        Some(Command::Rm(args)) => rm::run(&args, cli.store.as_deref()),
        Some(Command::Export(args)) => export::run(&args, cli.store.as_deref()),
        Some(Command::Fork(args)) => fork::run(&args, cli.store.as_deref(), cli.offline),
        Some(Command::Resample(args)) => resample::run(&args, cli.store.as_deref(), cli.offline),
        Some(Command::Score(args)) => score::run(&args, cli.store.as_deref(), cli.offline),
        Some(Command::Import(args)) => import::run(&args, cli.store.as_deref()),
        Some(Command::Flags(args)) => flags::run(&args, cli.store.as_deref()),
        Some(Command::Stats(args)) => stats::run(&args, cli.store.as_deref()),
        Some(Command::Forks(args)) => forks::run(&args, cli.store.as_deref(), cli.offline),
        Some(Command::Probe(args)) => probe::run(&args, cli.store.as_deref(), cli.offline),
        Some(Command::Experts(args)) => experts::run(&args, cli.store.as_deref()),
        Some(Command::Lens(args)) => lens::run(&args, cli.store.as_deref(), cli.offline),
        Some(Command::Diff(args)) => diff::run(&args, cli.store.as_deref()),
        Some(Command::Store(cmd)) => store_cmd::run(&cmd, cli.store.as_deref()),
        Some(Command::Experiment(args)) => {
            experiment::run(&args, cli.store.as_deref(), cli.offline)
        }
        None => {
            let model =
                crate::tui::jobs::ModelChoice { spec: cli.model.clone(), offline: cli.offline };
            tui::run(cli.store.as_deref(), cli.import_samples, cli.theme.as_deref(), model)
        }
    }
}

/// Commands another process cannot run for this one: the terminal UI needs this terminal.
fn serve_refuses(cli: &Cli) -> bool {
    match &cli.command {
        None => true,
        Some(Command::Record(r)) => r.tui,
        _ => false,
    }
}

/// Every path argument of a command (made absolute when the command is run for another
/// process, whose working directory differs: `serve`).
fn for_each_path(cmd: &mut Command, f: &mut dyn FnMut(&mut std::path::PathBuf)) {
    match cmd {
        Command::Import(a) => f(&mut a.file),
        Command::Export(a) => {
            if let Some(p) = a.output.as_mut() {
                f(p);
            }
        }
        Command::Run(a) => a.gen.for_each_path(f),
        Command::Record(a) => a.gen.for_each_path(f),
        Command::Fork(a) => a.replay.for_each_path(f),
        Command::Resample(a) => a.replay.for_each_path(f),
        Command::Forks(a) => a.replay.for_each_path(f),
        Command::Probe(a) => a.for_each_path(f),
        Command::Lens(a) => a.for_each_path(f),
        Command::Score(a) => a.for_each_path(f),
        Command::Store(store_cmd::StoreCommand::Salvage { to }) => f(to),
        Command::Experiment(a) => a.for_each_path(f),
        _ => {}
    }
}
