//! A straightforward f32 implementation of the dense decoder (llama, qwen2, qwen3), written
//! independently of the engine to check its arithmetic on the tiny models: RoPE styles, GQA,
//! biases, q/k norms, `rope_freqs`, tied embeddings. Only the weights are read through the
//! engine's GGUF reader.
#![allow(clippy::needless_range_loop)]

use std::collections::HashMap;
use std::path::Path;

use candle_core::Device;

use super::tiny::Tiny;

/// A straightforward f32 implementation of the dense decoder, position by position, written
/// independently of the engine to check its arithmetic (RoPE styles, GQA, biases, q/k norms).
pub struct Naive {
    t: Tiny,
    w: HashMap<String, Vec<f32>>,
}

fn rms(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let s = 1.0 / (ms + eps).sqrt();
    x.iter().zip(w).map(|(a, b)| a * s * b).collect()
}

fn matvec(w: &[f32], x: &[f32]) -> Vec<f32> {
    w.chunks(x.len()).map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum()).collect()
}

impl Naive {
    pub fn load(path: &Path, t: &Tiny) -> Self {
        let g = thinkdbg::engine::gguf::Gguf::open(path).unwrap();
        let mut r = g.reader().unwrap();
        let mut w = HashMap::new();
        for info in &g.tensors {
            let q = r.qtensor(&info.name, &Device::Cpu).unwrap();
            let v = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            w.insert(info.name.clone(), v);
        }
        Naive { t: t.clone(), w }
    }

    fn get(&self, name: &str) -> &[f32] {
        &self.w[name]
    }

    /// Log-softmax of the logits after the last of `tokens`.
    pub fn logprobs(&self, tokens: &[u32]) -> Vec<f32> {
        let t = &self.t;
        let (e, hd) = (t.n_embd, t.head_dim);
        let n_rep = t.n_head / t.n_head_kv;
        let eps = 1e-6f32;
        let mut keys: Vec<Vec<Vec<Vec<f32>>>> = vec![Vec::new(); t.n_layer]; // layer, pos, kv head, dim
        let mut vals = keys.clone();
        let mut last = Vec::new();
        let inv_freq: Vec<f64> = (0..hd / 2)
            .map(|i| {
                let f = 10000f64.powf(-2.0 * i as f64 / hd as f64);
                if t.rope_freqs && i >= hd / 4 {
                    f / (1.0 + i as f64)
                } else {
                    f
                }
            })
            .collect();
        let rope = |v: &mut [f32], pos: usize| {
            for i in 0..hd / 2 {
                let a = pos as f64 * inv_freq[i];
                let (c, s) = (a.cos() as f32, a.sin() as f32);
                let (i0, i1) = if t.arch == "llama" { (2 * i, 2 * i + 1) } else { (i, i + hd / 2) };
                let (x0, x1) = (v[i0], v[i1]);
                v[i0] = x0 * c - x1 * s;
                v[i1] = x0 * s + x1 * c;
            }
        };
        for (pos, &tok) in tokens.iter().enumerate() {
            let mut x =
                self.get("token_embd.weight")[tok as usize * e..(tok as usize + 1) * e].to_vec();
            for l in 0..t.n_layer {
                let n = |s: &str| format!("blk.{l}.{s}");
                let h = rms(&x, self.get(&n("attn_norm.weight")), eps);
                let mut q = matvec(self.get(&n("attn_q.weight")), &h);
                let mut k = matvec(self.get(&n("attn_k.weight")), &h);
                let mut v = matvec(self.get(&n("attn_v.weight")), &h);
                if t.arch == "qwen2" {
                    for (a, b) in
                        [(&mut q, "attn_q.bias"), (&mut k, "attn_k.bias"), (&mut v, "attn_v.bias")]
                    {
                        for (x, y) in a.iter_mut().zip(self.get(&n(b))) {
                            *x += y;
                        }
                    }
                }
                let mut qh: Vec<Vec<f32>> = q.chunks(hd).map(<[f32]>::to_vec).collect();
                let mut kh: Vec<Vec<f32>> = k.chunks(hd).map(<[f32]>::to_vec).collect();
                let vh: Vec<Vec<f32>> = v.chunks(hd).map(<[f32]>::to_vec).collect();
                if t.arch == "qwen3" {
                    qh = qh
                        .iter()
                        .map(|x| rms(x, self.get(&n("attn_q_norm.weight")), eps))
                        .collect();
                    kh = kh
                        .iter()
                        .map(|x| rms(x, self.get(&n("attn_k_norm.weight")), eps))
                        .collect();
                }
                qh.iter_mut().for_each(|x| rope(x, pos));
                kh.iter_mut().for_each(|x| rope(x, pos));
                keys[l].push(kh);
                vals[l].push(vh);
                let mut out = Vec::with_capacity(t.n_head * hd);
                for (head, qv) in qh.iter().enumerate() {
                    let kvh = head / n_rep;
                    let scores: Vec<f32> = (0..=pos)
                        .map(|p| {
                            keys[l][p][kvh].iter().zip(qv).map(|(a, b)| a * b).sum::<f32>()
                                / (hd as f32).sqrt()
                        })
                        .collect();
                    let m = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                    let ex: Vec<f32> = scores.iter().map(|s| (s - m).exp()).collect();
                    let z: f32 = ex.iter().sum();
                    for d in 0..hd {
                        out.push((0..=pos).map(|p| ex[p] / z * vals[l][p][kvh][d]).sum());
                    }
                }
                let o = matvec(self.get(&n("attn_output.weight")), &out);
                x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
                let h = rms(&x, self.get(&n("ffn_norm.weight")), eps);
                let g = matvec(self.get(&n("ffn_gate.weight")), &h);
                let u = matvec(self.get(&n("ffn_up.weight")), &h);
                let act: Vec<f32> =
                    g.iter().zip(&u).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
                let d = matvec(self.get(&n("ffn_down.weight")), &act);
                x.iter_mut().zip(&d).for_each(|(a, b)| *a += b);
            }
            last = x;
        }
        let h = rms(&last, self.get("output_norm.weight"), eps);
        let out = if self.w.contains_key("output.weight") {
            self.get("output.weight")
        } else {
            self.get("token_embd.weight")
        };
        let logits = matvec(out, &h);
        let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let lse = m + logits.iter().map(|l| (l - m).exp()).sum::<f32>().ln();
        logits.iter().map(|l| l - lse).collect()
    }
}
