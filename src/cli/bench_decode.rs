//! `thinkdbg bench decode`: decode and prefill speed of the embedded engine on one GGUF (the
//! demo model by default), greedy from the same prompt, in several recording modes run in
//! alternation: `off` (the engine reports to a recorder that drops everything, no
//! alternatives, no routing), `top-20` (20 alternatives per step, written into a real store
//! by the store writer) and, for MoE models, `routing` (`top-20` plus every layer's experts
//! and gate weights, prompt tokens included). The recording overhead is `1 - mode / off`.
//! `--synth ARCH:SHAPE` benchmarks a synthetic model written for the purpose.
//!
//! A mode is a row of `MODES`: a name, the alternatives kept, whether a store writer records
//! the run, and the MoE routing it records.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;

use crate::engine::generate::{Prompt, RunRequest};
use crate::engine::gguf::Gguf;
use crate::engine::source::ModelSource;
use crate::engine::{Engine, LoadOptions};
use crate::record::Discard;
use crate::store::{writer, Store};
use crate::trace::{Message, RoutingDetail, SamplerSpec};

#[derive(Debug, Clone, Args)]
pub struct DecodeArgs {
    /// A GGUF file, hf:ORG/REPO/FILE.gguf, or 'demo' (the default).
    #[arg(short, long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Tokens generated per run (past end-of-generation tokens).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(2..))]
    pub tokens: u32,
    /// Runs per mode; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub reps: u32,
    /// The user message.
    #[arg(long, default_value = "Explain how photosynthesis works in plants.")]
    pub prompt: String,
    /// Benchmark a synthetic model instead (as `model synth` writes it, into a scratch
    /// directory): ARCH:SHAPE, e.g. qwen3moe:qwen3moe-mid, qwen2:r1-distill-1.5b,
    /// deepseek2:r1-narrow, qwen3moe:tiny.
    #[arg(long, value_name = "ARCH:SHAPE", conflicts_with = "model")]
    pub synth: Option<String>,
    /// The synthetic model's quantization (q8_0, q4_k or f32).
    #[arg(long, default_value = "q8_0", requires = "synth")]
    pub synth_quant: String,
    /// Batched decode instead of the recording modes: N samples of the prompt decoded
    /// together (`1,4,8` or the flag repeated), aggregate tok/s per N side by side with the
    /// ratio to N = 1 (always run), and each sample's tokens checked against a lone run.
    #[arg(long, value_name = "N,...", value_delimiter = ',', num_args = 1..,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub parallel: Vec<u32>,
}

/// One way of running the engine.
struct Mode {
    name: &'static str,
    /// Alternatives kept per step.
    top: usize,
    /// Whether the store writer records the run (into a scratch store).
    store: bool,
    /// The MoE routing recorded (prompt tokens included when not `Off`).
    routing: RoutingDetail,
    /// Only meaningful for MoE models.
    moe_only: bool,
}

/// The modes, in the order they run each repetition. The first is the baseline the overhead
/// of the others is measured against.
const MODES: &[Mode] = &[
    Mode { name: "off", top: 0, store: false, routing: RoutingDetail::Off, moe_only: false },
    Mode { name: "top-20", top: 20, store: true, routing: RoutingDetail::Off, moe_only: false },
    Mode {
        name: "routing",
        top: 20,
        store: true,
        routing: RoutingDetail::Selected,
        moe_only: true,
    },
];

/// What one run measured.
#[derive(Debug, Clone, Copy)]
struct Sample {
    decode_tok_s: f64,
    prefill_tok_s: f64,
    /// From the end of generation until the writer's final flush returned.
    writer_tail_ms: f64,
}

fn run_once(engine: &mut Engine, req: &RunRequest, store: Option<&Arc<Store>>) -> Result<Sample> {
    let cancel = AtomicBool::new(false);
    let (summary, writer_tail_ms) = match store {
        None => (engine.generate(req, &mut Discard, &cancel)?, 0.0),
        Some(store) => {
            let (mut rec, handle) =
                writer::start(store.clone(), super::bench::scratch_run(store, "bench decode")?)?;
            let summary = engine.generate(req, &mut rec, &cancel)?;
            let end = Instant::now();
            drop(rec);
            let outcome = handle.join().map_err(|_| anyhow!("the store writer panicked"))??;
            if outcome.steps_written != summary.timings.generated_tokens as usize {
                bail!(
                    "the store kept {} steps of {}",
                    outcome.steps_written,
                    summary.timings.generated_tokens
                );
            }
            (summary, end.elapsed().as_secs_f64() * 1e3)
        }
    };
    Ok(Sample {
        decode_tok_s: summary.timings.decode_tok_s(),
        prefill_tok_s: summary.timings.prefill_tok_s(),
        writer_tail_ms,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Bytes of weights one decode step reads: every tensor except the token embeddings (one row
/// is read) unless they double as the output layer, with expert tensors (`*_exps`) counted
/// for the experts a token uses. Divided by the step time, it is the memory bandwidth the
/// decode achieves.
fn weight_bytes_per_token(path: &std::path::Path) -> Result<u64> {
    let g = Gguf::open(path)?;
    let arch = g.architecture()?.to_string();
    let experts = g.opt_usize(&format!("{arch}.expert_count"))?.unwrap_or(0);
    let used = g.opt_usize(&format!("{arch}.expert_used_count"))?.unwrap_or(0);
    let tied = !g.has_tensor("output.weight");
    let mut total = 0f64;
    for t in &g.tensors {
        let size = t.size.unwrap_or(0) as f64;
        total += if t.name == "token_embd.weight" && !tied {
            0.0
        } else if t.name.contains("_exps") && experts > 0 {
            size * used as f64 / experts as f64
        } else {
            size
        };
    }
    Ok(total as u64)
}

/// The 1-minute load average, when the system says (so that numbers can be judged).
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// Writes the synthetic model `ARCH:SHAPE` into `dir`.
fn synthesize(spec: &str, quant: &str, dir: &std::path::Path) -> Result<PathBuf> {
    use crate::engine::synth;
    let Some((arch, shape)) = spec.split_once(':') else {
        bail!("'--synth {spec}': expected ARCH:SHAPE, e.g. qwen3moe:qwen3moe-mid");
    };
    let quant = match quant.to_ascii_lowercase().as_str() {
        "q8_0" => candle_core::quantized::GgmlDType::Q8_0,
        "q4_k" => candle_core::quantized::GgmlDType::Q4K,
        "f32" => candle_core::quantized::GgmlDType::F32,
        other => bail!("unknown --synth-quant '{other}' (q8_0, q4_k, f32)"),
    };
    let dims = synth::Dims::named(arch, shape)?;
    let path = dir.join(format!("{arch}-{shape}.gguf"));
    let t = Instant::now();
    synth::write(&synth::SynthSpec { dims, quant, seed: 1 }, &path)?;
    errln!("wrote synthetic {arch}:{shape} in {:.1} s", t.elapsed().as_secs_f64());
    Ok(path)
}

pub fn run(args: &DecodeArgs, offline: bool) -> Result<serde_json::Value> {
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let path: PathBuf = match &args.synth {
        Some(spec) => synthesize(spec, &args.synth_quant, scratch.path())?,
        None => ModelSource::parse(args.model.as_deref())?.resolve(offline)?,
    };
    let start = Instant::now();
    let mut engine = Engine::load(&path, &LoadOptions::default(), &mut |_, _| {})
        .with_context(|| format!("loading '{}'", path.display()))?;
    let load_s = start.elapsed().as_secs_f64();
    let request = |top: usize, tokens: u32, routing: RoutingDetail| RunRequest {
        prompt: Prompt::Chat(vec![Message::new("user", args.prompt.clone())]),
        sampler: SamplerSpec {
            max_tokens: tokens as usize,
            ignore_eos: true,
            ..Default::default()
        },
        top_logprobs: top,
        forced: Vec::new(),
        forced_text: None,
        routing,
        prompt_routing: routing != RoutingDetail::Off,
    };
    if !args.parallel.is_empty() {
        return parallel(args, &mut engine, &path, load_s);
    }
    let store = Arc::new(Store::open_scratch(&scratch.path().join("store"))?);
    let moe = engine.info.experts > 0;
    let modes: Vec<&Mode> = MODES.iter().filter(|m| moe || !m.moe_only).collect();
    // Warm-up: page the weights in, start candle's thread pool.
    run_once(&mut engine, &request(0, 8, RoutingDetail::Off), None)?;
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); modes.len()];
    for _ in 0..args.reps {
        for (mode, out) in modes.iter().zip(&mut samples) {
            let req = request(mode.top, args.tokens, mode.routing);
            out.push(run_once(&mut engine, &req, mode.store.then_some(&store))?);
        }
    }
    let threads = candle_core::utils::barrier_pool().n_workers() + 1;
    let (_, prompt_tokens) = engine.prepare(&request(0, 1, RoutingDetail::Off).prompt)?;
    let prompt_tokens = prompt_tokens.len();
    let decode: Vec<f64> =
        samples.iter().map(|s| median(s.iter().map(|x| x.decode_tok_s).collect())).collect();
    let base = decode.first().copied().unwrap_or(0.0);
    let load = load_average();
    let weight_bytes = weight_bytes_per_token(&path)?;
    outln!(
        "decode: {} on {} ({:.1} s to load), {threads} threads, {prompt_tokens}-token prompt, {} tokens x {} runs per mode, load average {}",
        engine.info.name,
        engine.device,
        load_s,
        args.tokens,
        args.reps,
        load.map_or("-".into(), |l| format!("{l:.2}"))
    );
    outln!(
        "  {:<10} {:>12} {:>13} {:>10} {:>10}",
        "mode",
        "decode tok/s",
        "prefill tok/s",
        "overhead",
        "weight GB/s"
    );
    let mut rows = Vec::new();
    for ((mode, s), &tok_s) in modes.iter().zip(&samples).zip(&decode) {
        let prefill = median(s.iter().map(|x| x.prefill_tok_s).collect());
        let overhead = if base > 0.0 { 100.0 * (1.0 - tok_s / base) } else { 0.0 };
        let gb_s = weight_bytes as f64 * tok_s / 1e9;
        outln!("  {:<10} {tok_s:>12.1} {prefill:>13.1} {overhead:>9.1}% {gb_s:>10.1}", mode.name);
        rows.push(serde_json::json!({
            "mode": mode.name, "top_logprobs": mode.top, "store": mode.store,
            "routing": mode.routing,
            "decode_tok_s": tok_s, "prefill_tok_s": prefill, "overhead_pct": overhead,
            "weight_gb_s": gb_s,
            "decode_runs": s.iter().map(|x| x.decode_tok_s).collect::<Vec<_>>(),
            "writer_tail_ms": median(s.iter().map(|x| x.writer_tail_ms).collect()),
        }));
    }
    Ok(serde_json::json!({
        "part": "decode", "model": engine.info.name, "file": path.display().to_string(),
        "synth": args.synth, "moe": moe, "device": engine.device,
        "threads": threads, "prompt_tokens": prompt_tokens, "tokens": args.tokens,
        "reps": args.reps, "load_s": load_s, "weight_bytes_per_token": weight_bytes, "load_average": load, "rows": rows,
    }))
}

/// Token ids of every sample, filled by `generate_many`'s recorders.
#[derive(Default)]
struct Tokens(Vec<u32>);

impl crate::record::Recorder for Tokens {
    fn record(&mut self, event: crate::record::Event) {
        if let crate::record::Event::Step { step, .. } = event {
            self.0.push(step.token_id);
        }
    }
}

/// What one batched run of N samples measured: decode tokens per second summed over the
/// samples (the first token of each comes from the shared prefill), and their tokens.
fn batched_once(engine: &mut Engine, req: &RunRequest, n: u32) -> Result<(f64, Vec<Vec<u32>>)> {
    let seeds: Vec<u64> = (0..u64::from(n)).map(|i| req.sampler.seed + i).collect();
    let mut recs: Vec<Tokens> = seeds.iter().map(|_| Tokens::default()).collect();
    let mut dyns: Vec<&mut dyn crate::record::Recorder> =
        recs.iter_mut().map(|r| r as &mut dyn crate::record::Recorder).collect();
    let summaries = engine.generate_many(req, &seeds, &mut dyns, &AtomicBool::new(false))?;
    let tokens: u64 =
        summaries.iter().map(|s| u64::from(s.timings.generated_tokens.saturating_sub(1))).sum();
    let us = summaries.iter().map(|s| s.timings.decode_us).max().unwrap_or(0);
    let tok_s = if us == 0 { 0.0 } else { tokens as f64 / (us as f64 / 1e6) };
    Ok((tok_s, recs.into_iter().map(|r| r.0).collect()))
}

/// `bench decode --parallel N,...`: aggregate decode tok/s of N samples decoded together,
/// sampled (temperature 0.8, seeds 1..=N, so the samples part ways) past end-of-generation,
/// the sizes run in alternation and the median of the repetitions kept; then every sample of
/// the largest N against the same seed run alone.
fn parallel(
    args: &DecodeArgs,
    engine: &mut Engine,
    path: &std::path::Path,
    load_s: f64,
) -> Result<serde_json::Value> {
    // N = 1 (one sequence, `generate`) is the baseline every ratio is taken against.
    let mut sizes = args.parallel.clone();
    sizes.push(1);
    sizes.sort_unstable();
    sizes.dedup();
    let req = |tokens: u32| RunRequest {
        prompt: Prompt::Chat(vec![Message::new("user", args.prompt.clone())]),
        sampler: SamplerSpec {
            temperature: 0.8,
            seed: 1,
            max_tokens: tokens as usize,
            ignore_eos: true,
            ..Default::default()
        },
        top_logprobs: 0,
        forced: Vec::new(),
        forced_text: None,
        routing: RoutingDetail::Off,
        prompt_routing: false,
    };
    // Warm-up: page the weights in, start candle's thread pool, size the caches.
    batched_once(engine, &req(8), sizes.last().copied().unwrap_or(1))?;
    let full = req(args.tokens);
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); sizes.len()];
    let mut batch_tokens: Vec<Vec<Vec<u32>>> = vec![Vec::new(); sizes.len()];
    for _ in 0..args.reps {
        for ((&n, out), toks) in sizes.iter().zip(&mut runs).zip(&mut batch_tokens) {
            let (tok_s, tokens) = batched_once(engine, &full, n)?;
            out.push(tok_s);
            *toks = tokens;
        }
    }
    // Every sample of every size against its seed alone (`generate`, one sequence).
    let largest = sizes.last().copied().unwrap_or(1);
    let mut lone = Vec::new();
    for i in 0..u64::from(largest) {
        let mut r = full.clone();
        r.sampler.seed = full.sampler.seed + i;
        let mut rec = Tokens::default();
        engine.generate(&r, &mut rec, &AtomicBool::new(false))?;
        lone.push(rec.0);
    }
    let threads = candle_core::utils::barrier_pool().n_workers() + 1;
    let prompt_tokens = engine.prepare(&full.prompt)?.1.len();
    let tok_s: Vec<f64> = runs.iter().map(|r| median(r.clone())).collect();
    let base = tok_s.first().copied().unwrap_or(0.0);
    let load = load_average();
    outln!(
        "decode --parallel: {} on {} ({:.1} s to load), {threads} threads, {prompt_tokens}-token prompt, {} tokens per sample (temperature 0.8, seeds 1..N), {} runs per size, load average {}",
        engine.info.name,
        engine.device,
        load_s,
        args.tokens,
        args.reps,
        load.map_or("-".into(), |l| format!("{l:.2}"))
    );
    outln!(
        "  {:>4} {:>16} {:>16} {:>9} {:>22}",
        "N",
        "aggregate tok/s",
        "per sample tok/s",
        "ratio",
        "tokens as run alone"
    );
    let mut rows = Vec::new();
    for ((&n, &t), toks) in sizes.iter().zip(&tok_s).zip(&batch_tokens) {
        let ratio = if base > 0.0 { t / base } else { 0.0 };
        let same = toks.iter().zip(&lone).filter(|(a, b)| a == b).count();
        outln!(
            "  {n:>4} {t:>16.1} {:>16.1} {:>8.2}x {:>22}",
            t / f64::from(n),
            ratio,
            format!("{same}/{n}")
        );
        rows.push(serde_json::json!({
            "parallel": n, "aggregate_tok_s": t, "per_sample_tok_s": t / f64::from(n),
            "ratio": ratio, "identical_to_lone": same, "samples": n,
            "runs": runs.get(rows.len()),
        }));
    }
    outln!("  (ratio: aggregate tok/s against one sequence, N = 1)");
    let identical = sizes
        .iter()
        .zip(&batch_tokens)
        .all(|(&n, toks)| toks.len() == n as usize && toks.iter().zip(&lone).all(|(a, b)| a == b));
    if !identical {
        errln!("warning: some batched samples differ from the same seed run alone");
    }
    Ok(serde_json::json!({
        "part": "decode-parallel", "model": engine.info.name, "file": path.display().to_string(),
        "synth": args.synth, "device": engine.device, "threads": threads,
        "prompt_tokens": prompt_tokens, "tokens": args.tokens, "reps": args.reps,
        "load_s": load_s, "load_average": load, "identical": identical, "rows": rows,
    }))
}
