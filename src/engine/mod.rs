//! The embedded inference engine: GGUF loading, tokenizer, chat template, forward passes on
//! candle's quantized matmuls, sampling, and a worker thread that hands every generated `Step`
//! to a `Recorder`.
//!
//! It depends only on `trace`; it must never import `store`, `tui` or `cli`.

pub mod batch;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod kernels;
pub mod lens;
pub mod models;
pub mod probe;
pub mod rope;
pub mod sampler;
pub mod score;
pub mod source;
pub mod synth;
pub mod template;
pub mod tokenizer;
pub mod worker;

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;

pub use error::{Error, Result};
pub use generate::{Prompt, RunRequest, RunSummary};

use crate::trace::ModelInfo;
use gguf::Gguf;
use models::Model;
use template::ChatTemplate;
use tokenizer::{Tokenizer, VocabSpec};

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Accept an unknown `tokenizer.ggml.pre` (with a warning and the GPT-2 pre-tokenizer).
    pub force: bool,
    /// A Hugging Face `tokenizer.json` used instead of the GGUF vocabulary.
    pub tokenizer_json: Option<PathBuf>,
    /// The KV cache's element type; `None`: `THINKDBG_KV_CACHE`, else the device's default
    /// (`models::kv_cache_dtype`).
    pub kv_cache: Option<models::CacheType>,
}

/// A loaded model with its tokenizer and chat template, ready to generate runs.
pub struct Engine {
    pub info: ModelInfo,
    pub path: PathBuf,
    pub warnings: Vec<String>,
    pub(crate) model: Box<dyn Model>,
    pub(crate) tokenizer: Tokenizer,
    pub(crate) template: Option<ChatTemplate>,
    pub load_ms: u64,
    /// Where the weights live and the model runs: "cpu", "cuda" or "metal".
    pub device: &'static str,
}

/// What `model info` shows about a file, without loading its weights.
pub fn describe(gguf: &Gguf) -> Result<ModelInfo> {
    let arch = gguf.architecture()?.to_string();
    let name = gguf
        .get("general.name")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .or_else(|| gguf.path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let num =
        |key: &str| gguf.get(&format!("{arch}.{key}")).and_then(|v| v.as_u64()).unwrap_or(0) as u32;
    Ok(ModelInfo {
        layers: num("block_count"),
        experts: num("expert_count"),
        experts_per_token: num("expert_used_count"),
        moe_layers: models::moe::moe_layers(gguf)?,
        gating: models::moe::gating_rule(gguf)?,
        name,
        quant: gguf.dominant_type(),
        fingerprint: gguf.fingerprint()?,
        arch,
    })
}

impl Engine {
    /// Loads a GGUF model on the CPU (or the device of the enabled feature), reporting progress
    /// as bytes read and in all.
    pub fn load(
        path: &Path,
        opts: &LoadOptions,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Engine> {
        let start = Instant::now();
        let gguf = Gguf::open(path)?;
        let arch = gguf.architecture()?;
        if !models::SUPPORTED_ARCHS.contains(&arch) {
            return Err(Error::UnknownArchitecture {
                arch: arch.to_string(),
                supported: models::SUPPORTED_ARCHS.join(", "),
            });
        }
        let spec = VocabSpec::from_gguf(&gguf)?;
        let (tokenizer, mut warnings) = match &opts.tokenizer_json {
            Some(json) => (Tokenizer::from_json_file(json, &spec)?, Vec::new()),
            None => Tokenizer::from_spec(&spec, opts.force)?,
        };
        let template = match &spec.chat_template {
            Some(src) => {
                let tok = |id: Option<u32>| {
                    id.map(|i| String::from_utf8_lossy(tokenizer.token_bytes(i)).into_owned())
                        .unwrap_or_default()
                };
                match ChatTemplate::new(src, &tok(spec.bos), &tok(spec.eos)) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        warnings.push(format!(
                            "the chat template cannot be used ({e}); only --raw prompts will work"
                        ));
                        None
                    }
                }
            }
            None => None,
        };
        let info = describe(&gguf)?;
        let device = device()?;
        let model = models::load_with(&gguf, &device, progress, opts.kv_cache)?;
        for w in &warnings {
            tracing::warn!("{w}");
        }
        Ok(Engine {
            info,
            path: path.to_path_buf(),
            warnings,
            model,
            tokenizer,
            template,
            load_ms: start.elapsed().as_millis() as u64,
            device: match device {
                Device::Cpu => "cpu",
                Device::Cuda(_) => "cuda",
                Device::Metal(_) => "metal",
            },
        })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn has_chat_template(&self) -> bool {
        self.template.is_some()
    }

    pub fn context_length(&self) -> usize {
        self.model.context_length()
    }
}

/// The compute device: CUDA or Metal when built with that feature, else the CPU.
/// `THINKDBG_DEVICE=cpu` keeps a GPU build on the CPU (to compare the two on one machine);
/// asking for a backend the build lacks is an error rather than a silent fallback.
pub fn device() -> Result<Device> {
    let asked = std::env::var("THINKDBG_DEVICE").unwrap_or_default().to_ascii_lowercase();
    let built = if cfg!(feature = "cuda") {
        "cuda"
    } else if cfg!(feature = "metal") {
        "metal"
    } else {
        "cpu"
    };
    match asked.as_str() {
        "" => {}
        "cpu" => return Ok(Device::Cpu),
        a if a == built => {}
        other => {
            return Err(Error::Device(format!(
                "THINKDBG_DEVICE={other}, but this build has the {built} backend \
                 (cpu always works; see README, Building for a GPU)"
            )))
        }
    }
    #[cfg(feature = "cuda")]
    {
        return Ok(Device::new_cuda(0)?);
    }
    #[cfg(all(feature = "metal", not(feature = "cuda")))]
    {
        return Ok(Device::new_metal(0)?);
    }
    #[allow(unreachable_code)]
    Ok(Device::Cpu)
}
