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
