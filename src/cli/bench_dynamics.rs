//! `thinkdbg bench dynamics`: what the reasoning-dynamics tools cost on one model (the demo
//! model by default): a greedy run of N tokens is generated (its decode step time is the
//! yardstick), then the answer-now probe asks at every `--every`-th token (one replay of the
//! run, one short branch per boundary: time per boundary and its ratio to a decode step), and
//! the logit lens is computed at every step in order (one token's forward pass plus every
//! layer's head each: time per token), and at steps far apart (the cache cut back each time).

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use crate::engine::generate::{Prompt, RunRequest};
use crate::engine::probe::ProbeRequest;
use crate::engine::source::ModelSource;
use crate::engine::{Engine, LoadOptions};
use crate::record::Event;
use crate::trace::{Message, RoutingDetail, SamplerSpec};

#[derive(Debug, Clone, Args)]
pub struct DynamicsArgs {
    /// A GGUF file, hf:ORG/REPO/FILE.gguf, or 'demo' (the default).
    #[arg(short, long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Tokens in the run probed.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(2..))]
    pub tokens: u32,
    /// A probe boundary every this many tokens.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub every: u32,
    /// Most answer tokens per probe boundary.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub answer_tokens: u32,
    /// The user message.
    #[arg(long, default_value = "What is 17 times 23? Think step by step.")]
    pub prompt: String,
}

pub fn run(args: &DynamicsArgs, offline: bool) -> Result<serde_json::Value> {
    let path = ModelSource::parse(args.model.as_deref())?.resolve(offline)?;
    let mut engine = Engine::load(&path, &LoadOptions::default(), &mut |_, _| {})
        .with_context(|| format!("loading '{}'", path.display()))?;
    let prompt = Prompt::Chat(vec![Message::new("user", args.prompt.clone())]);
    let req = RunRequest {
        prompt: prompt.clone(),
        sampler: SamplerSpec {
            max_tokens: args.tokens as usize,
            ignore_eos: true,
            ..Default::default()
        },
        top_logprobs: 20,
        forced: Vec::new(),
        forced_text: None,
        routing: RoutingDetail::Off,
        prompt_routing: false,
    };
    let cancel = AtomicBool::new(false);
    // Warm-up, then the measured run.
    let mut events: Vec<Event> = Vec::new();
    engine.generate(
        &RunRequest {
            sampler: SamplerSpec { max_tokens: 4, ..req.sampler.clone() },
            ..req.clone()
        },
        &mut events,
        &cancel,
    )?;
    let mut events: Vec<Event> = Vec::new();
    let summary = engine.generate(&req, &mut events, &cancel)?;
    let tokens: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::Step { step, .. } => Some(step.token_id),
            _ => None,
        })
        .collect();
    let n = tokens.len();
    let decode_ms = summary.timings.decode_us as f64
        / 1000.0
        / (summary.timings.generated_tokens.max(2) - 1) as f64;
    let boundaries: Vec<usize> = (0..=n).step_by(args.every as usize).collect();
    let probe = ProbeRequest {
        prompt: prompt.clone(),
        tokens: tokens.clone(),
        boundaries: boundaries.clone(),
        suffix: "\n\nThe final answer is".into(),
        max_tokens: args.answer_tokens as usize,
    };
    let t = Instant::now();
    let outcome = engine.probe(&probe, &cancel, &mut |_, _| {})?;
    let probe_total_ms = t.elapsed().as_secs_f64() * 1000.0;
    let branches = outcome.answers.len().max(1) as f64;
    let branch_ms = outcome.answers.iter().map(|a| a.us as f64).sum::<f64>() / 1000.0 / branches;
    let answer_tokens =
        outcome.answers.iter().map(|a| a.tokens.len()).sum::<usize>() as f64 / branches;
    // The lens, step after step (the cache grows by one token each time) ...
    let mut st = engine.lens_begin(&prompt, &tokens)?;
    engine.lens_at(&mut st, 0, 5)?;
    let t = Instant::now();
    for step in 1..n {
        engine.lens_at(&mut st, step, 5)?;
    }
    let lens_seq_ms = t.elapsed().as_secs_f64() * 1000.0 / (n - 1).max(1) as f64;
    // ... and jumping between far-apart steps (cut back, replay forward).
    let jumps: Vec<usize> = (0..8).map(|i| if i % 2 == 0 { n - 1 } else { 1 }).collect();
    let t = Instant::now();
    for &s in &jumps {
        engine.lens_at(&mut st, s, 5)?;
    }
    let lens_jump_ms = t.elapsed().as_secs_f64() * 1000.0 / jumps.len() as f64;
    let layers = engine.info.layers;
    outln!(
        "dynamics: {} ({layers} layers), a {n}-token greedy run, probe every {} tokens ({} boundaries, {:.1} answer tokens each)",
        engine.info.name,
        args.every,
        boundaries.len(),
        answer_tokens
    );
    outln!("  decode step                       {decode_ms:>10.2} ms");
    outln!(
        "  probe per boundary                {branch_ms:>10.2} ms  ({:.1}× a decode step)",
        branch_ms / decode_ms.max(1e-9)
    );
    outln!(
        "  probe, whole run (replay + all)   {probe_total_ms:>10.1} ms  (prefill {:.1} ms, replay {:.1} ms)",
        outcome.prefill_us as f64 / 1000.0,
        outcome.replay_us as f64 / 1000.0
    );
    outln!(
        "  lens per token, in order          {lens_seq_ms:>10.2} ms  ({:.1}× a decode step)",
        lens_seq_ms / decode_ms.max(1e-9)
    );
    outln!("  lens per token, far jumps         {lens_jump_ms:>10.2} ms");
    Ok(serde_json::json!({
        "part": "dynamics", "model": engine.info.name, "layers": layers, "tokens": n,
        "decode_step_ms": decode_ms, "probe_boundaries": boundaries.len(),
        "probe_branch_ms": branch_ms, "probe_branch_per_decode_step": branch_ms / decode_ms.max(1e-9),
        "probe_answer_tokens": answer_tokens, "probe_total_ms": probe_total_ms,
        "probe_prefill_ms": outcome.prefill_us as f64 / 1000.0,
        "probe_replay_ms": outcome.replay_us as f64 / 1000.0,
        "lens_token_ms": lens_seq_ms, "lens_jump_ms": lens_jump_ms,
    }))
}
