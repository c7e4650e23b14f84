//! `thinkdbg bench score`: tokens per second of scoring a long trace (4k tokens by default) on
//! one GGUF (the demo model by default), against the engine's plain prefill of the same tokens
//! (no per-position logits) and llama.cpp's prompt processing of the same file and tokens
//! (`assets/bench/llama_cpp_prefill.py`, llama-cpp-python), side by side in one run. The trace
//! is the model's own tokenization of a fixed text, scored as a run of that model (its ids).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::engine::generate::Prompt;
use crate::engine::score::{ScoreInput, ScoreRequest, DEFAULT_CHUNK};
use crate::engine::source::ModelSource;
use crate::engine::{Engine, LoadOptions};
use crate::record::Discard;
use crate::trace::{Message, Phase, RoutingDetail, StopReason};

#[derive(Debug, Clone, Args)]
pub struct ScoreBenchArgs {
    /// A GGUF file, hf:ORG/REPO/FILE.gguf, or 'demo' (the default).
    #[arg(short, long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Tokens in the scored trace.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(2..))]
    pub tokens: u32,
    /// Tokens per forward pass (scoring, the engine's prefill and llama.cpp's batch).
    #[arg(long, default_value_t = DEFAULT_CHUNK as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub chunk: u32,
    /// Alternatives kept per scored step.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Runs of each; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub reps: u32,
    /// The llama.cpp baseline script (needs `python3` with llama-cpp-python); 'none' skips it.
    #[arg(long, default_value = "assets/bench/llama_cpp_prefill.py", value_name = "SCRIPT")]
    pub llama_cpp: String,
    /// Threads for llama.cpp (default: as many as the engine uses).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// A long, varied text to tokenize into the trace (repeated until it has enough tokens).
const TEXT: &str = "Let me think about this step by step. First, the train leaves at 3:45 pm and \
travels 120 km at 80 km/h, so it takes 1.5 hours and arrives at 5:15 pm. Wait, I should check \
whether the station clocks use daylight saving time; they do, so nothing changes. Next, the \
second train: 95 km at 60 km/h is 1 hour 35 minutes. Hmm, 95/60 = 1.5833 hours, which is 1 hour \
and 35 minutes. So it arrives at 5:20 pm if it leaves at the same time. Alternatively, maybe the \
question asks for the difference, which is five minutes. Let me verify: 5:20 - 5:15 = 0:05. \
Yes. Therefore the answer is 5 minutes.\n\n";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// llama.cpp's prompt-processing rate over the same tokens (`None` with the reason when it
/// cannot run here).
fn llama_cpp(
    args: &ScoreBenchArgs,
    model: &std::path::Path,
    ids: &[u32],
    threads: usize,
) -> std::result::Result<serde_json::Value, String> {
    if args.llama_cpp == "none" {
        return Err("skipped (--llama-cpp none)".into());
    }
    let script = PathBuf::from(&args.llama_cpp);
    if !script.is_file() {
        return Err(format!("'{}' not found (run from the repository root)", script.display()));
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ids_file = dir.path().join("ids.json");
    std::fs::write(&ids_file, serde_json::to_string(ids).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg("--model")
        .arg(model)
        .arg("--ids")
        .arg(&ids_file)
        .args(["--threads", &threads.to_string()])
        .args(["--batch", &args.chunk.to_string()])
        .args(["--reps", &args.reps.to_string()])
        .output()
        .map_err(|e| format!("python3 could not be started: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
        return Err(format!("the script failed: {last}"));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line =
        text.lines().rev().find(|l| l.starts_with('{')).ok_or("the script printed no JSON")?;
    serde_json::from_str(line).map_err(|e| format!("unreadable script output: {e}"))
}

pub fn run(args: &ScoreBenchArgs, offline: bool) -> Result<serde_json::Value> {
    // On one thread inside candle's pool context, as the engine worker runs.
    let device = crate::engine::device()?;
    device.with_context(|| measure(args, offline))
}

fn measure(args: &ScoreBenchArgs, offline: bool) -> Result<serde_json::Value> {
    let path = ModelSource::parse(args.model.as_deref())?.resolve(offline)?;
    let mut engine = Engine::load(&path, &LoadOptions::default(), &mut |_, _| {})
        .with_context(|| format!("loading '{}'", path.display()))?;
    let prompt = Prompt::Chat(vec![Message::new(
        "user",
        "How long after the first train does the second one arrive?",
    )]);
    let (_, prompt_ids) = engine.prepare(&prompt)?;
    let n = args.tokens as usize;
    if prompt_ids.len() + n > engine.context_length() {
        bail!(
            "'--tokens {n}' plus the {}-token prompt exceeds the model's context of {}",
            prompt_ids.len(),
            engine.context_length()
        );
    }
    let mut ids = Vec::with_capacity(n);
    let once = engine.tokenizer().encode(TEXT)?;
    while ids.len() < n {
        ids.extend(once.iter().take(n - ids.len()));
    }
    let req = ScoreRequest {
        prompt,
        steps: ids
            .iter()
            .map(|&id| ScoreInput { token_id: id, text: String::new(), phase: Phase::Answer })
            .collect(),
        fingerprint: engine.info.fingerprint.clone(),
        top_logprobs: args.top,
        routing: RoutingDetail::Selected,
        chunk: args.chunk as usize,
        stop: StopReason::MaxTokens,
    };
    let plan = engine.plan_score(&req)?;
    let all: Vec<u32> = plan.prompt_ids.iter().chain(&plan.ids).copied().collect();
    let threads = args.threads.unwrap_or_else(candle_core::utils::get_num_threads);
    errln!(
        "scoring {} tokens ({} prompt + {n}) on {}, chunks of {}, {} reps",
        all.len(),
        plan.prompt_ids.len(),
        engine.info.name,
        args.chunk,
        args.reps
    );
    let (mut score, mut prefill) = (Vec::new(), Vec::new());
    for _ in 0..args.reps {
        let t = Instant::now();
        engine.prefill(&all, args.chunk as usize)?;
        prefill.push(all.len() as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        engine.score(&req, &plan, &mut Discard, &AtomicBool::new(false))?;
        score.push(all.len() as f64 / t.elapsed().as_secs_f64());
    }
    let (score, prefill) = (median(score), median(prefill));
    let llama = llama_cpp(args, &path, &all, threads);
    let llama_rate = llama.as_ref().ok().and_then(|v| v["prefill_tok_s"].as_f64());
    outln!("score {} tokens on {} ({} threads)", all.len(), engine.info.name, threads);
    outln!("  thinkdbg score (top-{}):   {:>9.1} tok/s", args.top, score);
    outln!("  thinkdbg prefill:          {:>9.1} tok/s", prefill);
    match (&llama, llama_rate) {
        (Ok(_), Some(r)) => outln!("  llama.cpp prompt process:  {:>9.1} tok/s", r),
        (Err(why), _) => outln!("  llama.cpp prompt process:  not measured: {why}"),
        (Ok(_), None) => outln!("  llama.cpp prompt process:  not measured: no 'prefill_tok_s'"),
    }
    let mut note = format!("score/prefill {:.2}", score / prefill.max(f64::MIN_POSITIVE));
    if let Some(r) = llama_rate {
        note.push_str(&format!(
            ", score/llama.cpp {:.2}, prefill/llama.cpp {:.2}",
            score / r,
            prefill / r
        ));
    }
    outln!("  {note}");
    Ok(serde_json::json!({
        "model": engine.info.name,
        "tokens": all.len(),
        "chunk": args.chunk,
        "threads": threads,
        "score_tok_s": score,
        "prefill_tok_s": prefill,
        "llama_cpp_prefill_tok_s": llama_rate,
        "llama_cpp_error": llama.err(),
    }))
}
