//! Synthetic mixture-of-experts models against llama.cpp: each fixture case names the
//! `model synth` arguments of a file; the test regenerates it (checking its SHA-256 against the
//! one llama.cpp read), decodes 32 greedy tokens and compares them with llama.cpp's
//! (`tests/fixtures/moe/greedy.json`, made by `make_reference.py` beside it). A divergence is
//! accepted only where llama.cpp's top-2 gap is below the near-tie threshold; comparison stops
//! there, as it is where the routing itself was a near-tie: a router logit margin between the
//! k-th and (k+1)-th expert below `ROUTER_NEAR_TIE` in some layer at the position that produced
//! the diverging logits (llama.cpp's f16 KV cache moves hidden states enough to flip such a
//! choice, and a flipped expert changes the logits by far more than 0.005). The final logits (after prompt + 31 tokens, in one batched prefill, which also
//! exercises grouping tokens by expert) are compared too, with max |Δ| reported.

use std::sync::atomic::AtomicBool;

use candle_core::quantized::GgmlDType;
use candle_core::Device;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use thinkdbg::engine::generate::{Prompt, RunRequest};
use thinkdbg::engine::gguf::Gguf;
use thinkdbg::engine::synth::{self, Dims, SynthSpec};
use thinkdbg::engine::{models, Engine, LoadOptions};
use thinkdbg::record::Event;
use thinkdbg::trace::{RoutingDetail, SamplerSpec};

use crate::common::heavy;

#[derive(Deserialize)]
struct Fixture {
    max_tokens: usize,
    near_tie: f32,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    synth_args: Vec<String>,
    sha256: String,
    prompt: String,
    prompt_ids: Vec<u32>,
    steps: Vec<RefStep>,
    final_logits: Vec<f32>,
}

#[derive(Deserialize)]
struct RefStep {
    token: u32,
    logprob: f32,
    top2_gap: f32,
}

const ROUTER_NEAR_TIE: f32 = 0.02;
/// Logprob agreement expected while routing agrees (llama.cpp's f16 KV cache and Q8
/// activations on both sides).
const LOGPROB_TOLERANCE: f32 = 0.1;

/// The smallest router logit margin between the k-th and (k+1)-th expert over all MoE layers
/// and the positions from `from` to the last of `tokens`, from the engine's router inputs and
/// the dequantised router.
fn router_margin(path: &std::path::Path, tokens: &[u32], from: usize, k: usize) -> f32 {
    let g = Gguf::open(path).unwrap();
    let mut reader = g.reader().unwrap();
    let mut model = models::load(&g, &Device::Cpu, &mut |_, _| {}).unwrap();
    model.capture_router_inputs(true);
    model.forward(tokens, 0).unwrap();
    let mut min = f32::INFINITY;
    for (layer, rows) in model.take_router_inputs() {
        let w = reader
            .qtensor(&format!("blk.{layer}.ffn_gate_inp.weight"), &Device::Cpu)
            .unwrap()
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for x in &rows[from..] {
            let mut l: Vec<f32> =
                w.chunks(x.len()).map(|r| r.iter().zip(x).map(|(a, b)| a * b).sum()).collect();
            l.sort_by(|a, b| b.total_cmp(a));
            min = min.min(l[k - 1] - l[k]);
        }
    }
    min
}

/// The spec `thinkdbg model synth ARGS` writes.
pub fn spec_of(args: &[String]) -> SynthSpec {
    let get =
        |k: &str| args.iter().position(|a| a == k).map(|i| args[i + 1].clone()).unwrap_or_default();
    let dims = Dims::named(&get("--arch"), &get("--shape")).unwrap();
    let quant = match get("--quant").as_str() {
        "q4_k" => GgmlDType::Q4K,
        "f32" => GgmlDType::F32,
        _ => GgmlDType::Q8_0,
    };
    SynthSpec { dims, quant, seed: get("--seed").parse().unwrap() }
}

#[test]
fn synthetic_moe_models_decode_like_llama_cpp() {
    let _heavy = heavy();
    let fx: Fixture =
        serde_json::from_str(include_str!("../fixtures/moe/greedy.json")).expect("fixture");
    let dir = tempfile::tempdir().unwrap();
    for case in &fx.cases {
        let path = dir.path().join(format!("{}.gguf", case.name));
        let spec = spec_of(&case.synth_args);
        synth::write(&spec, &path).unwrap();
        let sha = format!("{:x}", Sha256::digest(std::fs::read(&path).unwrap()));
        assert_eq!(
            sha, case.sha256,
            "{}: the regenerated file differs from the fixture's",
            case.name
        );

        let mut engine = Engine::load(&path, &LoadOptions::default(), &mut |_, _| {}).unwrap();
        let (_, ids) = engine.prepare(&Prompt::Raw(case.prompt.clone())).unwrap();
        assert_eq!(ids, case.prompt_ids, "{}: prompt tokens", case.name);
        let req = RunRequest {
            prompt: Prompt::Raw(case.prompt.clone()),
            sampler: SamplerSpec {
                max_tokens: fx.max_tokens,
                ignore_eos: true,
                ..SamplerSpec::default()
            },
            top_logprobs: 2,
            forced: Vec::new(),
            forced_text: None,
            routing: RoutingDetail::Selected,
            prompt_routing: true,
        };
        let mut events: Vec<Event> = Vec::new();
        engine.generate(&req, &mut events, &AtomicBool::new(false)).unwrap();
        let steps: Vec<_> = events
            .into_iter()
            .filter_map(|e| match e {
                Event::Step { step, routing } => Some((step, routing)),
                _ => None,
            })
            .collect();
        assert_eq!(steps.len(), fx.max_tokens);
        let n_layer = spec.dims.n_layer;
        let mut compared = 0;
        let mut max_lp = 0f32;
        let mut diverged = None;
        for (i, (want, (got, routing))) in case.steps.iter().zip(&steps).enumerate() {
            let r = routing.as_ref().expect("every step of a MoE model has routing");
            assert_eq!(r.layers.len(), n_layer - spec.dims.lead_dense, "one route per MoE layer");
            assert_eq!(r.layers[0].layer as usize, spec.dims.lead_dense);
            for l in &r.layers {
                assert_eq!(l.experts.len(), spec.dims.n_expert_used);
                let s: f32 = l.weights.as_ref().unwrap().iter().sum();
                let want = spec.dims.weights_scale;
                if spec.dims.weights_norm {
                    assert!((s - want).abs() < 4e-3 * want, "renormalised weights sum to {s}");
                }
            }
            let d_lp = (want.logprob - got.logprob).abs();
            if want.token != got.token_id || d_lp > LOGPROB_TOLERANCE {
                // Any routing near-tie since the prompt's last position may have flipped.
                let mut upto = case.prompt_ids.clone();
                upto.extend(case.steps[..i].iter().map(|s| s.token));
                let from = case.prompt_ids.len() - 1;
                let margin = router_margin(&path, &upto, from, spec.dims.n_expert_used);
                assert!(
                    (want.token != got.token_id && want.top2_gap < fx.near_tie)
                        || margin < ROUTER_NEAR_TIE,
                    "{}: step {i}: thinkdbg chose {} (|Δ logprob| {d_lp}) where llama.cpp chose {} with a top-2 gap of {} (router margin {margin})",
                    case.name,
                    got.token_id,
                    want.token,
                    want.top2_gap
                );
                diverged = Some((i, want.top2_gap, margin));
                break;
            }
            compared += 1;
            max_lp = max_lp.max(d_lp);
        }
        if diverged.is_some() {
            eprintln!("{}: {compared}/{} identical up to a near-tie {diverged:?} (step, top-2 gap, router margin), max |Δ logprob| before it {max_lp:.4}", case.name, fx.max_tokens);
            continue;
        }
        // Final logits, all positions at once through a fresh model.
        let g = Gguf::open(&path).unwrap();
        let mut model = models::load(&g, &Device::Cpu, &mut |_, _| {}).unwrap();
        let mut all = case.prompt_ids.clone();
        all.extend(case.steps[..fx.max_tokens - 1].iter().map(|s| s.token));
        let logits = model.forward(&all, 0).unwrap();
        let max_logit =
            logits.iter().zip(&case.final_logits).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        eprintln!(
            "{}: {compared}/{} greedy tokens identical, max |Δ logprob| {max_lp:.4}, final-logit max |Δ| {max_logit:.4}",
            case.name, fx.max_tokens
        );
        assert!(max_logit < 0.25, "{}: final logits differ by {max_logit}", case.name);
    }
}
