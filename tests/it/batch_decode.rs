//! Batched decode (`Engine::generate_many`): N samples of one prompt, prefilled once and
//! decoded together, must each give what `generate` gives alone with the same seed: the same
//! tokens, texts, phases and stop, logprobs, entropies and alternatives within 1e-4 (F32
//! models; a batched matmul may round differently in the last bits), the same MoE routing,
//! and the same event stream. Checked on tiny F32 `llama`, `qwen2`, `qwen3` and `qwen3moe`
//! models (batched path), a `deepseek2` one (one sample after the other), greedy and sampled,
//! with samples that end at different steps (end of generation, token limit), and cancelled
//! in the middle.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use candle_core::quantized::GgmlDType;
use thinkdbg::engine::batch::MAX_BATCH;
use thinkdbg::engine::generate::{Prompt, RunRequest};
use thinkdbg::engine::synth::{self, Dims, SynthSpec};
use thinkdbg::engine::Engine;
use thinkdbg::record::{Event, Recorder};
use thinkdbg::trace::{Message, RoutingDetail, SamplerSpec, StopReason};

use crate::common::{demo_model, exact, heavy, write_tiny, Tiny};

fn load(path: &std::path::Path) -> Engine {
    Engine::load(path, &exact(), &mut |_, _| {}).unwrap()
}

fn request(sampler: SamplerSpec) -> RunRequest {
    RunRequest {
        prompt: Prompt::Chat(vec![Message::new("user", "count the apples: one two")]),
        sampler,
        top_logprobs: 8,
        forced: Vec::new(),
        forced_text: None,
        routing: RoutingDetail::Full,
        prompt_routing: true,
    }
}

fn sampled(max_tokens: usize) -> SamplerSpec {
    SamplerSpec { temperature: 1.3, top_p: 0.95, max_tokens, seed: 0, ..SamplerSpec::default() }
}

fn alone(engine: &mut Engine, req: &RunRequest, seed: u64) -> Vec<Event> {
    let mut req = req.clone();
    req.sampler.seed = seed;
    let mut events = Vec::new();
    engine.generate(&req, &mut events, &AtomicBool::new(false)).unwrap();
    events
}

fn together(engine: &mut Engine, req: &RunRequest, seeds: &[u64]) -> Vec<Vec<Event>> {
    let mut events: Vec<Vec<Event>> = vec![Vec::new(); seeds.len()];
    let mut recs: Vec<&mut dyn Recorder> =
        events.iter_mut().map(|e| e as &mut dyn Recorder).collect();
    let summaries = engine.generate_many(req, seeds, &mut recs, &AtomicBool::new(false)).unwrap();
    assert_eq!(summaries.len(), seeds.len());
    for (s, ev) in summaries.iter().zip(&events) {
        match ev.last() {
            Some(Event::Finished { stop, timings }) => {
                assert_eq!(*stop, s.stop);
                assert_eq!(timings.generated_tokens, s.timings.generated_tokens);
            }
            other => panic!("the last event is {other:?}"),
        }
    }
    events
}

fn stop_of(events: &[Event]) -> StopReason {
    match events.last() {
        Some(Event::Finished { stop, .. }) => *stop,
        other => panic!("the last event is {other:?}"),
    }
}

fn steps(events: &[Event]) -> usize {
    events.iter().filter(|e| matches!(e, Event::Step { .. })).count()
}

/// `got` (a batched sample) against `want` (the same seed alone): event by event.
fn same_run(what: &str, got: &[Event], want: &[Event]) {
    assert_eq!(got.len(), want.len(), "{what}: {} events, alone {}", got.len(), want.len());
    let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 || (a.is_infinite() && a == b);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        match (g, w) {
            (Event::Step { step: gs, routing: gr }, Event::Step { step: ws, routing: wr }) => {
                let at = format!("{what} step {}", ws.index);
                assert_eq!(gs.index, ws.index, "{at}");
                assert_eq!(gs.token_id, ws.token_id, "{at}: token");
                assert_eq!(gs.text, ws.text, "{at}: text");
                assert_eq!(gs.phase, ws.phase, "{at}: phase");
                assert!(close(gs.logprob, ws.logprob), "{at}: {} vs {}", gs.logprob, ws.logprob);
                assert!(close(gs.entropy, ws.entropy), "{at}: entropy");
                assert_eq!(gs.top.len(), ws.top.len(), "{at}: alternatives");
                for wt in &ws.top {
                    // Near-ties may swap places; each alternative must be there, same value.
                    let gt = gs.top.iter().find(|t| t.id == wt.id);
                    let near_tie =
                        ws.top.iter().any(|o| o.id != wt.id && close(o.logprob, wt.logprob));
                    match gt {
                        Some(gt) => assert!(close(gt.logprob, wt.logprob), "{at}: alt {}", wt.id),
                        None => assert!(near_tie, "{at}: alternative {} missing", wt.id),
                    }
                }
                match (gr, wr) {
                    (Some(gr), Some(wr)) => {
                        assert_eq!(gr.layers.len(), wr.layers.len(), "{at}: routed layers");
                        for (gl, wl) in gr.layers.iter().zip(&wr.layers) {
                            assert_eq!(gl.layer, wl.layer);
                            assert_eq!(gl.experts, wl.experts, "{at}: layer {} experts", wl.layer);
                            let (gw, ww) =
                                (gl.weights.clone().unwrap(), wl.weights.clone().unwrap());
                            // Recorded gate weights are rounded to f16: values within 1e-4
                            // of each other may round one f16 step apart.
                            let f16_close = |a: f32, b: f32| {
                                let step = half::f16::EPSILON.to_f32() * a.abs().max(b.abs());
                                (a - b).abs() <= 1e-4 + step
                            };
                            assert!(
                                gw.iter().zip(&ww).all(|(a, b)| f16_close(*a, *b)),
                                "{at}: weights {gw:?} vs {ww:?}"
                            );
                        }
                    }
                    (None, None) => {}
                    _ => panic!("{at}: routing {gr:?} alone {wr:?}"),
                }
            }
            (
                Event::Finished { stop: gs, timings: gt },
                Event::Finished { stop: ws, timings: wt },
            ) => {
                assert_eq!(gs, ws, "{what}: stop");
                assert_eq!(gt.generated_tokens, wt.generated_tokens, "{what}: tokens");
                assert_eq!(gt.prompt_tokens, wt.prompt_tokens, "{what}: prompt tokens");
            }
            (Event::PromptRouting(g), Event::PromptRouting(w)) => {
                assert_eq!(g.len(), w.len(), "{what}: prompt routing");
                for (a, b) in g.iter().zip(w) {
                    for (al, bl) in a.layers.iter().zip(&b.layers) {
                        assert_eq!(al.experts, bl.experts, "{what}: prompt routing");
                    }
                }
            }
            (g, w) => assert_eq!(g, w, "{what}: event {i}"),
        }
    }
}

/// Seeds whose lone runs end at an end-of-generation token at different steps (at least
/// `min_eos` of them, where the model ends runs at all), plus seeds that run to the token
/// limit: a batch in which sequences leave at different times.
fn mixed_seeds(engine: &mut Engine, req: &RunRequest, min_eos: usize) -> Vec<u64> {
    let (mut eos, mut full) = (Vec::<(u64, usize)>::new(), Vec::new());
    let tries = if min_eos == 0 { 40 } else { 400u64 };
    for seed in 0..tries {
        let ev = alone(engine, req, seed);
        match stop_of(&ev) {
            StopReason::Eos if !eos.iter().any(|&(_, n)| n == steps(&ev)) => {
                eos.push((seed, steps(&ev)))
            }
            StopReason::MaxTokens if full.len() < 3 => full.push(seed),
            _ => {}
        }
        if eos.len() >= 2 && full.len() >= 3 {
            break;
        }
    }
    assert!(eos.len() >= min_eos, "no {min_eos} seeds in {tries} end early at different steps");
    let mut seeds: Vec<u64> = eos.iter().map(|&(s, _)| s).collect();
    // Interleaved, so that rows leave from the middle of the batch.
    seeds.insert(seeds.len().min(1), full[0]);
    seeds.extend(&full[1..]);
    seeds
}

fn check(what: &str, engine: &mut Engine, req: &RunRequest, seeds: &[u64]) {
    let batch = together(engine, req, seeds);
    for (&seed, got) in seeds.iter().zip(&batch) {
        let want = alone(engine, req, seed);
        same_run(&format!("{what} seed {seed}"), got, &want);
    }
}

fn tiny_moe(dir: &std::path::Path, arch: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{arch}.gguf"));
    let dims = Dims::named(arch, "tiny").unwrap();
    synth::write(&SynthSpec { dims, quant: GgmlDType::F32, seed: 7 }, &path).unwrap();
    path
}

#[test]
fn every_sample_of_a_batch_is_its_lone_run_on_dense_models() {
    let dir = tempfile::tempdir().unwrap();
    for tiny in [Tiny::llama(), Tiny::qwen2(), Tiny::qwen3()] {
        let mut engine = load(&write_tiny(dir.path(), &tiny));
        let greedy = request(SamplerSpec { max_tokens: 12, ..SamplerSpec::default() });
        check(&format!("{} greedy", tiny.arch), &mut engine, &greedy, &[1, 2, 3]);
        // The tiny dense models (random weights) hardly ever end a run, so the early
        // leavers are checked on qwen3moe below, which runs the same dense decoder code.
        let req = request(sampled(40));
        let seeds = mixed_seeds(&mut engine, &req, 0);
        check(&format!("{} sampled", tiny.arch), &mut engine, &req, &seeds);
        // And a lone sample through generate_many is just generate.
        check(&format!("{} one", tiny.arch), &mut engine, &req, &seeds[..1]);
    }
}

/// A real vocabulary (the demo model's 49 152 tokens) splits the statistics of a step over
/// candle's pool, also in a batched decode, whose draws are themselves tasks of the pool:
/// each sample is still its lone run. (The draws once started a nested job there, which
/// waits for itself: every batch of a real model hung.)
#[test]
fn a_batch_of_the_demo_model_is_each_samples_lone_run() {
    let _heavy = heavy();
    let mut engine = load(&demo_model());
    check("demo sampled", &mut engine, &request(sampled(6)), &[1, 2]);
}

/// More samples than one batch holds (`MAX_BATCH`) run as several batches, each sample still
/// its lone run, and every recorder gets its own sample.
#[test]
fn requests_past_one_batch_run_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = load(&write_tiny(dir.path(), &Tiny::llama()));
    let req = request(sampled(5));
    let seeds: Vec<u64> = (0..MAX_BATCH as u64 + 3).collect();
    check("past one batch", &mut engine, &req, &seeds);
}

#[test]
fn every_sample_of_a_batch_is_its_lone_run_on_moe_models() {
    let dir = tempfile::tempdir().unwrap();
    // qwen3moe decodes in a batch; deepseek2 runs its samples one after the other.
    for arch in ["qwen3moe", "deepseek2"] {
        let mut engine = load(&tiny_moe(dir.path(), arch));
        let greedy = request(SamplerSpec { max_tokens: 10, ..SamplerSpec::default() });
        check(&format!("{arch} greedy"), &mut engine, &greedy, &[5, 6]);
        let req = request(sampled(24));
        let seeds = mixed_seeds(&mut engine, &req, 2);
        check(&format!("{arch} sampled"), &mut engine, &req, &seeds);
        let mut quiet = request(sampled(24));
        quiet.routing = RoutingDetail::Off;
        check(&format!("{arch} no routing"), &mut engine, &quiet, &seeds);
    }
}

/// Sets the shared cancel flag when its sample has seen `after` steps.
struct CancelAfter {
    events: Vec<Event>,
    after: usize,
    flag: Arc<AtomicBool>,
    seen: Arc<AtomicUsize>,
}

impl Recorder for CancelAfter {
    fn record(&mut self, e: Event) {
        if matches!(e, Event::Step { .. })
            && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.after
        {
            self.flag.store(true, Ordering::SeqCst);
        }
        self.events.push(e);
    }
}

/// Cancelling stops every sample with `User`, each keeping a prefix of its lone run with every
/// step (and its routing) reported.
#[test]
fn cancelling_a_batch_stops_every_sample_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = load(&tiny_moe(dir.path(), "qwen3moe"));
    let req = request(SamplerSpec { ignore_eos: true, ..sampled(30) });
    let seeds = [11u64, 12, 13, 14];
    let flag = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicUsize::new(0));
    let mut recs: Vec<CancelAfter> = seeds
        .iter()
        .map(|_| CancelAfter {
            events: Vec::new(),
            after: 9,
            flag: flag.clone(),
            seen: seen.clone(),
        })
        .collect();
    let mut dyns: Vec<&mut dyn Recorder> =
        recs.iter_mut().map(|r| r as &mut dyn Recorder).collect();
    let summaries = engine.generate_many(&req, &seeds, &mut dyns, &flag).unwrap();
    for ((rec, &seed), summary) in recs.iter().zip(&seeds).zip(&summaries) {
        assert_eq!(summary.stop, StopReason::User, "seed {seed}");
        assert_eq!(stop_of(&rec.events), StopReason::User);
        let n = steps(&rec.events);
        assert!((2..30).contains(&n), "seed {seed}: {n} steps");
        let want = alone(&mut engine, &req, seed);
        let mut it = want.iter().filter(|e| matches!(e, Event::Step { .. }));
        for e in rec.events.iter().filter(|e| matches!(e, Event::Step { .. })) {
            let (Event::Step { step: g, routing: gr }, Some(Event::Step { step: w, .. })) =
                (e, it.next())
            else {
                unreachable!()
            };
            assert_eq!(g.token_id, w.token_id, "seed {seed} step {}", w.index);
            assert!(gr.is_some(), "seed {seed} step {}: no routing", w.index);
        }
    }
}

/// Bad input: seeds and recorders must pair up.
#[test]
fn seeds_and_recorders_must_pair_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = load(&write_tiny(dir.path(), &Tiny::llama()));
    let mut one: Vec<Event> = Vec::new();
    let mut recs: Vec<&mut dyn Recorder> = vec![&mut one];
    let err = engine
        .generate_many(&request(sampled(4)), &[1, 2], &mut recs, &AtomicBool::new(false))
        .unwrap_err()
        .to_string();
    assert!(err.contains("2 seeds but 1 recorders"), "{err}");
}
