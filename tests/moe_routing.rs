//! An independent check of recorded routing: plain f32 loops over the dequantised router
//! weights and each MoE layer's input (the engine's debug hook) recompute softmax, top-k and
//! the renormalised weights, and must select the same experts with the same weights as the
//! engine recorded, for prompt tokens (batched prefill) and a decode step.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use candle_core::quantized::GgmlDType;
use candle_core::Device;
use thinkdbg::engine::gguf::Gguf;
use thinkdbg::engine::models;
use thinkdbg::engine::synth::{self, Dims, SynthSpec};

/// Selected `(expert, weight)` pairs by the textbook rule, and the margin between the k-th
/// and (k+1)-th probability (how close the selection was to flipping).
fn reference_route(router: &[f32], x: &[f32], k: usize) -> (Vec<(u16, f32)>, f32) {
    let logits: Vec<f32> =
        router.chunks(x.len()).map(|r| r.iter().zip(x).map(|(a, b)| a * b).sum()).collect();
    let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let z: f32 = logits.iter().map(|l| (l - m).exp()).sum();
    let p: Vec<f32> = logits.iter().map(|l| (l - m).exp() / z).collect();
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[b].partial_cmp(&p[a]).unwrap());
    let s: f32 = order[..k].iter().map(|&e| p[e]).sum();
    let margin = p[order[k - 1]] - p[order[k]];
    (order[..k].iter().map(|&e| (e as u16, p[e] / s)).collect(), margin)
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
                let (want, margin) = reference_route(&router, x, k);
                let got = routing[t].layers.iter().find(|l| l.layer == *layer).unwrap();
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
