//! One token's forward pass on the CPU in plain `f32` vectors: the decode step of a dense
//! model, which is most of a generation's time.
//!
//! Through candle, one token costs about thirty tensor operations per layer (norms, reshapes,
//! transposes, RoPE, bias and residual adds, SiLU), each allocating its output; with a small
//! model that is a tenth of the step, spent on the calling thread while the pool's workers
//! wait for the next matmul. Here the same arithmetic runs on vectors between the matmuls
//! (`Matrix::forward_row`), in the same order and with the same expressions as candle's CPU
//! operations, so the logits are those of the tensor path bit for bit (the test below). Only
//! the KV cache stays a tensor (its buffer is shared with the prompt path and the batched
//! decode). Mixture-of-experts layers, a GPU, and a forward that keeps its hidden states
//! (`forward_each`) take the tensor path.

use candle_core::{DType, Tensor};

use super::{Dense, Ffn, Layer};
use crate::engine::error::{Error, Result};
use crate::engine::kernels::Matrix;

/// A layer's vectors (norm weights and biases) in main memory, copied once.
pub(super) struct HostLayer {
    attn_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
}

/// Every layer's `HostLayer` and the output norm.
pub(super) struct HostVectors {
    layers: Vec<HostLayer>,
    output_norm: Vec<f32>,
}

fn host(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
}

fn host_opt(t: &Option<Tensor>) -> Result<Option<Vec<f32>>> {
    t.as_ref().map(host).transpose()
}

impl HostLayer {
    fn of(l: &Layer) -> Result<Self> {
        Ok(HostLayer {
            attn_norm: host(&l.attn_norm)?,
            ffn_norm: host(&l.ffn_norm)?,
            bq: host_opt(&l.bq)?,
            bk: host_opt(&l.bk)?,
            bv: host_opt(&l.bv)?,
            q_norm: host_opt(&l.q_norm)?,
            k_norm: host_opt(&l.k_norm)?,
        })
    }
}

/// RMSNorm of `x` with weights `w`, as candle's CPU `rms_norm`: the squares summed in order in
/// f32, `m = sqrt(sum / n + eps)`, each value `x / m * w`.
pub(super) fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let m = norm_scale(x, eps);
    x.iter().zip(w).map(|(&v, &w)| v / m * w).collect()
}

/// `rms_norm` in place.
fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    let m = norm_scale(x, eps);
    for (v, &w) in x.iter_mut().zip(w) {
        *v = *v / m * w;
    }
}

fn norm_scale(x: &[f32], eps: f32) -> f32 {
    let sum2: f32 = x.iter().map(|&v| v * v).sum();
    (sum2 / x.len() as f32 + eps).sqrt()
}

/// `x += y`, element by element.
fn add(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

impl Dense {
    /// The logits after `token` at `pos` (the KV caches hold `pos` positions), computed in
    /// vectors; `None` where this path does not apply and `forward` takes the tensor path.
    pub(super) fn decode_one(&mut self, token: u32, pos: usize) -> Result<Option<Vec<f32>>> {
        let applies = self.vector_decode
            && self.cpu_attention()
            && !self.keep_hidden
            && self.layers.iter().all(|l| matches!(l.ffn, Ffn::Dense { .. }));
        if !applies {
            return Ok(None);
        }
        let host = match self.host.take() {
            Some(host) => host,
            None => HostVectors {
                layers: self.layers.iter().map(HostLayer::of).collect::<Result<_>>()?,
                output_norm: host(&self.output_norm)?,
            },
        };
        let mut layers = std::mem::take(&mut self.layers);
        self.probe.begin(1, false);
        let capture = self.lens.on;
        let mut rows = Vec::new();
        let eps = self.hp.rms_eps as f32;
        let result = (|| -> Result<Vec<f32>> {
            let mut x = self.embed(&[token])?.flatten_all()?.to_vec1::<f32>()?;
            let rope = self.rope.row(pos);
            for (layer, hl) in layers.iter_mut().zip(&host.layers) {
                let attn = self.attention_row(layer, hl, &x, pos, &rope)?;
                add(&mut x, &attn);
                let h = rms_norm(&x, &hl.ffn_norm, eps);
                let Ffn::Dense { gate, up, down } = &layer.ffn else {
                    return Err(Error::Worker(
                        "a mixture-of-experts layer in a dense decode".into(),
                    ));
                };
                let a = Matrix::forward_swiglu(gate, up, &h)?;
                let [y] = Matrix::forward_row([down], &a)?;
                add(&mut x, &y);
                if capture {
                    rows.push(x.clone());
                }
            }
            let h = rms_norm(&x, &host.output_norm, eps);
            let [logits] = Matrix::forward_row([&self.output], &h)?;
            Ok(logits)
        })();
        self.layers = layers;
        self.host = Some(host);
        if capture {
            self.lens.rows = rows;
        }
        result.map(Some)
    }

    /// A block's attention output (after the output projection) for the one row `x` at `pos`,
    /// appending its key and value to the layer's cache: `Dense::attention` in vectors.
    fn attention_row(
        &self,
        layer: &mut Layer,
        hl: &HostLayer,
        x: &[f32],
        pos: usize,
        (cos, sin): &(Vec<f32>, Vec<f32>),
    ) -> Result<Vec<f32>> {
        let hp = &self.hp;
        if layer.cache.len != pos {
            return Err(Error::Worker(format!(
                "KV cache holds {} positions, forward starts at {pos}",
                layer.cache.len
            )));
        }
        let eps = hp.rms_eps as f32;
        let h = rms_norm(x, &hl.attn_norm, eps);
        let [mut q, mut k, mut v] = Matrix::forward_row([&layer.wq, &layer.wk, &layer.wv], &h)?;
        for (y, b) in [(&mut q, &hl.bq), (&mut k, &hl.bk), (&mut v, &hl.bv)] {
            if let Some(b) = b {
                add(y, b);
            }
        }
        let d = hp.head_dim;
        for (y, norm) in [(&mut q, &hl.q_norm), (&mut k, &hl.k_norm)] {
            for head in y.chunks_exact_mut(d) {
                if let Some(w) = norm {
                    rms_norm_in_place(head, w, eps);
                }
                self.rope.rotate(head, cos, sin);
            }
        }
        layer.cache.append_row(&k, &v, d, hp.context_length)?;
        let (Some(kc), Some(vc)) = (&layer.cache.k, &layer.cache.v) else {
            return Err(Error::Worker("KV cache was not allocated".into()));
        };
        let seq = [(0, pos + 1)];
        let out = self
            .cached_attention_values(&q, (kc, vc), &seq, kc.dim(2)?)?
            .ok_or_else(|| Error::Worker("the KV cache is not an f16 or f32 CPU buffer".into()))?;
        let [o] = Matrix::forward_row([&layer.wo], &out)?;
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::GgmlDType;
    use candle_core::Device;

    use super::*;
    use crate::engine::gguf::Gguf;
    use crate::engine::models::Model;
    use crate::engine::synth::{self, Dims, SynthSpec};

    fn load(path: &std::path::Path, kv: DType, kernels: bool, vectors: bool) -> Dense {
        let g = Gguf::open(path).unwrap();
        let mut m = Dense::load(&g, &Device::Cpu, &mut |_, _| {}, kv).unwrap();
        m.vector_decode = vectors;
        if kernels {
            m.use_kernels();
        }
        m
    }

    /// The vector decode gives the tensor path's logits bit for bit: a prompt, then decode
    /// steps, for `llama` (interleaved RoPE) and `qwen2` (NEOX RoPE, biases), with weights
    /// that take this crate's kernels (`Q4_1`, `Q8_0`) and candle's (`F32`), and with both
    /// cache types.
    #[test]
    fn vector_decode_equals_the_tensor_path_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        for arch in ["llama", "qwen2"] {
            for quant in [GgmlDType::Q4_1, GgmlDType::Q8_0, GgmlDType::F32] {
                let dims = Dims::named(arch, "tiny").unwrap();
                let path = dir.path().join(format!("{arch}-{quant:?}.gguf"));
                synth::write(&SynthSpec { dims, quant, seed: 7 }, &path).unwrap();
                for kv in [DType::F32, DType::F16] {
                    let kernels = quant != GgmlDType::F32;
                    let mut plain = load(&path, kv, kernels, false);
                    let mut fast = load(&path, kv, kernels, true);
                    let prompt = [1u32, 5, 9, 2, 7];
                    let a = plain.forward(&prompt, 0).unwrap();
                    let b = fast.forward(&prompt, 0).unwrap();
                    assert_eq!(a, b);
                    let mut tok = 3u32;
                    for pos in prompt.len()..prompt.len() + 6 {
                        let a = plain.forward(&[tok], pos).unwrap();
                        let b = fast.forward(&[tok], pos).unwrap();
                        assert!(a.iter().all(|v| v.is_finite()));
                        assert_eq!(a, b, "{arch} {quant:?} {kv:?} at {pos}");
                        tok = (tok * 7 + 1) % 40;
                    }
                    // The vectors were used (they are copied on the first vector decode).
                    assert!(fast.host.is_some() && plain.host.is_none());
                }
            }
        }
    }

    /// The per-head RMSNorm of qwen3 (`rms_norm_in_place` on each head) is candle's.
    #[test]
    fn head_norm_is_candles_rms_norm() {
        let dev = Device::Cpu;
        let x: Vec<f32> = (0..48).map(|i| ((i * 37) % 23) as f32 * 0.31 - 3.0).collect();
        let w: Vec<f32> = (0..16).map(|i| 0.5 + i as f32 * 0.05).collect();
        let xt = Tensor::from_vec(x.clone(), (1, 3, 16), &dev).unwrap();
        let wt = Tensor::from_vec(w.clone(), 16, &dev).unwrap();
        let want: Vec<f32> = candle_nn::ops::rms_norm(&xt, &wt, 1e-6)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let mut got = x;
        for head in got.chunks_exact_mut(16) {
            rms_norm_in_place(head, &w, 1e-6);
        }
        assert_eq!(got, want);
    }
}
