//! `thinkdbg bench`: measured speed, printed as a table (and `--json FILE`). Parts so far:
//! `store`, the sustained rate at which the store writer keeps steps (top-k alternatives and
//! MoE routing included) against sled's raw batch-insert rate for values of the same size,
//! measured in the same run on the same disk.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::engine::generate::{EngineEvent, Recorder};
use crate::store::{codec, writer, Store};
use crate::trace::{
    LayerRoute, Phase, Routing, Run, RunId, SamplerSpec, Session, SessionId, Step, StopReason,
    Timings, TopToken,
};

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub part: BenchPart,
    /// Also write the results as JSON here.
    #[arg(long, global = true, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BenchPart {
    /// Steps per second the store writer sustains, against sled's raw insert rate.
    Store {
        /// Steps to write.
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..))]
        steps: u32,
        /// Alternatives per step.
        #[arg(long, default_value_t = 20)]
        top: usize,
        /// MoE layers with routing per step (58 for DeepSeek-R1; 0 for a dense model).
        #[arg(long, default_value_t = 58)]
        layers: u16,
        /// Experts per token per layer (8 for DeepSeek-R1).
        #[arg(long, default_value_t = 8)]
        experts: u16,
        /// Where to create the scratch stores (default: a temporary directory).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Frame time and keypress-to-frame time of the trace screen on a synthetic run.
    Render {
        /// Tokens in the synthetic run.
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
        steps: u32,
        #[arg(long, default_value_t = 160)]
        width: u16,
        #[arg(long, default_value_t = 48)]
        height: u16,
        /// Frames (and key presses) to time.
        #[arg(long, default_value_t = 300)]
        frames: usize,
    },
    /// Recording overhead per token from an OpenAI-compatible server, against the raw stream.
    Remote(super::bench_remote::RemoteBenchArgs),
}

fn synthetic_step(i: u32, top: usize, layers: u16, experts: u16) -> (Step, Option<Routing>) {
    let step = Step {
        index: i,
        token_id: (i * 7919) % 151_936,
        text: " token".into(),
        logprob: -0.37,
        entropy: 1.25,
        phase: Phase::Think,
        t_us: u64::from(i) * 20_000,
        top: (0..top)
            .map(|k| TopToken {
                id: (i + k as u32 * 31) % 151_936,
                text: " alt".into(),
                logprob: -1.0 - k as f32,
            })
            .collect(),
    };
    let routing = (layers > 0).then(|| Routing {
        layers: (0..layers)
            .map(|l| LayerRoute {
                layer: l + 3,
                experts: (0..experts).map(|e| (e * 29 + l + i as u16) % 256).collect(),
                weights: Some((0..experts).map(|e| 0.3 / (1.0 + f32::from(e))).collect()),
            })
            .collect(),
    });
    (step, routing)
}

fn scratch_run(store: &Store) -> Result<Run> {
    let session = Session {
        id: SessionId(store.new_id()?),
        title: "bench".into(),
        created_at: 0,
        tags: vec![],
        runs: vec![],
    };
    let run = Run::new_recording(RunId(store.new_id()?), session.id, SamplerSpec::default());
    store.put_session(&Session { runs: vec![run.id], ..session })?;
    Ok(run)
}

fn bench_store(
    steps: u32,
    top: usize,
    layers: u16,
    experts: u16,
    dir: &Path,
) -> Result<serde_json::Value> {
    let items: Vec<(Step, Option<Routing>)> =
        (0..steps).map(|i| synthetic_step(i, top, layers, experts)).collect();
    // Raw sled: the same encoded bytes, batch-inserted 64 at a time, one flush at the end.
    let encoded: Vec<(Vec<u8>, Option<Vec<u8>>)> = items
        .iter()
        .map(|(s, r)| Ok((codec::encode(s)?, r.as_ref().map(codec::encode).transpose()?)))
        .collect::<Result<_>>()?;
    let bytes_per_step =
        encoded.iter().map(|(s, r)| s.len() + r.as_ref().map_or(0, Vec::len)).sum::<usize>()
            / items.len().max(1);
    let raw_s = crate::store::raw_batch_insert_seconds(&dir.join("raw"), &encoded)?;

    // The store writer, fed as fast as the engine could: encoding, batching, checkpoints.
    let store = Arc::new(Store::open(&dir.join("store"))?);
    let run = scratch_run(&store)?;
    let (mut rec, handle) = writer::start(store.clone(), run)?;
    let start = Instant::now();
    for (step, routing) in items {
        rec.record(EngineEvent::Step { step, routing });
    }
    rec.record(EngineEvent::Finished { stop: StopReason::MaxTokens, timings: Timings::default() });
    drop(rec);
    let outcome = handle.join().map_err(|_| anyhow::anyhow!("the writer panicked"))??;
    let writer_s = start.elapsed().as_secs_f64();
    let raw_rate = f64::from(steps) / raw_s;
    let writer_rate = outcome.steps_written as f64 / writer_s;
    println!("store: {steps} steps, top-{top}, routing {layers} layers x {experts} experts, {bytes_per_step} bytes/step encoded");
    println!("  sled raw apply_batch(64) + flush   {raw_rate:>10.0} steps/s");
    println!(
        "  store writer (encode, batch, flush) {writer_rate:>10.0} steps/s   ({:.2}x raw)",
        writer_rate / raw_rate
    );
    Ok(serde_json::json!({
        "part": "store", "steps": steps, "top": top, "layers": layers, "experts": experts,
        "bytes_per_step": bytes_per_step, "sled_raw_steps_per_s": raw_rate, "writer_steps_per_s": writer_rate,
    }))
}

pub fn run(args: &BenchArgs) -> Result<ExitCode> {
    let report = match &args.part {
        BenchPart::Store { steps, top, layers, experts, dir } => {
            let tmp = match dir {
                Some(d) => tempfile::tempdir_in(d),
                None => tempfile::tempdir(),
            }
            .context("creating a scratch directory")?;
            bench_store(*steps, *top, *layers, *experts, tmp.path())?
        }
        BenchPart::Render { steps, width, height, frames } => {
            super::bench_render::bench_render(*steps, *width, *height, *frames)?
        }
        BenchPart::Remote(a) => {
            let tmp = tempfile::tempdir().context("creating a scratch directory")?;
            super::bench_remote::bench(a, tmp.path())?
        }
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing '{}'", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
