//! `thinkdbg model`: fetch the demo model, describe a GGUF file.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use crate::engine::gguf::{Gguf, TensorType};
use crate::engine::source::{self, ModelSource};
use crate::engine::{describe, models, synth};
use crate::sanitize::for_terminal;
use candle_core::quantized::GgmlDType;

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Download the demo model (SmolLM2-135M-Instruct Q4_1) into the cache and print its path.
    FetchDemo,
    /// Architecture, shapes, quantization types, tokenizer and chat template of a GGUF file.
    Info {
        /// A GGUF file, hf:ORG/REPO/FILE.gguf, or 'demo' (the default).
        model: Option<String>,
        /// List every tensor.
        #[arg(long)]
        tensors: bool,
    },
    /// Write a random-weight GGUF at a real shape, with real metadata, a small learned BPE
    /// tokenizer and a chat template; thinkdbg and llama.cpp both load it.
    Synth {
        /// llama, qwen2, qwen3moe or deepseek2.
        #[arg(long)]
        arch: String,
        /// tiny, r1-distill-1.5b and r1-distill-7b (qwen2), v2-lite (deepseek2), qwen3-30b-a3b (qwen3moe),
        /// qwen3moe-mid (qwen3moe, 4 layers, 32 experts), r1-narrow (deepseek2: R1's 61
        /// layers and routing at a small width).
        #[arg(long, default_value = "tiny")]
        shape: String,
        /// q8_0, q4_k or f32 (rows that do not fit a block fall back to q8_0, then f32).
        #[arg(long, default_value = "q8_0")]
        quant: String,
        /// Seed of the random weights: the same arguments always write the same bytes.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Override the number of blocks.
        #[arg(long)]
        layers: Option<usize>,
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

pub fn run(cmd: &ModelCommand, offline: bool) -> Result<ExitCode> {
    match cmd {
        ModelCommand::FetchDemo => {
            let path = source::demo_model(offline)?;
            outln!("{}", path.display());
        }
        ModelCommand::Info { model, tensors } => {
            let path = ModelSource::parse(model.as_deref())?.resolve(offline)?;
            let g = Gguf::open(&path)?;
            out!("{}", info_text(&g, *tensors)?);
        }
        ModelCommand::Synth { arch, shape, quant, seed, layers, out } => {
            let mut dims = synth::Dims::named(arch, shape)?;
            if let Some(n) = layers {
                dims.n_layer = *n;
            }
            let quant = match quant.to_ascii_lowercase().as_str() {
                "q8_0" => GgmlDType::Q8_0,
                "q4_k" => GgmlDType::Q4K,
                "f32" => GgmlDType::F32,
                other => anyhow::bail!("unknown --quant '{other}' (q8_0, q4_k, f32)"),
            };
            synth::write(&synth::SynthSpec { dims, quant, seed: *seed }, out)?;
            errln!("wrote {}", out.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn info_text(g: &Gguf, tensors: bool) -> Result<String> {
    use std::fmt::Write;
    let info = describe(g)?;
    let mut s = String::new();
    let arch = &info.arch;
    let supported = if models::SUPPORTED_ARCHS.contains(&arch.as_str()) {
        "supported"
    } else {
        "not supported"
    };
    writeln!(s, "file          {}", g.path.display())?;
    writeln!(s, "name          {}", for_terminal(&info.name, false))?;
    writeln!(s, "architecture  {arch} ({supported})")?;
    writeln!(s, "gguf version  {}", g.version)?;
    writeln!(s, "fingerprint   {}", info.fingerprint)?;
    writeln!(
        s,
        "size          {:.1} MiB, {} tensors",
        g.file_len as f64 / (1 << 20) as f64,
        g.tensors.len()
    )?;
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for t in &g.tensors {
        *counts.entry(t.ttype.name()).or_default() += 1;
    }
    let types: Vec<String> = counts.iter().map(|(k, v)| format!("{k} ×{v}")).collect();
    writeln!(s, "tensor types  {}", types.join(", "))?;
    if let Some(bad) = g.tensors.iter().find(|t| matches!(t.ttype, TensorType::Unsupported(_))) {
        writeln!(
            s,
            "              cannot run: tensor '{}' has type {}",
            bad.name,
            bad.ttype.name()
        )?;
    }
    if info.experts > 0 {
        writeln!(s, "\n[mixture of experts]")?;
        writeln!(s, "experts       {} routed, {} per token", info.experts, info.experts_per_token)?;
        let shared =
            g.get(&format!("{arch}.expert_shared_count")).and_then(|v| v.as_u64()).unwrap_or(0);
        if shared > 0 {
            writeln!(s, "shared        {shared}")?;
        }
        writeln!(s, "gating        {}", info.gating)?;
        let dense: Vec<String> = (0..info.layers as u16)
            .filter(|l| !info.moe_layers.contains(l))
            .map(|l| l.to_string())
            .collect();
        writeln!(
            s,
            "moe layers    {} of {}: {}",
            info.moe_layers.len(),
            info.layers,
            ranges(&info.moe_layers)
        )?;
        if !dense.is_empty() {
            writeln!(s, "dense layers  {}", dense.join(", "))?;
        }
    }
    writeln!(s, "\n[hyper-parameters]")?;
    for (k, v) in g.metadata.iter().filter(|(k, _)| k.starts_with(&format!("{arch}."))) {
        writeln!(s, "{k:<44} {}", for_terminal(&v.summary(), false))?;
    }
    writeln!(s, "\n[tokenizer]")?;
    for (k, v) in g.metadata.iter().filter(|(k, _)| k.starts_with("tokenizer.ggml.")) {
        writeln!(s, "{k:<44} {}", for_terminal(&v.summary(), false))?;
    }
    writeln!(s, "\n[chat template]")?;
    match g.get("tokenizer.chat_template").and_then(|v| v.as_str()) {
        Some(t) => writeln!(s, "{}", for_terminal(t, true))?,
        None => writeln!(s, "(none: only --raw prompts)")?,
    }
    if tensors {
        writeln!(s, "\n[tensors]")?;
        for t in &g.tensors {
            writeln!(s, "{:<40} {:<8} {:?}", t.name, t.ttype.name(), t.dims)?;
        }
    }
    Ok(s)
}

/// `3-60` style list of sorted layer indices.
fn ranges(layers: &[u16]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < layers.len() {
        let mut j = i;
        while j + 1 < layers.len() && layers[j + 1] == layers[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            layers[i].to_string()
        } else {
            format!("{}-{}", layers[i], layers[j])
        });
        i = j + 1;
    }
    parts.join(", ")
}
