//! An independent check of recorded routing: plain f32 loops over the dequantised router
//! weights and each MoE layer's input (the engine's debug hook) recompute softmax, top-k and
//! the renormalised weights, and must select the same experts with the same weights as the
//! engine recorded, for prompt tokens (batched prefill) and a decode step; with
//! `--routing full` the recorded router distribution must be the recomputed softmax. The
//! engine-level test checks what a run records: prompt routing, per-step routing, `off`.

use candle_core::quantized::GgmlDType;
use candle_core::Device;
use thinkdbg::engine::generate::{Prompt, RunRequest};
use thinkdbg::engine::gguf::Gguf;
use thinkdbg::engine::models;
use thinkdbg::engine::synth::{self, Dims, SynthSpec};
use thinkdbg::engine::{Engine, LoadOptions};
use thinkdbg::record::{Event, Recorder};
use thinkdbg::trace::{Message, RoutingDetail, SamplerSpec};

struct Collect(Vec<Event>);

impl Recorder for Collect {
    fn record(&mut self, e: Event) {
        self.0.push(e);
    }
}

/// Selected `(expert, weight)` pairs by the textbook rule, and the margin between the k-th
/// and (k+1)-th probability (how close the selection was to flipping).
fn reference_route(router: &[f32], x: &[f32], k: usize) -> (Vec<(u16, f32)>, f32, Vec<f32>) {
    let logits: Vec<f32> =
        router.chunks(x.len()).map(|r| r.iter().zip(x).map(|(a, b)| a * b).sum()).collect();
    let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let z: f32 = logits.iter().map(|l| (l - m).exp()).sum();
    let p: Vec<f32> = logits.iter().map(|l| (l - m).exp() / z).collect();
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[b].partial_cmp(&p[a]).unwrap());
    let s: f32 = order[..k].iter().map(|&e| p[e]).sum();
    let margin = p[order[k - 1]] - p[order[k]];
    (order[..k].iter().map(|&e| (e as u16, p[e] / s)).collect(), margin, p)
}

#[test]
fn recorded_routing_matches_an_independent_recomputation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let dims = Dims::named("qwen3moe", "tiny").unwrap();
    let k = dims.n_expert_used;
    synth::write(&SynthSpec { dims: dims.clone(), quant: GgmlDType::Q8_0, seed: 11 }, &path)
        .unwrap();
    let g = Gguf::open(&path).unwrap();
    let mut reader = g.reader().unwrap();
    let mut model = models::load(&g, &Device::Cpu, &mut |_, _| {}).unwrap();
    model.capture_router_inputs(true);
    model.set_routing_detail(RoutingDetail::Full);
    let prompt: Vec<u32> = vec![377, 117, 115, 262, 10, 363, 272, 261, 378];
    let mut checked = 0;
    let mut pos = 0;
    for tokens in [prompt.clone(), vec![42]] {
        model.forward(&tokens, pos).unwrap();
        pos += tokens.len();
        let routing = model.take_routing();
        let inputs = model.take_router_inputs();
        assert_eq!(routing.len(), tokens.len(), "one routing per processed token");
        assert_eq!(inputs.len(), dims.n_layer);
        for (layer, rows) in &inputs {
            let router = reader
                .qtensor(&format!("blk.{layer}.ffn_gate_inp.weight"), &Device::Cpu)
                .unwrap()
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for (t, x) in rows.iter().enumerate() {
                let (want, margin, probs) = reference_route(&router, x, k);
                let got = routing[t].layers.iter().find(|l| l.layer == *layer).unwrap();
                let full = got.router.as_ref().expect("--routing full keeps the distribution");
                assert_eq!(full.len(), dims.n_expert);
                for (e, (a, b)) in full.iter().zip(&probs).enumerate() {
                    assert!((a - b).abs() < 1e-3, "layer {layer} token {t} expert {e}: {a} vs {b}");
                }
                if margin < 1e-4 {
                    continue; // a genuine tie: either choice is right
                }
                let mut want_ids: Vec<u16> = want.iter().map(|w| w.0).collect();
                let mut got_ids = got.experts.clone();
                want_ids.sort();
                got_ids.sort();
                assert_eq!(got_ids, want_ids, "layer {layer} token {t}");
                for (e, w) in &want {
                    let i = got.experts.iter().position(|x| x == e).unwrap();
                    let gw = got.weights.as_ref().unwrap()[i];
                    assert!(
                        (gw - w).abs() < 1e-3,
                        "layer {layer} token {t} expert {e}: {gw} vs {w}"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= dims.n_layer * 8, "only {checked} routes checked");
}

/// What one run on a tiny qwen3moe reports at each routing detail: the prompt's routing
/// once after the prefill (one entry per prompt token, every MoE layer), one routing per
/// step (the last one included), the full distribution only with `Full`, nothing with `Off`;
/// and the tokens do not depend on what is recorded.
#[test]
fn a_run_records_prompt_and_step_routing_at_the_asked_detail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let dims = Dims::named("qwen3moe", "tiny").unwrap();
    synth::write(&SynthSpec { dims: dims.clone(), quant: GgmlDType::Q8_0, seed: 5 }, &path)
        .unwrap();
    let mut engine = Engine::load(&path, &LoadOptions::default(), &mut |_, _| {}).unwrap();
    let run = |engine: &mut Engine, routing: RoutingDetail, prompt_routing: bool| {
        let req = RunRequest {
            prompt: Prompt::Chat(vec![Message::new("user", "two plus two")]),
            sampler: SamplerSpec { max_tokens: 6, ignore_eos: true, ..SamplerSpec::default() },
            top_logprobs: 3,
            forced: vec![],
            forced_text: None,
            routing,
            prompt_routing,
        };
        let mut rec = Collect(Vec::new());
        engine.generate(&req, &mut rec, &std::sync::atomic::AtomicBool::new(false)).unwrap();
        rec.0
    };
    let prompt_len = |ev: &[Event]| {
        ev.iter()
            .find_map(|e| match e {
                Event::Started { prompt_tokens, .. } => Some(prompt_tokens.len()),
                _ => None,
            })
            .unwrap()
    };
    let steps = |ev: &[Event]| {
        ev.iter()
            .filter_map(|e| match e {
                Event::Step { step, routing } => Some((step.token_id, routing.clone())),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let prompt_routing = |ev: &[Event]| {
        ev.iter()
            .filter_map(|e| match e {
                Event::PromptRouting(r) => Some(r.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };

    let full = run(&mut engine, RoutingDetail::Full, true);
    let pr = prompt_routing(&full);
    assert_eq!(pr.len(), 1, "one PromptRouting event");
    assert_eq!(pr[0].len(), prompt_len(&full));
    for r in &pr[0] {
        assert_eq!(r.layers.len(), dims.n_layer);
        for l in &r.layers {
            assert_eq!(l.experts.len(), dims.n_expert_used);
            let p = l.router.as_ref().unwrap();
            assert_eq!(p.len(), dims.n_expert);
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 0.01, "softmax sums to one");
        }
    }
    let s_full = steps(&full);
    assert_eq!(s_full.len(), 6);
    assert!(s_full.iter().all(|(_, r)| r.as_ref().is_some_and(|r| r.layers.len() == dims.n_layer)));

    let selected = run(&mut engine, RoutingDetail::Selected, false);
    assert!(prompt_routing(&selected).is_empty(), "prompt routing turned off");
    let s_sel = steps(&selected);
    // The same tokens, and the same selection without the distribution.
    assert_eq!(
        s_sel.iter().map(|s| s.0).collect::<Vec<_>>(),
        s_full.iter().map(|s| s.0).collect::<Vec<_>>()
    );
    for ((_, a), (_, b)) in s_sel.iter().zip(&s_full) {
        let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
        for (la, lb) in a.layers.iter().zip(&b.layers) {
            assert!(la.router.is_none());
            assert_eq!((&la.experts, &la.weights), (&lb.experts, &lb.weights));
        }
    }

    let off = run(&mut engine, RoutingDetail::Off, true);
    assert!(prompt_routing(&off).is_empty());
    let s_off = steps(&off);
    assert!(s_off.iter().all(|(_, r)| r.is_none()), "no routing recorded when off");
    assert_eq!(
        s_off.iter().map(|s| s.0).collect::<Vec<_>>(),
        s_full.iter().map(|s| s.0).collect::<Vec<_>>()
    );
}
