//! `thinkdbg model`: fetch the demo model, describe a GGUF file.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use crate::engine::gguf::{Gguf, TensorType};
use crate::engine::source::{self, ModelSource};
use crate::engine::{describe, models};
use crate::sanitize::for_terminal;

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
}

pub fn run(cmd: &ModelCommand, offline: bool) -> Result<ExitCode> {
    match cmd {
        ModelCommand::FetchDemo => {
            let path = source::demo_model(offline)?;
            println!("{}", path.display());
        }
        ModelCommand::Info { model, tensors } => {
            let path = ModelSource::parse(model.as_deref())?.resolve(offline)?;
            let g = Gguf::open(&path)?;
            print!("{}", info_text(&g, *tensors)?);
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
