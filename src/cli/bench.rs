//! `thinkdbg bench`: measured speed, printed as a table (and `--json FILE`). Parts so far:
//! `store`, the sustained rate at which the store writer keeps steps (top-k alternatives and
//! MoE routing included) against sled's raw batch-insert rate for values of the same size,
//! measured in the same run on the same disk. `analysis`: segmentation, flags and statistics
//! of one synthetic run; `diff`: comparison of two synthetic runs, nearly equal and unrelated;
//! `decode` (`bench_decode`), `render` (`bench_render`), `remote` (`bench_remote`), `dynamics`
//! (`bench_dynamics`: the answer-now probe and the logit lens). Without a
//! part, every part that needs no server runs with its defaults.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::record::{Event, Recorder};
use crate::store::{codec, routing_codec, writer, Store};
use crate::trace::{
    LayerRoute, Phase, Routing, Run, RunId, SamplerSpec, Session, SessionId, Step, StopReason,
    Timings, TopToken,
};

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The part to run; without one, every part that needs no server runs with its defaults
    /// (decode on the demo model, store, analysis, diff, render, dynamics).
    #[command(subcommand)]
    pub part: Option<BenchPart>,
    /// Also write the results as JSON here.
    #[arg(long, global = true, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BenchPart {
    /// Decode and prefill tok/s of the engine, recording off and on (top-20 into a store).
    Decode(super::bench_decode::DecodeArgs),
    /// Tokens per second of scoring a 4k-token trace, against the engine's prefill and
    /// llama.cpp's prompt processing of the same tokens.
    Score(super::bench_score::ScoreBenchArgs),
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
    /// Recording overhead per token from an OpenAI-compatible server, against the raw stream.
    Remote(super::bench_remote::RemoteBenchArgs),
    /// Time to analyse one synthetic reasoning run (segments, flags, statistics).
    Analysis {
        /// Steps in the run.
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
        steps: u32,
    },
    /// Time to compare two synthetic runs: nearly equal (a few forks) and unrelated.
    Diff {
        /// Steps in each run.
        #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u32).range(1..))]
        steps: u32,
        /// The alignment's time budget in milliseconds (as `thinkdbg diff --budget-ms`).
        #[arg(long, default_value_t = 2000)]
        budget_ms: u64,
    },
    /// Cost of the answer-now probe (per boundary, against a decode step) and the logit lens
    /// (per token) on a model.
    Dynamics(super::bench_dynamics::DynamicsArgs),
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
                router: None,
            })
            .collect(),
    });
    (step, routing)
}

/// A session with one run in state `Recording`, for benchmarks that write into a store.
pub fn scratch_run(store: &Store, title: &str) -> Result<Run> {
    let session = Session {
        id: SessionId(store.new_id()?),
        title: title.into(),
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
        .map(|(s, r)| {
            Ok((codec::encode(s)?, r.as_ref().map(routing_codec::encode_routing).transpose()?))
        })
        .collect::<Result<_>>()?;
    let bytes_per_step =
        encoded.iter().map(|(s, r)| s.len() + r.as_ref().map_or(0, Vec::len)).sum::<usize>()
            / items.len().max(1);
    let raw_s = crate::store::raw_batch_insert_seconds(&dir.join("raw"), &encoded)?;

    // The store writer, fed as fast as the engine could: encoding, batching, checkpoints.
    let store = Arc::new(Store::open_scratch(&dir.join("store"))?);
    let run = scratch_run(&store, "bench")?;
    let (mut rec, handle) = writer::start(store.clone(), run)?;
    let start = Instant::now();
    for (step, routing) in items {
        rec.record(Event::Step { step, routing });
    }
    rec.record(Event::Finished { stop: StopReason::MaxTokens, timings: Timings::default() });
    drop(rec);
    let outcome = handle.join().map_err(|_| anyhow::anyhow!("the writer panicked"))??;
    let writer_s = start.elapsed().as_secs_f64();
    let raw_rate = f64::from(steps) / raw_s;
    let writer_rate = outcome.steps_written as f64 / writer_s;
    outln!("store: {steps} steps, top-{top}, routing {layers} layers x {experts} experts, {bytes_per_step} bytes/step encoded");
    outln!("  sled raw apply_batch(64) + flush   {raw_rate:>10.0} steps/s");
    outln!(
        "  store writer (encode, batch, flush) {writer_rate:>10.0} steps/s   ({:.2}x raw)",
        writer_rate / raw_rate
    );
    Ok(serde_json::json!({
        "part": "store", "steps": steps, "top": top, "layers": layers, "experts": experts,
        "bytes_per_step": bytes_per_step, "sled_raw_steps_per_s": raw_rate, "writer_steps_per_s": writer_rate,
    }))
}

/// A synthetic reasoning run of `n` steps: English sentences and paragraphs, "Wait" and
/// "Let me check" steps, Chinese sentences now and then, varied logprobs and entropies, a
/// think block over the first 90% and an answer after it. `seed` varies the words.
pub fn synthetic_reasoning(n: u32, seed: u64) -> Vec<Step> {
    const WORDS: &[&str] = &[
        " the",
        " sum",
        " of",
        " we",
        " need",
        " to",
        " compute",
        " answer",
        " is",
        " number",
        " first",
        " then",
        " so",
        " value",
        " equation",
        " gives",
        " check",
        " each",
        " term",
        " and",
        " result",
        " x",
        " 42",
        " divide",
        " by",
        " two",
        " pairs",
        " total",
    ];
    const OPENERS: &[&[&str]] = &[
        &["Wait", ","],
        &["Let", " me", " check"],
        &["Hmm", ","],
        &["So"],
        &["我们", "再", "检查", "一下", "。"],
        &["Alternatively", ","],
    ];
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut next = move || {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) as usize
    };
    let think_end = (n as usize) * 9 / 10;
    let mut texts: Vec<&str> = Vec::with_capacity(n as usize);
    texts.push("<think>");
    while texts.len() < n as usize {
        if texts.len() == think_end {
            texts.push("</think>");
        }
        let r = next();
        if r % 7 == 0 {
            texts.extend_from_slice(OPENERS[r / 7 % OPENERS.len()]);
        }
        let len = 5 + next() % 15;
        for _ in 0..len {
            texts.push(WORDS[next() % WORDS.len()]);
        }
        texts.push(if next() % 4 == 0 { ".\n\n" } else { "." });
    }
    texts.truncate(n as usize);
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let r = next();
            Step {
                index: i as u32,
                token_id: t
                    .bytes()
                    .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))),
                text: (*t).to_string(),
                logprob: -((r % 1000) as f32 / 1000.0).powi(3) * 4.0,
                entropy: 0.2 + (r % 997) as f32 / 997.0 * if r % 211 == 0 { 6.0 } else { 1.0 },
                phase: if i < think_end { Phase::Think } else { Phase::Answer },
                t_us: i as u64 * 20_000,
                top: Vec::new(),
            }
        })
        .collect()
}

fn bench_run(steps: &[Step]) -> Run {
    let mut run = Run::new_recording(RunId(1), SessionId(1), SamplerSpec::default());
    run.messages = vec![crate::trace::Message::new("user", "Compute the sum of the numbers.")];
    run.model.name = "bench".into();
    run.stop = Some(StopReason::Eos);
    run.timings.generated_tokens = steps.len() as u32;
    run
}

fn bench_analysis(n: u32) -> Result<serde_json::Value> {
    let steps = synthetic_reasoning(n, 1);
    let run = bench_run(&steps);
    let cfg = crate::analysis::AnalysisConfig::defaults()?;
    let t = Instant::now();
    let seg = crate::analysis::segment(&steps);
    let segment_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let a = crate::analysis::analyze(&run, "Compute the sum of the numbers.", &steps, &[], &cfg);
    let analyze_s = t.elapsed().as_secs_f64();
    outln!(
        "analysis: {n} steps ({} words, {} sentences, {} reasoning steps, {} flags)",
        seg.words.len(),
        seg.sentences.len(),
        seg.steps.len(),
        a.flags.len()
    );
    outln!("  segment                           {:>10.1} ms", segment_s * 1e3);
    outln!("  analyze (segment, flags, stats)   {:>10.1} ms", analyze_s * 1e3);
    Ok(serde_json::json!({
        "part": "analysis", "steps": n, "segment_ms": segment_s * 1e3, "analyze_ms": analyze_s * 1e3,
        "flags": a.flags.len(),
    }))
}

fn bench_diff(n: u32, budget_ms: u64) -> Result<serde_json::Value> {
    let a = synthetic_reasoning(n, 1);
    // Nearly equal: forks every 5000 steps.
    let mut near = a.clone();
    for i in (2500..near.len()).step_by(5000) {
        near[i].token_id ^= 0x5555;
        near[i].text = " fork".into();
    }
    let other = synthetic_reasoning(n, 2);
    let run = bench_run(&a);
    let budget = std::time::Duration::from_millis(budget_ms);
    let mut report = serde_json::json!({"part": "diff", "steps": n, "budget_ms": budget_ms});
    outln!("diff: two runs of {n} steps each, budget {budget_ms} ms");
    for (name, b) in [("nearly_equal", &near), ("unrelated", &other)] {
        let t = Instant::now();
        let c = crate::compare::compare((&run, &a), (&run, b), budget);
        let s = t.elapsed().as_secs_f64();
        let (eq, _) = c.equal_steps();
        outln!(
            "  {name:<14} {:>10.1} ms   ({} ops, {eq} equal steps{})",
            s * 1e3,
            c.ops.len(),
            if c.budget_exceeded { ", budget reached" } else { "" }
        );
        let map_ms = c.step_map_time.as_secs_f64() * 1e3;
        let (same, changed, only_a, only_b) = c.step_counts();
        outln!(
            "    of which step map {map_ms:>8.1} ms   ({} rows: {same} same, {changed} changed, {only_a} only in a, {only_b} only in b)",
            c.steps.len()
        );
        report[format!("{name}_ms")] = serde_json::json!(s * 1e3);
        report[format!("{name}_step_map_ms")] = serde_json::json!(map_ms);
    }
    Ok(report)
}

/// Parses a part's defaults from its name, so `thinkdbg bench` alone runs exactly what
/// `thinkdbg bench NAME` would.
#[derive(Debug, clap::Parser)]
struct PartDefaults {
    #[command(subcommand)]
    part: BenchPart,
}

/// The parts `thinkdbg bench` runs without a subcommand, in order.
const ALL_PARTS: &[&str] = &["decode", "store", "analysis", "diff", "render", "dynamics"];

fn run_part(part: &BenchPart, offline: bool) -> Result<serde_json::Value> {
    Ok(match part {
        BenchPart::Decode(decode) => super::bench_decode::run(decode, offline)?,
        BenchPart::Score(a) => super::bench_score::run(a, offline)?,
        BenchPart::Store { steps, top, layers, experts, dir } => {
            let tmp = match dir {
                Some(d) => tempfile::tempdir_in(d),
                None => tempfile::tempdir(),
            }
            .context("creating a scratch directory")?;
            bench_store(*steps, *top, *layers, *experts, tmp.path())?
        }
        BenchPart::Remote(a) => {
            let tmp = tempfile::tempdir().context("creating a scratch directory")?;
            super::bench_remote::bench(a, tmp.path())?
        }
        BenchPart::Analysis { steps } => bench_analysis(*steps)?,
        BenchPart::Dynamics(a) => super::bench_dynamics::run(a, offline)?,
        BenchPart::Diff { steps, budget_ms } => bench_diff(*steps, *budget_ms)?,
        BenchPart::Render { steps, width, height, frames } => {
            super::bench_render::bench_render(*steps, *width, *height, *frames)?
        }
    })
}

pub fn run(args: &BenchArgs, offline: bool) -> Result<ExitCode> {
    let report = match &args.part {
        Some(part) => run_part(part, offline)?,
        None => {
            let start = Instant::now();
            let mut parts = Vec::new();
            for name in ALL_PARTS {
                let part = <PartDefaults as clap::Parser>::try_parse_from(["bench", name])
                    .with_context(|| format!("the defaults of part '{name}'"))?
                    .part;
                parts.push(run_part(&part, offline)?);
                outln!();
            }
            let total_s = start.elapsed().as_secs_f64();
            outln!(
                "all parts in {total_s:.1} s (remote needs a server: thinkdbg bench remote --endpoint URL)"
            );
            serde_json::json!({"parts": parts, "total_s": total_s})
        }
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing '{}'", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
