//! Model architectures: hyper-parameters read from GGUF metadata and the forward passes.
//!
//! Forward passes are our own code on candle's ops and quantized matmuls, not
//! candle-transformers' model files, which hide the MoE routing we record and differ from
//! llama.cpp (our numeric reference) for several of these models. `dense` covers `llama`,
//! `qwen2` and `qwen3`; `moe` and `deepseek2` the MoE models. Depends on `engine::gguf` and candle.

pub mod deepseek2;
pub mod dense;
pub mod moe;

use candle_core::quantized::QMatMul;
use candle_core::{DType, Device, Tensor};

use super::error::{Error, Result};
use super::gguf::{Gguf, TensorReader};
use crate::trace::{Routing, RoutingDetail};

/// Architectures thinkdbg can run, by their `general.architecture` name.
pub const SUPPORTED_ARCHS: &[&str] = &["llama", "qwen2", "qwen3", "qwen3moe", "deepseek2"];

/// A loaded model that turns tokens into next-token logits, keeping its own KV cache.
pub trait Model: Send {
    /// Feeds `tokens` at positions `pos..pos + tokens.len()` (the cache must hold exactly `pos`
    /// positions) and returns the logits after the last one, as host floats.
    fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>>;
    /// Feeds `tokens` like `forward` and hands the logits after every one of them to
    /// `each(i, logits)`, in token order (teacher-forced scoring at prefill speed). The logits
    /// are computed a few rows at a time, so a long chunk never holds `len × vocab` floats.
    /// The default feeds one token at a time (exact, at decode speed, and `take_routing` then
    /// has only the last token); every model of this crate overrides it with one forward pass.
    fn forward_each(
        &mut self,
        tokens: &[u32],
        pos: usize,
        each: &mut dyn FnMut(usize, &[f32]) -> Result<()>,
    ) -> Result<()> {
        for (i, &t) in tokens.iter().enumerate() {
            let logits = self.forward(&[t], pos + i)?;
            each(i, &logits)?;
        }
        Ok(())
    }
    /// Drops cached positions from `len` on, so a new continuation can start there.
    fn truncate_cache(&mut self, len: usize);
    /// Positions the model was trained for (`{arch}.context_length`).
    fn context_length(&self) -> usize;
    /// Rows of the output layer (the logits' length).
    fn vocab_size(&self) -> usize;
    /// Transformer blocks.
    fn layers(&self) -> usize;
    /// Whether tokens are routed through experts.
    fn is_moe(&self) -> bool {
        false
    }
    /// The MoE routing recorder of a model with experts (a dense model has none); the
    /// routing methods below go through it.
    fn probe(&mut self) -> Option<&mut moe::MoeProbe> {
        None
    }
    /// How each token of the last `forward` call was routed, in token order (one entry per
    /// token for MoE models, empty for dense ones).
    fn take_routing(&mut self) -> Vec<Routing> {
        self.probe().map(moe::MoeProbe::take_routing).unwrap_or_default()
    }
    /// How much of the routing `forward` keeps for `take_routing` (MoE models).
    fn set_routing_detail(&mut self, detail: RoutingDetail) {
        if let Some(p) = self.probe() {
            p.detail = detail;
        }
    }
    /// Debug hook for independent checks: keep every MoE layer's router input (the normalised
    /// hidden state) of the following `forward` calls.
    fn capture_router_inputs(&mut self, on: bool) {
        if let Some(p) = self.probe() {
            p.capture_inputs = on;
        }
    }
    /// `(layer, one row per token)` router inputs of the last `forward` call.
    fn take_router_inputs(&mut self) -> Vec<(u16, Vec<Vec<f32>>)> {
        self.probe().map(moe::MoeProbe::take_inputs).unwrap_or_default()
    }
    /// The logit lens's capture (models that support it).
    fn lens(&mut self) -> Option<&mut LensCapture> {
        None
    }
    /// Logit lens: keep the last token's residual stream after each block of the following
    /// `forward` calls (one row per block, replaced at each call).
    fn capture_residuals(&mut self, on: bool) {
        if let Some(l) = self.lens() {
            l.on = on;
            l.rows.clear();
        }
    }
    /// The residual rows of the last `forward` call, block by block.
    fn take_residuals(&mut self) -> Vec<Vec<f32>> {
        self.lens().map(|l| std::mem::take(&mut l.rows)).unwrap_or_default()
    }
    /// Logit lens: the final norm and the output head applied to one residual row.
    fn lens_logits(&mut self, _residual: &[f32]) -> Result<Vec<f32>> {
        Err(Error::Worker("this model has no logit lens".into()))
    }
    /// Whether the model decodes several sequences in one batched forward
    /// (`fork_sequences`, `forward_sequences`; used by `engine::batch`).
    fn supports_sequences(&self) -> bool {
        false
    }
    /// Starts `n` sequences, each with its own copy of the current KV cache (a prompt
    /// prefilled once), replacing any sequences started before.
    fn fork_sequences(&mut self, _n: usize) -> Result<()> {
        Err(Error::Worker("this model does not decode sequences in a batch".into()))
    }
    /// One decode step for several sequences at once: row `i` feeds `token` to sequence `seq`
    /// at position `pos` (that sequence's cache must hold exactly `pos` positions). Returns
    /// each row's logits, in row order; MoE routing is one entry per row (`take_routing`).
    fn forward_sequences(&mut self, _rows: &[SeqToken]) -> Result<Vec<Vec<f32>>> {
        Err(Error::Worker("this model does not decode sequences in a batch".into()))
    }
    /// Frees the sequences' caches.
    fn end_sequences(&mut self) {}
}

/// What the logit lens keeps of a forward pass: whether to capture, and the last token's
/// residual stream after each block.
#[derive(Debug, Clone, Default)]
pub struct LensCapture {
    pub on: bool,
    pub rows: Vec<Vec<f32>>,
}

impl LensCapture {
    /// The last of `t` tokens of `x` (batch, tokens, embedding) as a host row.
    pub(crate) fn last_row(x: &Tensor, t: usize) -> Result<Vec<f32>> {
        Ok(x.narrow(1, t - 1, 1)?.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1()?)
    }
}

/// Rows of output logits computed at once by `each_position`.
const LOGIT_ROWS: usize = 32;

/// The output norm and layer applied to every position of the final hidden states `x`
/// `(1, t, n_embd)`, `LOGIT_ROWS` positions at a time, each row handed to `each(i, logits)`.
pub(crate) fn each_position(
    x: &Tensor,
    norm: &Tensor,
    eps: f32,
    output: &dyn Fn(&Tensor) -> Result<Tensor>,
    each: &mut dyn FnMut(usize, &[f32]) -> Result<()>,
) -> Result<()> {
    let t = x.dim(1)?;
    let mut start = 0;
    while start < t {
        let n = LOGIT_ROWS.min(t - start);
        let h = candle_nn::ops::rms_norm(&x.narrow(1, start, n)?.contiguous()?, norm, eps)?;
        let logits =
            output(&h)?.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let vocab = logits.len() / n;
        for (i, row) in logits.chunks_exact(vocab.max(1)).enumerate() {
            each(start + i, row)?;
        }
        start += n;
    }
    Ok(())
}

/// One row of a batched decode step (`Model::forward_sequences`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqToken {
    /// Which of the forked sequences.
    pub seq: usize,
    pub token: u32,
    /// The position the token occupies.
    pub pos: usize,
}

/// Loading progress: bytes of tensor data read so far and in all.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Loads the model of a parsed GGUF file onto `device`.
pub fn load(gguf: &Gguf, device: &Device, progress: Progress<'_>) -> Result<Box<dyn Model>> {
    load_with(gguf, device, progress, None)
}

/// `load` with the KV cache's element type chosen (`None`: `kv_cache_dtype`'s default).
pub fn load_with(
    gguf: &Gguf,
    device: &Device,
    progress: Progress<'_>,
    kv_cache: Option<CacheType>,
) -> Result<Box<dyn Model>> {
    let arch = gguf.architecture()?;
    if !SUPPORTED_ARCHS.contains(&arch) {
        return Err(Error::UnknownArchitecture {
            arch: arch.to_string(),
            supported: SUPPORTED_ARCHS.join(", "),
        });
    }
    gguf.check_supported()?;
    if arch == "deepseek2" {
        return Ok(Box::new(deepseek2::Deepseek2::load(gguf, device, progress)?));
    }
    let kv = kv_cache_dtype(device, kv_cache)?;
    Ok(Box::new(dense::Dense::load(gguf, device, progress, kv)?))
}

/// The element type of a dense model's KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheType {
    F16,
    F32,
}

/// The element type of the dense models' KV caches: `choice` if given, else
/// `THINKDBG_KV_CACHE=f16|f32` (the `--kv-cache` option), else f16 on the CPU (as llama.cpp's
/// default: half the bytes of an f32 cache to read per position and token, and half the
/// memory) and f32 on other devices (candle's attention there multiplies f32). An f32 cache is
/// what an F32 model needs to match llama.cpp run with an f32 cache exactly, and what checks
/// of exactness between two paths use (an f16 cache turns a last-bit difference upstream into
/// an f16 rounding step now and then).
pub(crate) fn kv_cache_dtype(device: &Device, choice: Option<CacheType>) -> Result<DType> {
    match choice {
        Some(CacheType::F16) => return Ok(DType::F16),
        Some(CacheType::F32) => return Ok(DType::F32),
        None => {}
    }
    match std::env::var("THINKDBG_KV_CACHE").as_deref() {
        Ok("f16") => Ok(DType::F16),
        Ok("f32") => Ok(DType::F32),
        Ok(other) => Err(Error::Setting(format!(
            "THINKDBG_KV_CACHE is '{other}'; the KV cache can be 'f16' or 'f32'"
        ))),
        Err(_) if matches!(device, Device::Cpu) => Ok(DType::F16),
        Err(_) => Ok(DType::F32),
    }
}

/// Reads tensors while checking their shapes and reporting progress.
pub(crate) struct Loader<'a, 'p> {
    pub reader: TensorReader<'a>,
    pub device: Device,
    done: u64,
    total: u64,
    progress: Progress<'p>,
}

impl<'a, 'p> Loader<'a, 'p> {
    pub fn new(gguf: &'a Gguf, device: &Device, progress: Progress<'p>) -> Result<Self> {
        let total = gguf.tensors.iter().filter_map(|t| t.size).sum();
        Ok(Loader { reader: gguf.reader()?, device: device.clone(), done: 0, total, progress })
    }

    fn tick(&mut self, name: &str, gguf_size: Option<u64>) {
        self.done += gguf_size.unwrap_or(0);
        (self.progress)(self.done.min(self.total), self.total);
        tracing::trace!(tensor = name, "loaded");
    }

    /// A quantized tensor with the expected candle shape.
    pub fn qtensor(
        &mut self,
        gguf: &Gguf,
        name: &str,
        shape: &[usize],
    ) -> Result<candle_core::quantized::QTensor> {
        let q = self.reader.qtensor(name, &self.device)?;
        let dims = q.shape().dims().to_vec();
        if dims != shape {
            return Err(Error::tensor(name, format!("has shape {dims:?}, expected {shape:?}")));
        }
        self.tick(name, gguf.tensor_info(name).and_then(|t| t.size));
        Ok(q)
    }

    /// A weight matrix `(out, in)` for `x @ W^T`.
    pub fn matrix(&mut self, gguf: &Gguf, name: &str, out: usize, inp: usize) -> Result<QMatMul> {
        let q = self.qtensor(gguf, name, &[out, inp])?;
        Ok(QMatMul::from_qtensor(q)?)
    }

    /// A vector (norm weights, biases) dequantized to f32.
    pub fn vector(&mut self, gguf: &Gguf, name: &str, len: usize) -> Result<Tensor> {
        let q = self.qtensor(gguf, name, &[len])?;
        Ok(q.dequantize(&self.device)?)
    }

    pub fn opt_vector(&mut self, gguf: &Gguf, name: &str, len: usize) -> Result<Option<Tensor>> {
        if gguf.has_tensor(name) {
            self.vector(gguf, name, len).map(Some)
        } else {
            Ok(None)
        }
    }
}
