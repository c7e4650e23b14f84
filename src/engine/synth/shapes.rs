//! Named shapes of synthetic models: `tiny` for every architecture (test-sized) and the real
//! dimensions of R1-Distill-Qwen-1.5B, DeepSeek-V2-Lite, Qwen3-30B-A3B and a full-depth but
//! narrow DeepSeek-R1. The vocabulary is always the small synthetic one. Depends on
//! `engine::error` only.

use crate::engine::error::{Error, Result};

/// Shape names `model synth --shape` accepts.
pub const SHAPES: &[&str] = &[
    "tiny",
    "tiny-v2",
    "tiny-v2-split",
    "tiny-v3-legacy",
    "r1-distill-1.5b",
    "r1-distill-7b",
    "v2-lite",
    "qwen3-30b-a3b",
    "r1-narrow",
    "qwen3moe-mid",
];

/// Multi-head latent attention dimensions (`deepseek2`).
#[derive(Debug, Clone, PartialEq)]
pub struct Mla {
    pub q_lora: Option<usize>,
    pub kv_lora: usize,
    pub qk_nope: usize,
    pub qk_rope: usize,
    pub v_head: usize,
    /// Newer layout: `attn_k_b` / `attn_v_b` instead of `attn_kv_b`.
    pub split: bool,
    /// YaRN `(factor, original context, yarn_log_multiplier)`.
    pub yarn: Option<(f32, usize, f32)>,
}

/// Every dimension of a synthetic model.
#[derive(Debug, Clone, PartialEq)]
pub struct Dims {
    pub arch: String,
    pub shape: String,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub n_layer: usize,
    pub context: usize,
    pub n_expert: usize,
    pub n_expert_used: usize,
    pub n_ff_exp: usize,
    pub n_shared: usize,
    pub lead_dense: usize,
    /// 1 softmax, 2 sigmoid (`deepseek2` only).
    pub gating_func: usize,
    pub weights_norm: bool,
    pub weights_scale: f32,
    pub groups: Option<(usize, usize)>,
    pub mla: Option<Mla>,
}

impl Dims {
    fn dense(arch: &str, shape: &str) -> Dims {
        Dims {
            arch: arch.into(),
            shape: shape.into(),
            n_embd: 64,
            n_head: 4,
            n_head_kv: 2,
            head_dim: 16,
            n_ff: 128,
            n_layer: 2,
            context: 256,
            n_expert: 0,
            n_expert_used: 0,
            n_ff_exp: 0,
            n_shared: 0,
            lead_dense: 0,
            gating_func: 1,
            weights_norm: true,
            weights_scale: 1.0,
            groups: None,
            mla: None,
        }
    }

    /// The dimensions of `shape` for `arch`.
    pub fn named(arch: &str, shape: &str) -> Result<Dims> {
        let bad = || {
            Error::Source(format!(
                "shape '{shape}' does not exist for architecture '{arch}' (shapes: {}; \
                 r1-distill-1.5b and r1-distill-7b are qwen2, v2-lite and r1-narrow deepseek2, qwen3-30b-a3b and \
                 qwen3moe-mid qwen3moe)",
                SHAPES.join(", ")
            ))
        };
        let base = Dims::dense(arch, shape);
        let tiny_moe = Dims {
            head_dim: 32,
            n_expert: 8,
            n_expert_used: 2,
            n_ff_exp: 32,
            n_layer: 3,
            ..base.clone()
        };
        let mut d = match (arch, shape) {
            ("llama" | "qwen2", "tiny") => base,
            ("qwen3moe", "tiny") => tiny_moe,
            ("deepseek2", "tiny") => Dims {
                n_head_kv: 4,
                head_dim: 0,
                lead_dense: 1,
                n_shared: 1,
                gating_func: 2,
                weights_norm: true,
                weights_scale: 2.5,
                groups: Some((4, 2)),
                mla: Some(Mla {
                    q_lora: Some(32),
                    kv_lora: 32,
                    qk_nope: 32,
                    qk_rope: 16,
                    v_head: 32,
                    split: true,
                    yarn: Some((4.0, 64, 0.1)),
                }),
                ..tiny_moe
            },
            // deepseek2 variants: `tiny` is V3-like (split MLA layout, q_lora, sigmoid, groups,
            // selection bias); the others flip layout, q_lora, gating and groups.
            ("deepseek2", "tiny-v2") => {
                let mut d = Dims::named("deepseek2", "tiny")?;
                d.gating_func = 1;
                d.groups = None;
                d.weights_norm = false;
                d.weights_scale = 1.0;
                d.n_shared = 2;
                // llama.cpp reads a file without q_lora only at V2-Lite's 27 blocks.
                d.n_layer = 27;
                if let Some(m) = d.mla.as_mut() {
                    m.split = false;
                    m.q_lora = None;
                }
                d
            }
            ("deepseek2", "tiny-v2-split") => {
                let mut d = Dims::named("deepseek2", "tiny-v2")?;
                d.groups = Some((4, 2));
                if let Some(m) = d.mla.as_mut() {
                    m.split = true;
                }
                d
            }
            ("deepseek2", "tiny-v3-legacy") => {
                let mut d = Dims::named("deepseek2", "tiny")?;
                d.groups = None;
                if let Some(m) = d.mla.as_mut() {
                    m.split = false;
                }
                d
            }
            ("qwen2", "r1-distill-1.5b") => Dims {
                n_embd: 1536,
                n_head: 12,
                n_head_kv: 2,
                head_dim: 128,
                n_ff: 8960,
                n_layer: 28,
                context: 4096,
                ..base
            },
            // DeepSeek-R1-Distill-Qwen-7B (Qwen2.5-Math-7B): the GPU benchmark's dense shape.
            ("qwen2", "r1-distill-7b") => Dims {
                n_embd: 3584,
                n_head: 28,
                n_head_kv: 4,
                head_dim: 128,
                n_ff: 18944,
                n_layer: 28,
                context: 4096,
                ..base
            },
            ("qwen3moe", "qwen3-30b-a3b") => Dims {
                n_embd: 2048,
                n_head: 32,
                n_head_kv: 4,
                head_dim: 128,
                n_ff: 6144,
                n_layer: 48,
                context: 4096,
                n_expert: 128,
                n_expert_used: 8,
                n_ff_exp: 768,
                ..base
            },
            // A mid-size MoE for speed checks: Qwen3-30B-A3B's width, 4 layers, 32 experts.
            ("qwen3moe", "qwen3moe-mid") => {
                Dims { n_layer: 4, n_expert: 32, ..Dims::named("qwen3moe", "qwen3-30b-a3b")? }
            }
            ("deepseek2", "v2-lite") => Dims {
                n_embd: 2048,
                n_head: 16,
                n_head_kv: 16,
                head_dim: 0,
                n_ff: 10944,
                n_layer: 27,
                context: 4096,
                n_expert: 64,
                n_expert_used: 6,
                n_ff_exp: 1408,
                n_shared: 2,
                lead_dense: 1,
                gating_func: 1,
                weights_norm: false,
                weights_scale: 1.0,
                groups: None,
                mla: Some(Mla {
                    q_lora: None,
                    kv_lora: 512,
                    qk_nope: 128,
                    qk_rope: 64,
                    v_head: 128,
                    split: true,
                    yarn: Some((40.0, 4096, 0.0707)),
                }),
                ..base
            },
            // DeepSeek-R1's depth and routing (61 layers, 3 dense, 256 experts, 8 per token,
            // 1 shared, sigmoid, groups 8/4, scale 2.5) at a small width.
            ("deepseek2", "r1-narrow") => Dims {
                n_layer: 61,
                n_expert: 256,
                n_expert_used: 8,
                lead_dense: 3,
                groups: Some((8, 4)),
                ..Dims::named("deepseek2", "tiny")?
            },
            _ => return Err(bad()),
        };
        d.shape = shape.into();
        Ok(d)
    }

    /// `tokenizer.ggml.pre` written for the architecture.
    pub fn pre(&self) -> &'static str {
        if self.arch == "llama" {
            "llama-bpe"
        } else {
            "qwen2"
        }
    }

    pub fn template(&self) -> &'static str {
        if self.arch == "llama" {
            super::vocab::CHATML
        } else {
            super::vocab::CHATML_THINK
        }
    }
}
