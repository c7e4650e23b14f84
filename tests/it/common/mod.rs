//! Test support: tiny random GGUF models with a small real BPE vocabulary (written with
//! candle's GGUF writer), an independent naive forward pass to check the engine against, and
//! the demo model's location.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::needless_range_loop
)]

pub mod llama_server;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

/// The `thinkdbg` binary with its cache, log, store, config and Hugging Face cache inside `dir`, so a
/// test never touches the user's data, and without colour.
pub fn thinkdbg(dir: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("thinkdbg").unwrap();
    cmd.env("THINKDBG_CACHE", dir.join("cache"))
        .env("THINKDBG_LOG_FILE", dir.join("test.log"))
        .env("THINKDBG_STORE", dir.join("store"))
        .env("THINKDBG_CONFIG", dir.join("config.toml"))
        .env("HF_HOME", dir.join("hf"))
        .env_remove("THINKDBG_MODEL")
        .env("NO_COLOR", "1");
    cmd
}

/// The demo model, fetched into the cache on first use (as `.ci/run` does before the tests).
pub fn demo_model() -> PathBuf {
    thinkdbg::engine::source::demo_model(false).expect("the demo model could not be fetched")
}

/// GPT-2's byte-to-unicode table: printable bytes stand for themselves, the rest are moved
/// to code points from 256 up.
pub fn byte_to_char() -> Vec<char> {
    let mut table = vec!['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u32 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).unwrap()
        } else {
            next += 1;
            char::from_u32(next - 1).unwrap()
        };
    }
    table
}

const CORPUS: &str = "the quick brown fox jumps over the lazy dog. the answer is 42. \
Let me think about this step by step. First, the the the. Wait, that is not right. \
fn main() { println!(\"hello\"); } def f(x): return x * 2 # comment \
therefore the answer is the one we thought of. thinking is hard but the answer is there.";

/// Special tokens appended after the BPE vocabulary: `(text, token_type)`.
pub const SPECIALS: &[(&str, i32)] = &[
    ("<|endoftext|>", 3),
    ("<|im_start|>", 3),
    ("<|im_end|>", 3),
    ("<think>", 4),
    ("</think>", 4),
];

/// A byte-level BPE vocabulary learned on a small corpus: 256 byte tokens, `n_merges` merges,
/// then the special tokens. Returns `(tokens, token_types, merges)`.
pub fn bpe_vocab(n_merges: usize) -> (Vec<String>, Vec<i32>, Vec<String>) {
    let b2c = byte_to_char();
    let mut tokens: Vec<String> = (0..256).map(|b| b2c[b].to_string()).collect();
    // Words as pre-tokenized by a GPT-2-like split: a leading space stays with the word.
    let mut words: Vec<Vec<String>> = Vec::new();
    let mut current = String::new();
    for ch in CORPUS.chars() {
        if ch == ' ' && !current.is_empty() {
            words.push(current.bytes().map(|b| b2c[b as usize].to_string()).collect());
            current.clear();
        }
        current.push(ch);
    }
    words.push(current.bytes().map(|b| b2c[b as usize].to_string()).collect());
    let mut merges = Vec::new();
    for _ in 0..n_merges {
        let mut counts: HashMap<(String, String), usize> = HashMap::new();
        for w in &words {
            for pair in w.windows(2) {
                *counts.entry((pair[0].clone(), pair[1].clone())).or_default() += 1;
            }
        }
        let Some(((a, b), _)) = counts.into_iter().max_by(|x, y| x.1.cmp(&y.1).then(y.0.cmp(&x.0)))
        else {
            break;
        };
        let merged = format!("{a}{b}");
        for w in &mut words {
            let mut i = 0;
            while i + 1 < w.len() {
                if w[i] == a && w[i + 1] == b {
                    w[i] = merged.clone();
                    w.remove(i + 1);
                }
                i += 1;
            }
        }
        merges.push(format!("{a} {b}"));
        tokens.push(merged);
    }
    let mut types = vec![1i32; tokens.len()];
    for (s, t) in SPECIALS {
        tokens.push(s.to_string());
        types.push(*t);
    }
    (tokens, types, merges)
}

pub const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
pub const CHATML_THINK: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n<think>\n' }}{% endif %}";

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
