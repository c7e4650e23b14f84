//! Synthetic GGUF models (`thinkdbg model synth`): random weights from a seed at a named
//! shape, with real metadata (hyper-parameters, a learned BPE tokenizer, a chat template) so
//! thinkdbg and llama.cpp both load them. The same spec and seed always give the same bytes.
//! Weight tensors are written in chunks with their own generators, in parallel; Q8_0 and Q4_K
//! blocks are drawn directly at the distribution quantizing uniform values gives, other types
//! quantized by candle. Tests and benchmarks use them; users use them to check speed at a
//! real shape without a download. Depends on candle's GGUF writer and `engine::error` only.

pub mod shapes;
pub mod vocab;

use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{Device, Tensor};

use super::error::{Error, Result};
pub use shapes::{Dims, Mla};

/// Architectures `model synth` writes.
pub const ARCHS: &[&str] = &["llama", "qwen2", "qwen3moe", "deepseek2"];

/// Everything that decides a synthetic file's bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSpec {
    pub dims: Dims,
    pub quant: GgmlDType,
    pub seed: u64,
}

/// Deterministic uniform numbers in (-1, 1) (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        ((self.bits() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
    }

    /// The next 64 raw bits.
    fn bits(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn values(&mut self, n: usize, scale: f32, offset: f32) -> Vec<f32> {
        (0..n).map(|_| offset + self.next() * scale).collect()
    }
}

struct Writer {
    rng: Rng,
    seed: u64,
    quant: GgmlDType,
    tensors: Vec<(String, QTensor)>,
}

/// Values per chunk of a tensor: each chunk has its own generator (seeded from the spec's
/// seed, the tensor's index and the chunk's), so chunks are written in parallel and the bytes
/// do not depend on the number of threads.
const CHUNK_VALUES: usize = 1 << 20;

/// SplitMix64's finaliser: seeds for the per-chunk generators (never zero, which xorshift
/// cannot leave).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) | 1
}

/// `n` values of Q8_0 blocks (a little-endian f16 scale, then 32 signed bytes) as quantizing
/// uniform values in (-scale, scale) gives them: every block's scale `scale / 127`, the
/// quants uniform in -127..=127. Drawn directly, since quantizing billions of values is
/// minutes of work at the large shapes.
fn random_q8_0(rng: &mut Rng, n: usize, scale: f32) -> Vec<u8> {
    let d = half::f16::from_f32(scale / 127.0).to_le_bytes();
    let mut out = Vec::with_capacity(n / 32 * 34);
    for _ in 0..n / 32 {
        out.extend_from_slice(&d);
        for _ in 0..4 {
            let bits = rng.bits();
            // Eight quants from one draw: each byte folded into -127..=127.
            out.extend(bits.to_le_bytes().map(|b| ((b % 255) as i16 - 127) as i8 as u8));
        }
    }
    out
}

/// `n` values of Q4_K super-blocks (f16 `d` and `dmin`, twelve bytes of packed 6-bit
/// sub-block scales and mins, 128 bytes of 4-bit quants) as quantizing uniform values in
/// (-scale, scale) gives them: every sub-block spans the whole range, so each 6-bit scale and
/// min is 63 (all twelve bytes 0xFF), `d = 2·scale / 15 / 63`, `dmin = scale / 63`, and the
/// quants are uniform: a value is `d·63·q − dmin·63`, one of 16 levels from -scale to scale.
fn random_q4k(rng: &mut Rng, n: usize, scale: f32) -> Vec<u8> {
    let d = half::f16::from_f32(2.0 * scale / 15.0 / 63.0).to_le_bytes();
    let dmin = half::f16::from_f32(scale / 63.0).to_le_bytes();
    let mut out = Vec::with_capacity(n / 256 * 144);
    for _ in 0..n / 256 {
        out.extend_from_slice(&d);
        out.extend_from_slice(&dmin);
        out.extend_from_slice(&[0xFF; 12]);
        for _ in 0..16 {
            out.extend_from_slice(&rng.bits().to_le_bytes());
        }
    }
    out
}

impl Writer {
    fn push(&mut self, name: String, shape: &[usize], scale: f32, dtype: GgmlDType) -> Result<()> {
        let n: usize = shape.iter().product();
        // Rows that do not fit the block size of the requested type fall back to Q8_0 (as
        // llama.cpp's quantizer does), then to F32.
        let last = (*shape.last().unwrap_or(&1)).max(1);
        let dtype = [dtype, GgmlDType::Q8_0, GgmlDType::F32]
            .into_iter()
            .find(|d| last % d.block_size() == 0)
            .unwrap_or(GgmlDType::F32);
        // Whole rows per chunk, so every chunk quantizes to whole blocks.
        let rows_per_chunk = (CHUNK_VALUES / last).max(1);
        let chunks: Vec<(usize, usize)> = (0..n / last)
            .step_by(rows_per_chunk)
            .map(|r| (r * last, ((r + rows_per_chunk) * last).min(n)))
            .collect();
        let tensor_seed = mix(self.seed ^ ((self.tensors.len() as u64 + 1) << 32));
        let quantize = |i: usize| -> Result<Vec<u8>> {
            let (start, end) = chunks[i];
            let mut rng = Rng(mix(tensor_seed ^ i as u64));
            match dtype {
                GgmlDType::Q8_0 => Ok(random_q8_0(&mut rng, end - start, scale)),
                GgmlDType::Q4K => Ok(random_q4k(&mut rng, end - start, scale)),
                _ => {
                    let values = rng.values(end - start, scale, 0.0);
                    let t = Tensor::from_vec(values, end - start, &Device::Cpu)?;
                    Ok(QTensor::quantize(&t, dtype)?.data()?.into_owned())
                }
            }
        };
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(chunks.len());
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut parts: Vec<(usize, Vec<u8>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if i >= chunks.len() {
                                return Ok::<_, Error>(done);
                            }
                            done.push((i, quantize(i)?));
                        }
                    })
                })
                .collect();
            let mut all = Vec::new();
            for h in handles {
                all.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?);
            }
            Ok::<_, Error>(all)
        })?;
        parts.sort_unstable_by_key(|(i, _)| *i);
        let mut bytes = Vec::with_capacity(parts.iter().map(|(_, b)| b.len()).sum());
        for (_, b) in parts {
            bytes.extend_from_slice(&b);
        }
        let storage = QStorage::from_data(std::borrow::Cow::Owned(bytes), &Device::Cpu, dtype)?;
        self.tensors.push((name, QTensor::new(storage, shape)?));
        Ok(())
    }

    /// A weight matrix or stack `(.., out, in)` with a fan-in scaled range.
    fn weight(&mut self, name: String, shape: &[usize]) -> Result<()> {
        let fan_in = *shape.last().unwrap_or(&1) as f32;
        self.push(name, shape, 1.7 / fan_in.sqrt(), self.quant)
    }

    /// A norm vector around 1, in F32.
    fn norm(&mut self, name: String, n: usize) -> Result<()> {
        let t = Tensor::from_vec(self.rng.values(n, 0.2, 1.0), n, &Device::Cpu)?;
        self.tensors.push((name, QTensor::quantize(&t, GgmlDType::F32)?));
        Ok(())
    }

    fn f32(&mut self, name: String, shape: &[usize], scale: f32) -> Result<()> {
        self.push(name, shape, scale, GgmlDType::F32)
    }
}

/// Writes the synthetic model to `out`.
pub fn write(spec: &SynthSpec, out: &Path) -> Result<()> {
    let d = &spec.dims;
    let (tokens, types, merges) = vocab::bpe_vocab(120);
    let vocab = tokens.len();
    let mut w = Writer {
        rng: Rng(0x9E37_79B9_7F4A_7C15 ^ spec.seed),
        seed: spec.seed,
        quant: spec.quant,
        tensors: Vec::new(),
    };
    let e = d.n_embd;
    w.push("token_embd.weight".into(), &[vocab, e], 1.0, spec.quant)?;
    w.weight("output.weight".into(), &[vocab, e])?;
    w.norm("output_norm.weight".into(), e)?;
    for l in 0..d.n_layer {
        let n = |s: &str| format!("blk.{l}.{s}");
        w.norm(n("attn_norm.weight"), e)?;
        match &d.mla {
            None => {
                let (q_out, kv_out) = (d.n_head * d.head_dim, d.n_head_kv * d.head_dim);
                w.weight(n("attn_q.weight"), &[q_out, e])?;
                w.weight(n("attn_k.weight"), &[kv_out, e])?;
                w.weight(n("attn_v.weight"), &[kv_out, e])?;
                if d.arch == "qwen2" {
                    w.f32(n("attn_q.bias"), &[q_out], 0.5)?;
                    w.f32(n("attn_k.bias"), &[kv_out], 0.5)?;
                    w.f32(n("attn_v.bias"), &[kv_out], 0.5)?;
                }
                if d.arch == "qwen3moe" {
                    w.norm(n("attn_q_norm.weight"), d.head_dim)?;
                    w.norm(n("attn_k_norm.weight"), d.head_dim)?;
                }
                w.weight(n("attn_output.weight"), &[e, q_out])?;
            }
            Some(m) => {
                let qk = m.qk_nope + m.qk_rope;
                match m.q_lora {
                    Some(r) => {
                        w.weight(n("attn_q_a.weight"), &[r, e])?;
                        w.norm(n("attn_q_a_norm.weight"), r)?;
                        w.weight(n("attn_q_b.weight"), &[d.n_head * qk, r])?;
                    }
                    None => w.weight(n("attn_q.weight"), &[d.n_head * qk, e])?,
                }
                w.weight(n("attn_kv_a_mqa.weight"), &[m.kv_lora + m.qk_rope, e])?;
                w.norm(n("attn_kv_a_norm.weight"), m.kv_lora)?;
                if m.split {
                    w.weight(n("attn_k_b.weight"), &[d.n_head, m.kv_lora, m.qk_nope])?;
                    w.weight(n("attn_v_b.weight"), &[d.n_head, m.v_head, m.kv_lora])?;
                } else {
                    let rows = d.n_head * (m.qk_nope + m.v_head);
                    w.weight(n("attn_kv_b.weight"), &[rows, m.kv_lora])?;
                }
                w.weight(n("attn_output.weight"), &[e, d.n_head * m.v_head])?;
            }
        }
        w.norm(n("ffn_norm.weight"), e)?;
        if d.n_expert == 0 || l < d.lead_dense {
            w.weight(n("ffn_gate.weight"), &[d.n_ff, e])?;
            w.weight(n("ffn_up.weight"), &[d.n_ff, e])?;
            w.weight(n("ffn_down.weight"), &[e, d.n_ff])?;
        } else {
            let (x, f) = (d.n_expert, d.n_ff_exp);
            w.f32(n("ffn_gate_inp.weight"), &[x, e], 3.0 / (e as f32).sqrt())?;
            if d.gating_func == 2 {
                w.f32(n("exp_probs_b.bias"), &[x], 0.1)?;
            }
            w.weight(n("ffn_gate_exps.weight"), &[x, f, e])?;
            w.weight(n("ffn_up_exps.weight"), &[x, f, e])?;
            w.weight(n("ffn_down_exps.weight"), &[x, e, f])?;
            if d.n_shared > 0 {
                let fs = f * d.n_shared;
                w.weight(n("ffn_gate_shexp.weight"), &[fs, e])?;
                w.weight(n("ffn_up_shexp.weight"), &[fs, e])?;
                w.weight(n("ffn_down_shexp.weight"), &[e, fs])?;
            }
        }
    }
    let meta = metadata(d, &tokens, &types, &merges)?;
    let mut f = std::fs::File::create(out).map_err(|e| Error::io(out, e))?;
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> =
        w.tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut f, &meta_refs, &tensor_refs)?;
    Ok(())
}

fn metadata(
    d: &Dims,
    tokens: &[String],
    types: &[i32],
    merges: &[String],
) -> Result<Vec<(String, Value)>> {
    let a = |s: &str| format!("{}.{s}", d.arch);
    let id = |s: &str| tokens.iter().position(|x| x == s).unwrap_or(0) as u32;
    let u = |v: usize| Value::U32(v as u32);
    let mut m: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(d.arch.clone())),
        ("general.name".into(), Value::String(format!("synth-{}-{}", d.arch, d.shape))),
        (a("block_count"), u(d.n_layer)),
        (a("context_length"), u(d.context)),
        (a("embedding_length"), u(d.n_embd)),
        (a("feed_forward_length"), u(d.n_ff)),
        (a("attention.head_count"), u(d.n_head)),
        (a("rope.freq_base"), Value::F32(10000.0)),
        (a("attention.layer_norm_rms_epsilon"), Value::F32(1e-6)),
    ];
    match &d.mla {
        None => {
            m.push((a("attention.head_count_kv"), u(d.n_head_kv)));
            m.push((a("attention.key_length"), u(d.head_dim)));
            m.push((a("attention.value_length"), u(d.head_dim)));
        }
        Some(x) => {
            if let Some(r) = x.q_lora {
                m.push((a("attention.q_lora_rank"), u(r)));
            }
            m.push((a("attention.kv_lora_rank"), u(x.kv_lora)));
            m.push((a("rope.dimension_count"), u(x.qk_rope)));
            if x.split {
                m.push((a("attention.head_count_kv"), u(1)));
                m.push((a("attention.key_length"), u(x.kv_lora + x.qk_rope)));
                m.push((a("attention.value_length"), u(x.kv_lora)));
                m.push((a("attention.key_length_mla"), u(x.qk_nope + x.qk_rope)));
                m.push((a("attention.value_length_mla"), u(x.v_head)));
            } else {
                m.push((a("attention.head_count_kv"), u(d.n_head)));
                m.push((a("attention.key_length"), u(x.qk_nope + x.qk_rope)));
                m.push((a("attention.value_length"), u(x.v_head)));
            }
            if let Some((factor, orig, log_mul)) = x.yarn {
                m.push((a("rope.scaling.type"), Value::String("yarn".into())));
                m.push((a("rope.scaling.factor"), Value::F32(factor)));
                m.push((a("rope.scaling.original_context_length"), u(orig)));
                m.push((a("rope.scaling.yarn_log_multiplier"), Value::F32(log_mul)));
            }
        }
    }
    if d.n_expert > 0 {
        m.push((a("expert_count"), u(d.n_expert)));
        m.push((a("expert_used_count"), u(d.n_expert_used)));
        m.push((a("expert_feed_forward_length"), u(d.n_ff_exp)));
    }
    if d.arch == "deepseek2" {
        m.push((a("leading_dense_block_count"), u(d.lead_dense)));
        m.push((a("expert_shared_count"), u(d.n_shared)));
        m.push((a("expert_weights_scale"), Value::F32(d.weights_scale)));
        m.push((a("expert_weights_norm"), Value::Bool(d.weights_norm)));
        m.push((a("expert_gating_func"), u(d.gating_func)));
        if let Some((n, used)) = d.groups {
            m.push((a("expert_group_count"), u(n)));
            m.push((a("expert_group_used_count"), u(used)));
        }
    }
    m.extend([
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String(d.pre().into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(tokens.iter().map(|s| Value::String(s.clone())).collect()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(types.iter().map(|&x| Value::I32(x)).collect()),
        ),
        (
            "tokenizer.ggml.merges".into(),
            Value::Array(merges.iter().map(|s| Value::String(s.clone())).collect()),
        ),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(id("<|endoftext|>"))),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(id("<|im_end|>"))),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
        ("tokenizer.chat_template".into(), Value::String(d.template().into())),
    ]);
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The directly drawn blocks dequantize (by candle's own code) to values inside
    /// (-scale, scale), centred, spread over the range, and with the quantizer's level count.
    #[test]
    fn drawn_blocks_dequantize_to_uniform_values() {
        let (n, scale) = (256 * 64, 0.05f32);
        for (dtype, bytes, levels) in [
            (GgmlDType::Q8_0, random_q8_0(&mut Rng(7), n, scale), 255),
            (GgmlDType::Q4K, random_q4k(&mut Rng(7), n, scale), 16),
        ] {
            let storage =
                QStorage::from_data(std::borrow::Cow::Owned(bytes), &Device::Cpu, dtype).unwrap();
            let q = QTensor::new(storage, (64, 256)).unwrap();
            let v = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
            let v = v.to_vec1::<f32>().unwrap();
            let tol = scale * 1e-2;
            assert!(v.iter().all(|x| x.abs() <= scale + tol), "{dtype:?} out of range");
            let mean = v.iter().sum::<f32>() / n as f32;
            assert!(mean.abs() < scale * 0.05, "{dtype:?} mean {mean}");
            // A uniform distribution on (-s, s) has variance s²/3.
            let var = v.iter().map(|x| x * x).sum::<f32>() / n as f32;
            let want = scale * scale / 3.0;
            assert!((var / want - 1.0).abs() < 0.15, "{dtype:?} variance {var} vs {want}");
            let mut distinct: Vec<i64> =
                v.iter().map(|x| (x / scale * 1e5).round() as i64).collect();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), levels, "{dtype:?} levels");
        }
    }

    /// The same spec gives the same bytes, whatever the number of threads.
    #[test]
    fn chunked_tensors_are_deterministic() {
        let draw = || {
            let mut w = Writer { rng: Rng(1), seed: 3, quant: GgmlDType::Q4K, tensors: Vec::new() };
            // Over two chunks, with a partial last one.
            w.push("t".into(), &[CHUNK_VALUES / 256 + 3, 256], 0.1, GgmlDType::Q4K).unwrap();
            w.tensors.pop().unwrap().1.data().unwrap().into_owned()
        };
        let a = draw();
        assert_eq!(a.len(), (CHUNK_VALUES / 256 + 3) * 144);
        assert_eq!(a, draw());
    }
}
