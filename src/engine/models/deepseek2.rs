//! The `deepseek2` architecture (DeepSeek-V2, V2-Lite, V3, R1): multi-head latent attention
//! with a compact latent KV cache (kv_lora + rope floats per position and layer), YaRN RoPE
//! (interleaved) with the mscale² attention scale, leading dense blocks, then MoE blocks with
//! shared experts and the routing of `models::moe` (softmax or sigmoid, selection bias, group
//! limit, renormalisation and scale).
//!
//! Attention is computed in absorbed form for both tensor layouts: the legacy `attn_kv_b` is
//! split at load into the per-head key and value up-projections that the newer layout stores
//! as `attn_k_b` / `attn_v_b` (kept dequantised in f32). Depends on `engine::gguf`, `trace`,
//! candle.

use candle_core::quantized::{ggml_file, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use super::moe::{Gating, MoeFfn, MoeProbe};
use super::{Loader, Model, Progress};
use crate::engine::error::{Error, Result};
use crate::engine::gguf::Gguf;
use crate::engine::rope::{Rope, RopeStyle};

struct Attn {
    q_a: Option<(QMatMul, Tensor)>,
    q_b: QMatMul,
    kv_a: QMatMul,
    kv_a_norm: Tensor,
    /// Per head `(n_head, kv_lora, qk_nope)`: `q_abs = k_b[h] · q_nope`.
    k_b: Tensor,
    /// Per head `(n_head, v_head, kv_lora)`: `v = v_b[h] · o_lat`.
    v_b: Tensor,
    out: QMatMul,
    /// Latent cache `(1, len, kv_lora)` and rotated key part `(1, len, rope)`.
    c: Option<Tensor>,
    k_pe: Option<Tensor>,
    len: usize,
}

enum Ffn {
    Dense { gate: QMatMul, up: QMatMul, down: QMatMul },
    Moe(Box<MoeFfn>),
}

struct Block {
    attn_norm: Tensor,
    attn: Attn,
    ffn_norm: Tensor,
    ffn: Ffn,
}

/// A DeepSeek-V2/V3 model loaded from GGUF.
pub struct Deepseek2 {
    n_head: usize,
    kv_lora: usize,
    qk_nope: usize,
    qk_rope: usize,
    v_head: usize,
    eps: f32,
    kq_scale: f64,
    context: usize,
    embd: QTensor,
    embd_row_bytes: usize,
    n_embd: usize,
    blocks: Vec<Block>,
    output_norm: Tensor,
    output: QMatMul,
    vocab: usize,
    rope: Rope,
    device: Device,
    /// Routing (and router inputs) of the last forward call (MoE models only).
    probe: MoeProbe,
    /// The logit lens's residual capture.
    lens: super::LensCapture,
    /// Final hidden states of the last forward call, kept while `forward_each` runs.
    keep_hidden: bool,
    hidden: Option<Tensor>,
}

impl Deepseek2 {
    pub fn load(g: &Gguf, device: &Device, progress: Progress<'_>) -> Result<Self> {
        let k = |s: &str| format!("deepseek2.{s}");
        let n_embd = g.usize(&k("embedding_length"))?;
        let n_layer = g.block_count("deepseek2")?;
        let n_head = g.usize(&k("attention.head_count"))?;
        let kv_lora = g.usize(&k("attention.kv_lora_rank"))?;
        let qk_rope = g.usize(&k("rope.dimension_count"))?;
        let split = g.opt_usize(&k("attention.key_length_mla"))?.is_some();
        let (key_len, v_head) = if split {
            (g.usize(&k("attention.key_length_mla"))?, g.usize(&k("attention.value_length_mla"))?)
        } else {
            (g.usize(&k("attention.key_length"))?, g.usize(&k("attention.value_length"))?)
        };
        if key_len <= qk_rope || n_head == 0 {
            return Err(Error::metadata(
                k("attention.key_length"),
                format!("is {key_len} for {qk_rope} rotary dimensions"),
            ));
        }
        let qk_nope = key_len - qk_rope;
        let q_lora = g
            .opt_usize(&k("attention.q_lora_rank"))?
            .filter(|_| g.has_tensor("blk.0.attn_q_a.weight"));
        let lead = g.opt_usize(&k("leading_dense_block_count"))?.unwrap_or(0);
        let n_ff = g.opt_usize(&k("feed_forward_length"))?.unwrap_or(0);
        let n_ff_exp = g.opt_usize(&k("expert_feed_forward_length"))?.unwrap_or(0);
        let n_shared = g.opt_usize(&k("expert_shared_count"))?.unwrap_or(0);
        let gating = Gating::from_gguf(g)?;
        let eps = g.opt_f64(&k("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-6) as f32;
        let base = g.opt_f64(&k("rope.freq_base"))?.unwrap_or(10_000.0);
        let (rope, mscale) = match g.get(&k("rope.scaling.type")).and_then(|v| v.as_str()) {
            Some("yarn") => {
                let factor = g.opt_f64(&k("rope.scaling.factor"))?.unwrap_or(1.0);
                let orig = g.opt_usize(&k("rope.scaling.original_context_length"))?.unwrap_or(4096);
                let log_mul = g.opt_f64(&k("rope.scaling.yarn_log_multiplier"))?.unwrap_or(0.0);
                (
                    Rope::yarn(RopeStyle::Interleaved, qk_rope, base, factor, orig),
                    1.0 + log_mul * factor.ln(),
                )
            }
            _ => (Rope::new(RopeStyle::Interleaved, qk_rope, base, None, 1.0), 1.0),
        };
        let mut ld = Loader::new(g, device, progress)?;
        let vocab = g
            .tensor_info("token_embd.weight")
            .and_then(|t| t.dims.first().copied())
            .ok_or_else(|| Error::tensor("token_embd.weight", "is missing from the file"))?;
        let embd = ld.qtensor(g, "token_embd.weight", &[vocab, n_embd])?;
        let embd_row_bytes = n_embd / embd.dtype().block_size() * embd.dtype().type_size();
        let output = if g.has_tensor("output.weight") {
            ld.matrix(g, "output.weight", vocab, n_embd)?
        } else {
            QMatMul::from_qtensor(ld.qtensor(g, "token_embd.weight", &[vocab, n_embd])?)?
        };
        let output_norm = ld.vector(g, "output_norm.weight", n_embd)?;
        let mut blocks = Vec::with_capacity(n_layer);
        let qk = qk_nope + qk_rope;
        for i in 0..n_layer {
            let n = |s: &str| format!("blk.{i}.{s}");
            let (q_a, q_b) = match q_lora {
                Some(r) => (
                    Some((
                        ld.matrix(g, &n("attn_q_a.weight"), r, n_embd)?,
                        ld.vector(g, &n("attn_q_a_norm.weight"), r)?,
                    )),
                    ld.matrix(g, &n("attn_q_b.weight"), n_head * qk, r)?,
                ),
                None => (None, ld.matrix(g, &n("attn_q.weight"), n_head * qk, n_embd)?),
            };
            let (k_b, v_b) = if split {
                let kb = ld.qtensor(g, &n("attn_k_b.weight"), &[n_head, kv_lora, qk_nope])?;
                let vb = ld.qtensor(g, &n("attn_v_b.weight"), &[n_head, v_head, kv_lora])?;
                (kb.dequantize(device)?, vb.dequantize(device)?)
            } else {
                let kv =
                    ld.qtensor(g, &n("attn_kv_b.weight"), &[n_head * (qk_nope + v_head), kv_lora])?;
                let kv = kv.dequantize(device)?.reshape((n_head, qk_nope + v_head, kv_lora))?;
                (
                    kv.narrow(1, 0, qk_nope)?.transpose(1, 2)?.contiguous()?,
                    kv.narrow(1, qk_nope, v_head)?.contiguous()?,
                )
            };
            let attn = Attn {
                q_a,
                q_b,
                kv_a: ld.matrix(g, &n("attn_kv_a_mqa.weight"), kv_lora + qk_rope, n_embd)?,
                kv_a_norm: ld.vector(g, &n("attn_kv_a_norm.weight"), kv_lora)?,
                k_b,
                v_b,
                out: ld.matrix(g, &n("attn_output.weight"), n_embd, n_head * v_head)?,
                c: None,
                k_pe: None,
                len: 0,
            };
            let ffn = match (&gating, i >= lead) {
                (Some(gt), true) => Ffn::Moe(Box::new(MoeFfn::load(
                    &mut ld,
                    g,
                    i,
                    gt,
                    n_embd,
                    n_ff_exp,
                    (n_shared > 0).then_some(n_ff_exp * n_shared),
                )?)),
                _ => Ffn::Dense {
                    gate: ld.matrix(g, &n("ffn_gate.weight"), n_ff, n_embd)?,
                    up: ld.matrix(g, &n("ffn_up.weight"), n_ff, n_embd)?,
                    down: ld.matrix(g, &n("ffn_down.weight"), n_embd, n_ff)?,
                },
            };
            blocks.push(Block {
                attn_norm: ld.vector(g, &n("attn_norm.weight"), n_embd)?,
                attn,
                ffn_norm: ld.vector(g, &n("ffn_norm.weight"), n_embd)?,
                ffn,
            });
        }
        Ok(Deepseek2 {
            n_head,
            kv_lora,
            qk_nope,
            qk_rope,
            v_head,
            eps,
            kq_scale: mscale * mscale / (key_len as f64).sqrt(),
            context: g.opt_usize(&k("context_length"))?.unwrap_or(4096),
            embd,
            embd_row_bytes,
            n_embd,
            blocks,
            output_norm,
            output,
            vocab,
            rope,
            device: device.clone(),
            probe: MoeProbe::default(),
            lens: super::LensCapture::default(),
            keep_hidden: false,
            hidden: None,
        })
    }

    fn embed(&self, tokens: &[u32]) -> Result<Tensor> {
        let data = self.embd.data()?;
        let mut rows = Vec::with_capacity(tokens.len());
        for &t in tokens {
            let t = t as usize;
            if t >= self.vocab {
                return Err(Error::tensor(
                    "token_embd.weight",
                    format!("has no row for token id {t}"),
                ));
            }
            let bytes = &data[t * self.embd_row_bytes..(t + 1) * self.embd_row_bytes];
            let row = ggml_file::qtensor_from_ggml(
                self.embd.dtype(),
                bytes,
                vec![self.n_embd],
                &self.device,
            )?;
            rows.push(row.dequantize(&self.device)?);
        }
        Ok(Tensor::stack(&rows, 0)?.unsqueeze(0)?)
    }

    fn attention(
        &self,
        a: &mut Attn,
        x: &Tensor,
        pos: usize,
        cos: &Tensor,
        sin: &Tensor,
    ) -> Result<Tensor> {
        let (_, t, _) = x.dims3()?;
        let (h, nope, rope) = (self.n_head, self.qk_nope, self.qk_rope);
        let q = match &a.q_a {
            Some((qa, norm)) => {
                a.q_b.forward(&candle_nn::ops::rms_norm(&qa.forward(x)?, norm, self.eps)?)?
            }
            None => a.q_b.forward(x)?,
        };
        let q = q.reshape((t, h, nope + rope))?.transpose(0, 1)?; // (h, t, qk)
        let q_nope = q.narrow(2, 0, nope)?.contiguous()?;
        let q_pe = self
            .rope
            .apply(&q.narrow(2, nope, rope)?.contiguous()?.unsqueeze(0)?, cos, sin)?
            .squeeze(0)?;
        let ckv = a.kv_a.forward(x)?; // (1, t, kv_lora + rope)
        let c = candle_nn::ops::rms_norm(
            &ckv.narrow(2, 0, self.kv_lora)?.contiguous()?,
            &a.kv_a_norm,
            self.eps,
        )?;
        let k_pe = ckv.narrow(2, self.kv_lora, rope)?.contiguous()?.unsqueeze(1)?; // (1, 1, t, rope)
        let k_pe = self.rope.apply(&k_pe, cos, sin)?.squeeze(1)?; // (1, t, rope)
        let (c_all, pe_all) = match (&a.c, &a.k_pe) {
            (Some(oc), Some(op)) if a.len > 0 => (
                Tensor::cat(&[&oc.narrow(1, 0, a.len)?, &c], 1)?,
                Tensor::cat(&[&op.narrow(1, 0, a.len)?, &k_pe], 1)?,
            ),
            _ => (c, k_pe),
        };
        a.len = pos + t;
        a.c = Some(c_all.clone());
        a.k_pe = Some(pe_all.clone());
        let total = pos + t;
        let q_abs = q_nope.matmul(&a.k_b.transpose(1, 2)?.contiguous()?)?; // (h, t, kv_lora)
        let c_t = c_all.squeeze(0)?.t()?.contiguous()?; // (kv_lora, total)
        let pe_t = pe_all.squeeze(0)?.t()?.contiguous()?; // (rope, total)
        let scores =
            (q_abs.broadcast_matmul(&c_t)? + q_pe.contiguous()?.broadcast_matmul(&pe_t)?)?;
        let mut scores = (scores * self.kq_scale)?;
        if t > 1 {
            let mask: Vec<f32> = (0..t)
                .flat_map(|i| {
                    (0..total).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 })
                })
                .collect();
            scores = scores.broadcast_add(&Tensor::from_vec(mask, (t, total), &self.device)?)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?; // (h, t, total)
        let o_lat = probs.broadcast_matmul(&c_all.squeeze(0)?.contiguous()?)?; // (h, t, kv_lora)
        let o = o_lat.matmul(&a.v_b.transpose(1, 2)?.contiguous()?)?; // (h, t, v)
        let o = o.transpose(0, 1)?.contiguous()?.reshape((1, t, h * self.v_head))?;
        Ok(a.out.forward(&o)?)
    }
}

impl Model for Deepseek2 {
    fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Err(Error::Worker("forward called with no tokens".into()));
        }
        let t = tokens.len();
        let (cos, sin) = self.rope.tables(pos, t, &self.device)?;
        let mut x = self.embed(tokens)?;
        let mut blocks = std::mem::take(&mut self.blocks);
        let moe = blocks.iter().any(|b| matches!(b.ffn, Ffn::Moe(_)));
        let mut probe = std::mem::take(&mut self.probe);
        let capture = self.lens.on;
        let mut rows: Vec<Vec<f32>> = Vec::new();
        probe.begin(t, moe);
        let result = (|| -> Result<Tensor> {
            for b in blocks.iter_mut() {
                if b.attn.len != pos {
                    return Err(Error::Worker(format!(
                        "latent cache holds {} positions, forward starts at {pos}",
                        b.attn.len
                    )));
                }
                let h = candle_nn::ops::rms_norm(&x, &b.attn_norm, self.eps)?;
                x = (&x + self.attention(&mut b.attn, &h, pos, &cos, &sin)?)?;
                let h = candle_nn::ops::rms_norm(&x, &b.ffn_norm, self.eps)?;
                let y = match &b.ffn {
                    Ffn::Dense { gate, up, down } => down
                        .forward(&(candle_nn::ops::silu(&gate.forward(&h)?)? * up.forward(&h)?)?)?,
                    Ffn::Moe(m) => probe.forward(m, &h)?,
                };
                x = (&x + y)?;
                if capture {
                    rows.push(super::LensCapture::last_row(&x, t)?);
                }
            }
            Ok(x.clone())
        })();
        if capture {
            self.lens.rows = rows;
        }
        self.blocks = blocks;
        self.probe = probe;
        let x = result?;
        if self.keep_hidden {
            self.hidden = Some(x.clone());
        }
        let last = x.narrow(1, t - 1, 1)?.contiguous()?;
        let h = candle_nn::ops::rms_norm(&last, &self.output_norm, self.eps)?;
        Ok(self.output.forward(&h)?.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
    }

    fn forward_each(
        &mut self,
        tokens: &[u32],
        pos: usize,
        each: &mut dyn FnMut(usize, &[f32]) -> Result<()>,
    ) -> Result<()> {
        self.keep_hidden = true;
        let done = self.forward(tokens, pos);
        self.keep_hidden = false;
        done?;
        let x = self.hidden.take().ok_or_else(|| Error::Worker("no hidden states kept".into()))?;
        let output = &self.output;
        super::each_position(&x, &self.output_norm, self.eps, &|h| Ok(output.forward(h)?), each)
    }

    fn truncate_cache(&mut self, len: usize) {
        for b in &mut self.blocks {
            b.attn.len = b.attn.len.min(len);
        }
    }

    fn context_length(&self) -> usize {
        self.context
    }

    fn vocab_size(&self) -> usize {
        self.vocab
    }

    fn layers(&self) -> usize {
        self.blocks.len()
    }

    fn is_moe(&self) -> bool {
        self.blocks.iter().any(|b| matches!(b.ffn, Ffn::Moe(_)))
    }

    fn probe(&mut self) -> Option<&mut MoeProbe> {
        Some(&mut self.probe)
    }

    fn lens(&mut self) -> Option<&mut super::LensCapture> {
        Some(&mut self.lens)
    }

    fn lens_logits(&mut self, residual: &[f32]) -> Result<Vec<f32>> {
        let x = Tensor::from_vec(residual.to_vec(), (1, 1, residual.len()), &self.device)?;
        let h = candle_nn::ops::rms_norm(&x, &self.output_norm, self.eps)?;
        Ok(self.output.forward(&h)?.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
    }
}
