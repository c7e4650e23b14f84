//! The engine on tiny random `llama`, `qwen2` and `qwen3` models written as GGUF: loading,
//! agreement with an independent naive forward pass, deterministic generation, proper
//! log-distributions, top-k order, think/answer phases, and clear errors for bad input.

use std::sync::atomic::AtomicBool;

use candle_core::quantized::GgmlDType;
use thinkdbg::engine::generate::{Prompt, RunRequest};
use thinkdbg::engine::Engine;
use thinkdbg::record::Event;
use thinkdbg::trace::{Message, Phase, RoutingDetail, SamplerSpec, Step, StopReason};

use crate::common::{exact, write_tiny, Naive, Tiny};

fn load(path: &std::path::Path) -> Engine {
    Engine::load(path, &exact(), &mut |_, _| {}).unwrap()
}

fn run(
    engine: &mut Engine,
    prompt: Prompt,
    sampler: SamplerSpec,
    top: usize,
) -> (Vec<Step>, StopReason, Vec<u32>) {
    run_forced(engine, prompt, sampler, top, Vec::new())
}

fn run_forced(
    engine: &mut Engine,
    prompt: Prompt,
    sampler: SamplerSpec,
    top: usize,
    forced: Vec<u32>,
) -> (Vec<Step>, StopReason, Vec<u32>) {
    let mut events: Vec<Event> = Vec::new();
    let req = RunRequest {
        prompt,
        sampler,
        top_logprobs: top,
        forced,
        forced_text: None,
        routing: RoutingDetail::Selected,
        prompt_routing: true,
    };
    let summary = engine.generate(&req, &mut events, &AtomicBool::new(false)).unwrap();
    let mut prompt_tokens = Vec::new();
    let steps = events
        .into_iter()
        .filter_map(|e| match e {
            Event::Step { step, .. } => Some(step),
            Event::Started { prompt_tokens: p, .. } => {
                prompt_tokens = p;
                None
            }
            _ => None,
        })
        .collect();
    (steps, summary.stop, prompt_tokens)
}

fn greedy(n: usize) -> SamplerSpec {
    SamplerSpec { max_tokens: n, ..SamplerSpec::default() }
}

fn chat(text: &str) -> Prompt {
    Prompt::Chat(vec![Message::new("user", text)])
}

#[test]
fn first_step_matches_a_naive_forward_pass_for_every_architecture() {
    let dir = tempfile::tempdir().unwrap();
    for tiny in [Tiny::llama(), Tiny::qwen2(), Tiny::qwen3()] {
        let path = write_tiny(dir.path(), &tiny);
        let mut engine = load(&path);
        let vocab = tiny.vocab_len();
        let (steps, _, prompt) = run(&mut engine, chat("the answer is"), greedy(1), vocab);
        let want = Naive::load(&path, &tiny).logprobs(&prompt);
        let step = &steps[0];
        assert_eq!(step.top.len(), vocab);
        let mut worst = 0f32;
        for t in &step.top {
            worst = worst.max((t.logprob - want[t.id as usize]).abs());
        }
        assert!(worst < 2e-3, "{}: largest logprob difference {worst}", tiny.arch);
        // And the same after a few cached decode steps: compare step 3 against a fresh pass.
        let (steps, _, prompt) = run(&mut engine, chat("the answer is"), greedy(4), vocab);
        let mut seq = prompt.clone();
        seq.extend(steps[..3].iter().map(|s| s.token_id));
        let want = Naive::load(&path, &tiny).logprobs(&seq);
        for t in &steps[3].top {
            assert!(
                (t.logprob - want[t.id as usize]).abs() < 2e-3,
                "{} step 3 token {}",
                tiny.arch,
                t.id
            );
        }
    }
}

#[test]
fn logprobs_form_a_distribution_and_top_k_is_sorted() {
    let dir = tempfile::tempdir().unwrap();
    for tiny in [Tiny::llama(), Tiny::qwen2(), Tiny::qwen3()] {
        let path = write_tiny(dir.path(), &Tiny { dtype: GgmlDType::Q8_0, ..tiny.clone() });
        let mut engine = load(&path);
        let (full, _, _) = run(&mut engine, chat("fn main"), greedy(6), tiny.vocab_len());
        for s in &full {
            let total: f64 = s.top.iter().map(|t| f64::from(t.logprob).exp()).sum();
            assert!(
                (total - 1.0).abs() < 1e-4,
                "{} step {}: probabilities sum to {total}",
                tiny.arch,
                s.index
            );
            let h: f64 =
                s.top.iter().map(|t| -f64::from(t.logprob).exp() * f64::from(t.logprob)).sum();
            assert!((h - f64::from(s.entropy)).abs() < 1e-3, "entropy {h} vs {}", s.entropy);
        }
        let (steps, _, _) = run(&mut engine, chat("fn main"), greedy(6), 5);
        for s in &steps {
            assert_eq!(s.top.len(), 5);
            assert!(
                s.top.windows(2).all(|w| w[0].logprob >= w[1].logprob),
                "top-k not sorted: {:?}",
                s.top
            );
            // Greedy: the chosen token is the most likely one.
            assert_eq!(s.top[0].id, s.token_id);
            assert_eq!(s.top[0].logprob, s.logprob);
            assert!(s.entropy >= 0.0 && s.entropy <= (tiny.vocab_len() as f32).ln() + 1e-4);
        }
        // The same run recorded with fewer alternatives chose the same tokens.
        assert_eq!(
            full.iter().map(|s| s.token_id).collect::<Vec<_>>(),
            steps.iter().map(|s| s.token_id).collect::<Vec<_>>()
        );
    }
}

#[test]
fn generation_is_deterministic_for_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_tiny(dir.path(), &Tiny { dtype: GgmlDType::Q4_0, ..Tiny::qwen2() });
    let sampled = |seed: u64| {
        let mut engine = load(&path);
        let spec = SamplerSpec {
            temperature: 1.0,
            top_p: 0.95,
            seed,
            max_tokens: 24,
            ..SamplerSpec::default()
        };
        run(&mut engine, chat("the quick brown fox"), spec, 3).0
    };
    let strip = |v: Vec<Step>| v.into_iter().map(|s| Step { t_us: 0, ..s }).collect::<Vec<_>>();
    let a = strip(sampled(11));
    assert_eq!(a, strip(sampled(11)));
    let ids = |v: &[Step]| v.iter().map(|s| s.token_id).collect::<Vec<_>>();
    assert_ne!(ids(&a), ids(&sampled(12)), "different seeds gave the same 24 tokens");
    // Greedy twice in one engine (the cache is reset between runs).
    let mut engine = load(&path);
    let g1 = ids(&run(&mut engine, chat("x"), greedy(10), 1).0);
    let g2 = ids(&run(&mut engine, chat("x"), greedy(10), 1).0);
    assert_eq!(g1, g2);
}

#[test]
fn k_quant_models_load_and_run() {
    let dir = tempfile::tempdir().unwrap();
    // K-quants need rows that are multiples of 256.
    let tiny = Tiny {
        n_embd: 256,
        n_ff: 256,
        n_head: 4,
        head_dim: 64,
        dtype: GgmlDType::Q4K,
        ..Tiny::llama()
    };
    let path = write_tiny(dir.path(), &tiny);
    let mut engine = load(&path);
    let (steps, stop, _) = run(&mut engine, chat("think"), greedy(8), 4);
    assert!(!steps.is_empty());
    assert!(matches!(stop, StopReason::MaxTokens | StopReason::Eos));
    // Q4_K against the f32 naive pass: same top token in most positions is too weak a claim
    // for random weights; check the distribution is close instead.
    let (steps, _, prompt) = run(&mut engine, chat("think"), greedy(1), tiny.vocab_len());
    let want = Naive::load(&path, &tiny).logprobs(&prompt);
    let max_diff =
        steps[0].top.iter().map(|t| (t.logprob - want[t.id as usize]).abs()).fold(0f32, f32::max);
    assert!(max_diff < 0.5, "Q4_K logprobs drift {max_diff} from the dequantized reference");
}

#[test]
fn phases_follow_the_template_and_tags() {
    let dir = tempfile::tempdir().unwrap();
    // qwen3's tiny template opens <think> in the generation prompt.
    let path = write_tiny(dir.path(), &Tiny::qwen3());
    let mut engine = load(&path);
    let (steps, _, _) = run(&mut engine, chat("hi"), greedy(5), 1);
    assert_eq!(steps[0].phase, Phase::Think);
    let path = write_tiny(dir.path(), &Tiny::llama());
    let mut engine = load(&path);
    let (steps, _, _) = run(&mut engine, chat("hi"), greedy(5), 1);
    assert_eq!(steps[0].phase, Phase::Answer);
    // A raw prompt that opens a think block starts in the think phase.
    let (steps, _, prompt) =
        run(&mut engine, Prompt::Raw("<|im_start|>assistant\n<think>\n".into()), greedy(3), 1);
    assert_eq!(steps[0].phase, Phase::Think);
    let think = engine.tokenizer().token_id("<think>").unwrap();
    assert!(prompt.contains(&think), "<think> was not parsed as its token: {prompt:?}");
}

#[test]
fn step_texts_concatenate_to_the_decoded_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_tiny(dir.path(), &Tiny::llama());
    let mut engine = load(&path);
    let (steps, _, _) = run(&mut engine, chat("emoji 🙂 and 中文"), greedy(40), 1);
    let bytes: Vec<u8> =
        steps.iter().flat_map(|s| engine.tokenizer().token_bytes(s.token_id).to_vec()).collect();
    let text: String = steps.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(text, String::from_utf8_lossy(&bytes));
    assert!(steps.windows(2).all(|w| w[0].t_us <= w[1].t_us && w[0].index + 1 == w[1].index));
}

#[test]
fn a_prompt_longer_than_the_context_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_tiny(dir.path(), &Tiny { context: 32, ..Tiny::llama() });
    let mut engine = load(&path);
    let req = RunRequest {
        prompt: chat(&"the answer is 42. ".repeat(20)),
        sampler: greedy(4),
        top_logprobs: 1,
        forced: Vec::new(),
        forced_text: None,
        routing: RoutingDetail::Selected,
        prompt_routing: true,
    };
    let err =
        engine.generate(&req, &mut Vec::new(), &AtomicBool::new(false)).unwrap_err().to_string();
    assert!(err.contains("the context holds 32"), "{err}");
    // A prompt that fits but leaves little room stops at the end of the context.
    let (steps, stop, prompt) = run(&mut engine, Prompt::Raw("the answer".into()), greedy(100), 1);
    if stop == StopReason::ContextFull {
        assert_eq!(prompt.len() + steps.len(), 32);
    }
}

#[test]
fn cancel_stops_before_the_first_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_tiny(dir.path(), &Tiny::llama());
    let mut engine = load(&path);
    let mut events = Vec::new();
    let req = RunRequest {
        prompt: chat("x"),
        sampler: greedy(10),
        top_logprobs: 1,
        forced: Vec::new(),
        forced_text: None,
        routing: RoutingDetail::Selected,
        prompt_routing: true,
    };
    let summary = engine.generate(&req, &mut events, &AtomicBool::new(true)).unwrap();
    assert_eq!(summary.stop, StopReason::User);
    assert_eq!(summary.timings.generated_tokens, 0);
}

#[test]
fn forced_tokens_replay_a_prefix_and_fork_at_the_chosen_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_tiny(dir.path(), &Tiny::qwen2());
    let mut engine = load(&path);
    let sampler = SamplerSpec {
        temperature: 0.9,
        seed: 7,
        max_tokens: 12,
        ignore_eos: true,
        ..SamplerSpec::default()
    };
    let (parent, _, _) = run(&mut engine, chat("fork here"), sampler.clone(), 5);
    // Forcing the parent's own first six tokens reproduces the whole run: the sampler draws at
    // forced steps too, so its random stream stays in step.
    let prefix: Vec<u32> = parent[..6].iter().map(|s| s.token_id).collect();
    let (replay, _, _) =
        run_forced(&mut engine, chat("fork here"), sampler.clone(), 5, prefix.clone());
    let untimed = |steps: &[Step]| -> Vec<Step> {
        steps.iter().map(|s| Step { t_us: 0, ..s.clone() }).collect()
    };
    assert_eq!(untimed(&replay), untimed(&parent));
    // Forcing the second-best alternative at step 6 keeps steps 0..6 and records the forced
    // token with its own raw logprob.
    let alt = parent[6].top.iter().find(|t| t.id != parent[6].token_id).unwrap().clone();
    let mut forced = prefix;
    forced.push(alt.id);
    let (child, _, _) = run_forced(&mut engine, chat("fork here"), sampler, 5, forced);
    for (p, c) in parent[..6].iter().zip(&child) {
        assert_eq!((p.token_id, p.logprob, &p.top), (c.token_id, c.logprob, &c.top));
    }
    assert_eq!(child[6].token_id, alt.id);
    assert!((child[6].logprob - alt.logprob).abs() < 1e-6);
    assert_eq!(child.len(), 12);
    // An id outside the vocabulary is refused before anything runs.
    let req = RunRequest {
        prompt: chat("x"),
        sampler: greedy(3),
        top_logprobs: 1,
        forced: vec![u32::MAX],
        forced_text: None,
        routing: RoutingDetail::Selected,
        prompt_routing: true,
    };
    let err = engine.generate(&req, &mut Vec::new(), &AtomicBool::new(false)).unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
}
