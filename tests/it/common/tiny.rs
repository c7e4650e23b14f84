//! Tiny random GGUF models for the tests, written by a GGUF writer of the tests' own.
//!
//! Deliberately independent of `thinkdbg::engine::synth` (which `model synth` and some tests
//! use): this writer spells the tensor names, shapes and metadata keys out again from
//! llama.cpp's conventions, so the engine is checked against files that the engine's own code
//! did not write; a mistake shared by synth and the loader cannot hide here. It also writes
//! what synth has no shape for: dense qwen3 (a head size that is not `n_embd / n_head`), tied
//! embeddings, `rope_freqs`, and every weight quantized by candle to any `GgmlDType`.
//!
//! Only the vocabulary comes from synth (`engine::synth::vocab`: the byte-level BPE learned on
//! a fixed corpus, the special tokens and the ChatML templates): it is the data the files
//! carry, not a format convention the tests check, so it is not copied.

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use thinkdbg::engine::synth::vocab::{bpe_vocab, CHATML, CHATML_THINK, SPECIALS};

/// Shape and flavour of a tiny model.
#[derive(Debug, Clone)]
pub struct Tiny {
    pub arch: &'static str,
    pub pre: &'static str,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub n_layer: usize,
    pub context: usize,
    pub dtype: GgmlDType,
    pub tied: bool,
    pub rope_freqs: bool,
    pub template: Option<&'static str>,
    pub seed: u64,
}

impl Tiny {
    pub fn llama() -> Self {
        Tiny {
            arch: "llama",
            pre: "llama-bpe",
            n_embd: 64,
            n_head: 4,
            n_head_kv: 2,
            head_dim: 16,
            n_ff: 128,
            n_layer: 2,
            context: 256,
            dtype: GgmlDType::F32,
            tied: false,
            rope_freqs: true,
            template: Some(CHATML),
            seed: 1,
        }
    }

    pub fn qwen2() -> Self {
        Tiny {
            arch: "qwen2",
            pre: "qwen2",
            tied: true,
            rope_freqs: false,
            seed: 2,
            ..Tiny::llama()
        }
    }

    /// qwen3 with a head size that is not n_embd / n_head, as in the real models.
    pub fn qwen3() -> Self {
        Tiny {
            arch: "qwen3",
            pre: "qwen2",
            head_dim: 32,
            rope_freqs: false,
            template: Some(CHATML_THINK),
            seed: 3,
            ..Tiny::llama()
        }
    }

    pub fn vocab_len(&self) -> usize {
        256 + 120 + SPECIALS.len()
    }
}

/// Deterministic uniform numbers in (-1, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
    }

    fn tensor(&mut self, shape: &[usize], scale: f32) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.next() * scale).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }
}

/// Writes the tiny model as GGUF into `dir` and returns its path.
pub fn write_tiny(dir: &Path, t: &Tiny) -> PathBuf {
    let (tokens, types, merges) = bpe_vocab(120);
    let vocab = tokens.len();
    assert_eq!(vocab, t.vocab_len());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ t.seed);
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let rand_q = |rng: &mut Rng, shape: &[usize], scale: f32, dtype: GgmlDType| {
        QTensor::quantize(&rng.tensor(shape, scale), dtype).unwrap()
    };
    let (e, q_out, kv_out) = (t.n_embd, t.n_head * t.head_dim, t.n_head_kv * t.head_dim);
    let w = |fan_in: usize| 1.7 / (fan_in as f32).sqrt();
    tensors.push(("token_embd.weight".into(), rand_q(&mut rng, &[vocab, e], 1.0, t.dtype)));
    if !t.tied {
        tensors.push(("output.weight".into(), rand_q(&mut rng, &[vocab, e], w(e), t.dtype)));
    }
    let norm = |rng: &mut Rng, n: usize| {
        let v: Vec<f32> = (0..n).map(|_| 1.0 + 0.2 * rng.next()).collect();
        QTensor::quantize(&Tensor::from_vec(v, n, &Device::Cpu).unwrap(), GgmlDType::F32).unwrap()
    };
    tensors.push(("output_norm.weight".into(), norm(&mut rng, e)));
    if t.rope_freqs {
        let v: Vec<f32> = (0..t.head_dim / 2)
            .map(|i| if i < t.head_dim / 4 { 1.0 } else { 1.0 + i as f32 })
            .collect();
        tensors.push((
            "rope_freqs.weight".into(),
            QTensor::quantize(
                &Tensor::from_vec(v, t.head_dim / 2, &Device::Cpu).unwrap(),
                GgmlDType::F32,
            )
            .unwrap(),
        ));
    }
    for l in 0..t.n_layer {
        let n = |s: &str| format!("blk.{l}.{s}");
        tensors.push((n("attn_norm.weight"), norm(&mut rng, e)));
        tensors.push((n("attn_q.weight"), rand_q(&mut rng, &[q_out, e], w(e), t.dtype)));
        tensors.push((n("attn_k.weight"), rand_q(&mut rng, &[kv_out, e], w(e), t.dtype)));
        tensors.push((n("attn_v.weight"), rand_q(&mut rng, &[kv_out, e], w(e), t.dtype)));
        if t.arch == "qwen2" {
            tensors.push((n("attn_q.bias"), rand_q(&mut rng, &[q_out], 0.5, GgmlDType::F32)));
            tensors.push((n("attn_k.bias"), rand_q(&mut rng, &[kv_out], 0.5, GgmlDType::F32)));
            tensors.push((n("attn_v.bias"), rand_q(&mut rng, &[kv_out], 0.5, GgmlDType::F32)));
        }
        if t.arch == "qwen3" {
            tensors.push((n("attn_q_norm.weight"), norm(&mut rng, t.head_dim)));
            tensors.push((n("attn_k_norm.weight"), norm(&mut rng, t.head_dim)));
        }
        tensors.push((n("attn_output.weight"), rand_q(&mut rng, &[e, q_out], w(q_out), t.dtype)));
        tensors.push((n("ffn_norm.weight"), norm(&mut rng, e)));
        tensors.push((n("ffn_gate.weight"), rand_q(&mut rng, &[t.n_ff, e], w(e), t.dtype)));
        tensors.push((n("ffn_up.weight"), rand_q(&mut rng, &[t.n_ff, e], w(e), t.dtype)));
        tensors.push((n("ffn_down.weight"), rand_q(&mut rng, &[e, t.n_ff], w(t.n_ff), t.dtype)));
    }
    let a = |s: &str| format!("{}.{s}", t.arch);
    let id = |s: &str| tokens.iter().position(|x| x == s).unwrap() as u32;
    let mut meta: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(t.arch.into())),
        ("general.name".into(), Value::String(format!("tiny-{}", t.arch))),
        (a("block_count"), Value::U32(t.n_layer as u32)),
        (a("context_length"), Value::U32(t.context as u32)),
        (a("embedding_length"), Value::U32(e as u32)),
        (a("feed_forward_length"), Value::U32(t.n_ff as u32)),
        (a("attention.head_count"), Value::U32(t.n_head as u32)),
        (a("attention.head_count_kv"), Value::U32(t.n_head_kv as u32)),
        (a("rope.freq_base"), Value::F32(10000.0)),
        (a("attention.layer_norm_rms_epsilon"), Value::F32(1e-6)),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String(t.pre.into())),
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
    ];
    if t.head_dim != e / t.n_head {
        meta.push((a("attention.key_length"), Value::U32(t.head_dim as u32)));
        meta.push((a("attention.value_length"), Value::U32(t.head_dim as u32)));
    }
    if let Some(tpl) = t.template {
        meta.push(("tokenizer.chat_template".into(), Value::String(tpl.into())));
    }
    let path = dir.join(format!("tiny-{}-{:?}.gguf", t.arch, t.dtype));
    let mut f = std::fs::File::create(&path).unwrap();
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut f, &meta_refs, &tensor_refs).unwrap();
    path
}
