//! The dense decoder of the `llama`, `qwen2` and `qwen3` architectures: RMSNorm, grouped-query
//! attention with RoPE and a growing KV cache, SwiGLU feed-forward.
//!
//! Differences between the three are data: q/k/v biases (qwen2), per-head q/k RMSNorm (qwen3),
//! interleaved RoPE for `llama` (llama.cpp's NORM) and NEOX RoPE for Qwen, Llama-3.1
//! `rope_freqs` factors, a tied output layer when `output.weight` is absent. `qwen3moe` is
//! qwen3 attention with mixture-of-experts feed-forward layers (`models::moe`), whose routing
//! of every processed token is kept for `Model::take_routing`.

use std::sync::Arc;

use candle_core::quantized::{ggml_file, QTensor};
use candle_core::{DType, Device, Tensor};

mod attend;
mod batch;
mod cache;
mod decode;
mod flash;
mod prompt;

use super::moe::{Gating, MoeFfn, MoeProbe};
use super::{Loader, Model, Progress, SeqToken};
use crate::engine::error::{Error, Result};
use crate::engine::gguf::Gguf;
use crate::engine::kernels::Matrix;
use crate::engine::rope::{Rope, RopeStyle};
use cache::KvCache;

/// Hyper-parameters of a dense model, from `{arch}.*` metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Hparams {
    pub arch: String,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub rope_dims: usize,
    pub rope_base: f64,
    pub rope_linear_factor: f64,
    pub rms_eps: f64,
    pub context_length: usize,
    /// Routing rule of the MoE layers (`qwen3moe`), `None` for dense models.
    pub gating: Option<Gating>,
    /// Rows of each expert (`expert_feed_forward_length`).
    pub n_ff_exp: usize,
}

impl Hparams {
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let arch = g.architecture()?.to_string();
        let k = |s: &str| format!("{arch}.{s}");
        let n_embd = g.usize(&k("embedding_length"))?;
        let n_head = g.usize(&k("attention.head_count"))?;
        if n_head == 0 || n_embd == 0 {
            return Err(Error::metadata(
                k("attention.head_count"),
                "and the embedding length must be positive",
            ));
        }
        let n_head_kv = g.opt_usize(&k("attention.head_count_kv"))?.unwrap_or(n_head);
        if n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(Error::metadata(
                k("attention.head_count_kv"),
                format!("is {n_head_kv}, which does not divide the {n_head} query heads"),
            ));
        }
        let head_dim = g.opt_usize(&k("attention.key_length"))?.unwrap_or(n_embd / n_head);
        let gating = if arch == "qwen3moe" { Gating::from_gguf(g)? } else { None };
        if arch == "qwen3moe" && gating.is_none() {
            return Err(Error::metadata(k("expert_count"), "is missing or 0 for a qwen3moe model"));
        }
        if let Some(n) = g.opt_usize(&k("expert_count"))? {
            if n > 0 && gating.is_none() {
                return Err(Error::metadata(
                    k("expert_count"),
                    format!("is {n}: mixture-of-experts '{arch}' models (Mixtral-style) are not supported"),
                ));
            }
        }
        let rope_dims = g.opt_usize(&k("rope.dimension_count"))?.unwrap_or(head_dim);
        if rope_dims > head_dim || rope_dims % 2 != 0 {
            return Err(Error::metadata(
                k("rope.dimension_count"),
                format!("is {rope_dims} for heads of {head_dim}"),
            ));
        }
        let rope_linear_factor = match g.get(&k("rope.scaling.type")).and_then(|v| v.as_str()) {
            None | Some("none") => 1.0,
            Some("linear") => g.opt_f64(&k("rope.scaling.factor"))?.unwrap_or(1.0),
            Some(other) => {
                return Err(Error::metadata(
                    k("rope.scaling.type"),
                    format!(
                    "is '{other}', which dense models do not support yet (supported: none, linear)"
                ),
                ))
            }
        };
        Ok(Hparams {
            n_layer: g.block_count(&arch)?,
            n_ff: match gating {
                Some(_) => g.opt_usize(&k("feed_forward_length"))?.unwrap_or(0),
                None => g.usize(&k("feed_forward_length"))?,
            },
            n_ff_exp: match gating {
                Some(_) => g.usize(&k("expert_feed_forward_length"))?,
                None => 0,
            },
            gating,
            n_embd,
            n_head,
            n_head_kv,
            head_dim,
            rope_dims,
            rope_base: g.opt_f64(&k("rope.freq_base"))?.unwrap_or(10_000.0),
            rope_linear_factor: if rope_linear_factor > 0.0 { rope_linear_factor } else { 1.0 },
            rms_eps: g.opt_f64(&k("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-6),
            context_length: g.opt_usize(&k("context_length"))?.unwrap_or(4096),
            arch,
        })
    }

    fn rope_style(&self) -> RopeStyle {
        if self.arch == "llama" {
            RopeStyle::Interleaved
        } else {
            RopeStyle::Neox
        }
    }
}

struct Layer {
    attn_norm: Tensor,
    wq: Matrix,
    wk: Matrix,
    wv: Matrix,
    bq: Option<Tensor>,
    bk: Option<Tensor>,
    bv: Option<Tensor>,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    wo: Matrix,
    ffn_norm: Tensor,
    ffn: Ffn,
    cache: KvCache,
}

/// A block's feed-forward part.
enum Ffn {
    Dense { gate: Matrix, up: Matrix, down: Matrix },
    Moe(Box<MoeFfn>),
}

impl Ffn {
    /// The feed-forward output for `h`: SwiGLU for a dense block, the routed experts for an
    /// MoE one (through `probe`, which keeps the routing).
    fn forward(&self, probe: &mut MoeProbe, h: &Tensor) -> Result<Tensor> {
        match self {
            Ffn::Dense { gate, up, down } => {
                let [g, u] = Matrix::forward_many([gate, up], h)?;
                down.forward(&(candle_nn::ops::silu(&g)? * u)?)
            }
            Ffn::Moe(moe) => probe.forward(moe, h),
        }
    }
}

/// A dense transformer loaded from GGUF.
pub struct Dense {
    hp: Hparams,
    /// Token embeddings kept quantized; rows are dequantized on lookup.
    embd: Arc<QTensor>,
    embd_row_bytes: usize,
    layers: Vec<Layer>,
    output_norm: Tensor,
    output: Matrix,
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
    /// Per-layer caches of the sequences of a batched decode (`Model::fork_sequences`).
    seqs: Vec<batch::SeqCaches>,
    /// Whether a one-token forward on the CPU runs in vectors (`decode`); tests turn it off to
    /// compare with the tensor path.
    vector_decode: bool,
    /// The norm weights and biases in main memory, for `decode` (copied on its first call).
    host: Option<decode::HostVectors>,
}

fn add_bias(x: Tensor, b: &Option<Tensor>) -> Result<Tensor> {
    Ok(match b {
        Some(b) => x.broadcast_add(b)?,
        None => x,
    })
}

impl Dense {
    /// Loads the model with KV caches of `kv_dtype` (f16 or f32).
    pub fn load(
        g: &Gguf,
        device: &Device,
        progress: Progress<'_>,
        kv_dtype: DType,
    ) -> Result<Self> {
        let hp = Hparams::from_gguf(g)?;
        let mut ld = Loader::new(g, device, progress)?;
        let embd_info = g
            .tensor_info("token_embd.weight")
            .ok_or_else(|| Error::tensor("token_embd.weight", "is missing from the file"))?;
        let vocab = *embd_info.dims.first().unwrap_or(&0);
        let embd = Arc::new(ld.qtensor(g, "token_embd.weight", &[vocab, hp.n_embd])?);
        let dt = embd.dtype();
        let embd_row_bytes = hp.n_embd / dt.block_size() * dt.type_size();
        let output = if g.has_tensor("output.weight") {
            ld.matrix(g, "output.weight", vocab, hp.n_embd)?.into()
        } else {
            Matrix::from_arc(embd.clone())?
        };
        let output_norm = ld.vector(g, "output_norm.weight", hp.n_embd)?;
        let freq_factors = match g.has_tensor("rope_freqs.weight") {
            true => Some(ld.vector(g, "rope_freqs.weight", hp.rope_dims / 2)?.to_vec1::<f32>()?),
            false => None,
        };
        let rope = Rope::new(
            hp.rope_style(),
            hp.rope_dims,
            hp.rope_base,
            freq_factors.as_deref(),
            hp.rope_linear_factor,
        );
        let (q_out, kv_out) = (hp.n_head * hp.head_dim, hp.n_head_kv * hp.head_dim);
        let mut layers = Vec::with_capacity(hp.n_layer);
        for i in 0..hp.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}");
            layers.push(Layer {
                attn_norm: ld.vector(g, &n("attn_norm.weight"), hp.n_embd)?,
                wq: ld.matrix(g, &n("attn_q.weight"), q_out, hp.n_embd)?.into(),
                wk: ld.matrix(g, &n("attn_k.weight"), kv_out, hp.n_embd)?.into(),
                wv: ld.matrix(g, &n("attn_v.weight"), kv_out, hp.n_embd)?.into(),
                bq: ld.opt_vector(g, &n("attn_q.bias"), q_out)?,
                bk: ld.opt_vector(g, &n("attn_k.bias"), kv_out)?,
                bv: ld.opt_vector(g, &n("attn_v.bias"), kv_out)?,
                q_norm: ld.opt_vector(g, &n("attn_q_norm.weight"), hp.head_dim)?,
                k_norm: ld.opt_vector(g, &n("attn_k_norm.weight"), hp.head_dim)?,
                wo: ld.matrix(g, &n("attn_output.weight"), hp.n_embd, q_out)?.into(),
                ffn_norm: ld.vector(g, &n("ffn_norm.weight"), hp.n_embd)?,
                ffn: match &hp.gating {
                    Some(gating) => Ffn::Moe(Box::new(MoeFfn::load(
                        &mut ld,
                        g,
                        i,
                        gating,
                        hp.n_embd,
                        hp.n_ff_exp,
                        None,
                    )?)),
                    None => Ffn::Dense {
                        gate: ld.matrix(g, &n("ffn_gate.weight"), hp.n_ff, hp.n_embd)?.into(),
                        up: ld.matrix(g, &n("ffn_up.weight"), hp.n_ff, hp.n_embd)?.into(),
                        down: ld.matrix(g, &n("ffn_down.weight"), hp.n_embd, hp.n_ff)?.into(),
                    },
                },
                cache: KvCache::new(kv_dtype),
            });
        }
        if hp.arch == "qwen2" && layers.iter().any(|l| l.bq.is_none()) {
            return Err(Error::tensor(
                "blk.0.attn_q.bias",
                "is missing (qwen2 models have q/k/v biases)",
            ));
        }
        if hp.arch.starts_with("qwen3")
            && layers.iter().any(|l| l.q_norm.is_none() || l.k_norm.is_none())
        {
            return Err(Error::tensor(
                "blk.0.attn_q_norm.weight",
                "is missing (qwen3 models have q/k norms)",
            ));
        }
        Ok(Dense {
            hp,
            embd,
            embd_row_bytes,
            layers,
            output_norm,
            output,
            vocab,
            rope,
            device: device.clone(),
            probe: MoeProbe::default(),
            lens: super::LensCapture::default(),
            keep_hidden: false,
            hidden: None,
            seqs: Vec::new(),
            vector_decode: true,
            host: None,
        })
    }

    pub fn hparams(&self) -> &Hparams {
        &self.hp
    }

    /// Every matrix on this crate's kernels where they apply, whatever the build (tests).
    #[cfg(test)]
    fn use_kernels(&mut self) {
        for l in &mut self.layers {
            for m in [&mut l.wq, &mut l.wk, &mut l.wv, &mut l.wo] {
                *m = m.forced();
            }
            if let Ffn::Dense { gate, up, down } = &mut l.ffn {
                for m in [gate, up, down] {
                    *m = m.forced();
                }
            }
        }
        self.output = self.output.forced();
    }

    /// Embeddings of `tokens`, shape `(1, len, n_embd)`, dequantizing only the rows used.
    fn embed(&self, tokens: &[u32]) -> Result<Tensor> {
        let data = self.embd.data()?;
        let mut rows = Vec::with_capacity(tokens.len());
        for &t in tokens {
            let t = t as usize;
            if t >= self.vocab {
                return Err(Error::tensor(
                    "token_embd.weight",
                    format!("has no row for token id {t} (vocabulary {})", self.vocab),
                ));
            }
            let bytes = &data[t * self.embd_row_bytes..(t + 1) * self.embd_row_bytes];
            let row = ggml_file::qtensor_from_ggml(
                self.embd.dtype(),
                bytes,
                vec![self.hp.n_embd],
                &self.device,
            )?;
            rows.push(row.dequantize(&self.device)?);
        }
        Ok(Tensor::stack(&rows, 0)?.unsqueeze(0)?)
    }

    fn attention(
        &self,
        layer: &mut Layer,
        x: &Tensor,
        pos: usize,
        cos: &Tensor,
        sin: &Tensor,
    ) -> Result<Tensor> {
        let (q, k, v) = self.qkv(layer, x, cos, sin)?;
        let out = self.attend(&mut layer.cache, &q, &k, &v.contiguous()?, pos)?;
        layer.wo.forward(&out)
    }

    /// A block's queries, keys and values for `x` (batch, tokens, embedding), as
    /// (batch, heads, tokens, head_dim): projected, biased, normed where the model norms them,
    /// and rotated by `cos`/`sin` (which hold each row's own position). `v` is not made
    /// contiguous.
    fn qkv(
        &self,
        layer: &Layer,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let hp = &self.hp;
        let (b, t, _) = x.dims3()?;
        let [q, k, v] = Matrix::forward_many([&layer.wq, &layer.wk, &layer.wv], x)?;
        let q = add_bias(q, &layer.bq)?.reshape((b, t, hp.n_head, hp.head_dim))?;
        let k = add_bias(k, &layer.bk)?.reshape((b, t, hp.n_head_kv, hp.head_dim))?;
        let v = add_bias(v, &layer.bv)?.reshape((b, t, hp.n_head_kv, hp.head_dim))?;
        let eps = hp.rms_eps as f32;
        let q = match &layer.q_norm {
            Some(w) => candle_nn::ops::rms_norm(&q.contiguous()?, w, eps)?,
            None => q,
        };
        let k = match &layer.k_norm {
            Some(w) => candle_nn::ops::rms_norm(&k.contiguous()?, w, eps)?,
            None => k,
        };
        let q = self.rope.apply(&q.transpose(1, 2)?.contiguous()?, cos, sin)?;
        let k = self.rope.apply(&k.transpose(1, 2)?.contiguous()?, cos, sin)?;
        Ok((q, k, v.transpose(1, 2)?))
    }

    /// Attention of `t` new positions from `pos` on, `q`, `k`, `v` of shape `(1, heads, t,
    /// d)` after RoPE, with `cache` (which takes the new keys and values); returns `(1, t,
    /// n_head * d)` before the output projection.
    fn attend(
        &self,
        cache: &mut KvCache,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        pos: usize,
    ) -> Result<Tensor> {
        let hp = &self.hp;
        let (b, _, t, _) = q.dims4()?;
        let (k_all, v_all) = cache.append(k, v, hp.context_length)?;
        let total = pos + t;
        if b == 1 && t == 1 && self.cpu_attention() {
            if let (Some(kc), Some(vc)) = (&cache.k, &cache.v) {
                let q = q.flatten_all()?.to_vec1::<f32>()?;
                let seq = [(0, total)];
                if let Some(out) = self.cached_attention(&q, (kc, vc), &seq, kc.dim(2)?)? {
                    return Ok(out);
                }
            }
        }
        if let (Some(kc), Some(vc)) = (&cache.k, &cache.v) {
            if let Some(out) = self.flash_prompt(q, (kc, vc), pos)? {
                return Ok(out);
            }
        }
        let (k_all, v_all) = (attend::widened(&k_all)?, attend::widened(&v_all)?);
        self.prompt_attention(q, &k_all, &v_all, pos)
    }
}

impl Model for Dense {
    fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Err(Error::Worker("forward called with no tokens".into()));
        }
        if let [token] = tokens {
            if let Some(logits) = self.decode_one(*token, pos)? {
                return Ok(logits);
            }
        }
        let t = tokens.len();
        let (cos, sin) = self.rope.tables(pos, t, &self.device)?;
        let mut x = self.embed(tokens)?;
        let eps = self.hp.rms_eps as f32;
        let mut layers = std::mem::take(&mut self.layers);
        let mut probe = std::mem::take(&mut self.probe);
        let capture = self.lens.on;
        let mut rows: Vec<Vec<f32>> = Vec::new();
        probe.begin(t, self.hp.gating.is_some());
        let result = (|| -> Result<Tensor> {
            for layer in layers.iter_mut() {
                if layer.cache.len != pos {
                    return Err(Error::Worker(format!(
                        "KV cache holds {} positions, forward starts at {pos}",
                        layer.cache.len
                    )));
                }
                let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, eps)?;
                let attn = self.attention(layer, &h, pos, &cos, &sin)?;
                x = (x + attn)?;
                let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, eps)?;
                let y = layer.ffn.forward(&mut probe, &h)?;
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
        self.layers = layers;
        self.probe = probe;
        let x = result?;
        if self.keep_hidden {
            self.hidden = Some(x.clone());
        }
        let last = x.narrow(1, t - 1, 1)?.contiguous()?;
        let h = candle_nn::ops::rms_norm(&last, &self.output_norm, eps)?;
        let logits = self.output.forward(&h)?;
        Ok(logits.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
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
        super::each_position(
            &x,
            &self.output_norm,
            self.hp.rms_eps as f32,
            &|h| output.forward(h),
            each,
        )
    }

    fn truncate_cache(&mut self, len: usize) {
        for l in &mut self.layers {
            l.cache.len = l.cache.len.min(len);
        }
    }

    fn context_length(&self) -> usize {
        self.hp.context_length
    }

    fn vocab_size(&self) -> usize {
        self.vocab
    }

    fn layers(&self) -> usize {
        self.hp.n_layer
    }

    fn is_moe(&self) -> bool {
        self.hp.gating.is_some()
    }

    fn probe(&mut self) -> Option<&mut MoeProbe> {
        Some(&mut self.probe)
    }

    fn lens(&mut self) -> Option<&mut super::LensCapture> {
        Some(&mut self.lens)
    }

    fn lens_logits(&mut self, residual: &[f32]) -> Result<Vec<f32>> {
        let x = Tensor::from_vec(residual.to_vec(), (1, 1, residual.len()), &self.device)?;
        let h = candle_nn::ops::rms_norm(&x, &self.output_norm, self.hp.rms_eps as f32)?;
        Ok(self.output.forward(&h)?.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
    }

    fn supports_sequences(&self) -> bool {
        true
    }

    fn fork_sequences(&mut self, n: usize) -> Result<()> {
        self.fork_seqs(n)
    }

    fn forward_sequences(&mut self, rows: &[SeqToken]) -> Result<Vec<Vec<f32>>> {
        self.forward_seqs(rows)
    }

    fn end_sequences(&mut self) {
        self.seqs.clear();
    }
}
