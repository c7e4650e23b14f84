//! Generation options shared by every subcommand that runs a model (`run` now; `record` and
//! `bench` later), and their validation into engine types.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use crate::engine::generate::{Prompt, RunRequest};
use crate::engine::source::ModelSource;
use crate::engine::LoadOptions;
use crate::trace::{Message, RoutingDetail, SamplerSpec};

pub(super) fn parse_routing(s: &str) -> Result<RoutingDetail> {
    Ok(match s {
        "off" => RoutingDetail::Off,
        "selected" => RoutingDetail::Selected,
        "full" => RoutingDetail::Full,
        other => bail!("unknown routing detail '{other}' (off, selected, full)"),
    })
}

/// `[generate] max_tokens` of the user's `config.toml` (see `analysis::config`), else of the
/// built-in `assets/config.toml`; 0 (the default) is no cap (`trace::NO_TOKEN_CAP`).
pub fn configured_max_tokens() -> Result<usize> {
    let mut n = None;
    if let Some(path) = crate::analysis::config::user_config_path().filter(|p| p.is_file()) {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("reading '{}': {e}", path.display()))?;
        n = max_tokens_in(&path, &text)?;
    }
    if n.is_none() {
        let builtin = std::path::Path::new("assets/config.toml (built in)");
        n = max_tokens_in(builtin, crate::analysis::config::DEFAULT_CONFIG)?;
    }
    Ok(match n {
        None | Some(0) => crate::trace::NO_TOKEN_CAP,
        Some(n) => n,
    })
}

/// `[generate] max_tokens` of one config file's text, if it sets it.
fn max_tokens_in(path: &std::path::Path, text: &str) -> Result<Option<usize>> {
    let table: toml::Table =
        text.parse().map_err(|e| anyhow::anyhow!("'{}': {e}", path.display()))?;
    let Some(v) = table.get("generate").and_then(|r| r.get("max_tokens")) else {
        return Ok(None);
    };
    match v.as_integer().and_then(|n| usize::try_from(n).ok()) {
        Some(n) => Ok(Some(n)),
        None => bail!(
            "'{}': key 'generate.max_tokens' must be a whole number (0: no cap), not {v}",
            path.display()
        ),
    }
}

#[derive(Debug, Clone, Args)]
pub struct GenArgs {
    /// The prompt (the user message; with --raw, the exact text). '-' reads it from stdin.
    pub prompt: String,
    /// A GGUF file, hf:ORG/REPO/FILE.gguf, or 'demo' (the default: SmolLM2-135M-Instruct Q4_1).
    #[arg(short, long, env = "THINKDBG_MODEL", value_name = "MODEL")]
    pub model: Option<String>,
    /// Tokenize the prompt as given, without the chat template (special tokens are parsed; BOS
    /// is added only if the GGUF's add_bos_token says so).
    #[arg(long)]
    pub raw: bool,
    /// A system message (ignored with --raw).
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// Most tokens to generate. Default: no cap, generate until the end of the turn or until
    /// the context is full (reasoning models think for thousands of tokens); a cap for every
    /// run can be set as `[generate] max_tokens` in config.toml (see `thinkdbg --help`).
    #[arg(short = 'n', long, value_name = "N")]
    pub max_tokens: Option<usize>,
    /// Sampling temperature; 0 is greedy.
    #[arg(short, long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Keep only the K most likely tokens (0 = off).
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability adds up to P (1 = off).
    #[arg(long, default_value_t = 1.0, value_name = "P")]
    pub top_p: f32,
    /// Drop tokens less likely than P times the most likely one (0 = off).
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub min_p: f32,
    /// Penalise tokens seen in the last --repeat-last-n tokens (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub repeat_last_n: usize,
    /// Random seed: the same inputs and seed give the same tokens.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Generate past end-of-generation tokens until --max-tokens (for benchmarks).
    #[arg(long)]
    pub ignore_eos: bool,
    /// Alternatives kept per step.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub top_logprobs: usize,
    /// MoE routing to record: 'off', 'selected' (each layer's experts and gate weights) or
    /// 'full' (also the router's distribution over every expert).
    #[arg(long, default_value = "selected", value_parser = parse_routing, value_name = "DETAIL")]
    pub routing: RoutingDetail,
    /// Do not record how the prompt's tokens were routed (MoE models).
    #[arg(long)]
    pub no_prompt_routing: bool,
    /// Use this tokenizer.json instead of the GGUF's vocabulary.
    #[arg(long, value_name = "PATH")]
    pub tokenizer: Option<PathBuf>,
    /// Accept an unknown tokenizer pre-type (with a warning and the GPT-2 pre-tokenizer).
    #[arg(long)]
    pub force: bool,
}

/// Applies `f` to a model argument that names a file (not `demo`, not `hf:…`).
pub fn model_path(spec: &mut Option<String>, f: &mut dyn FnMut(&mut PathBuf)) {
    if let Some(m) = spec.as_mut().filter(|m| *m != "demo" && !m.starts_with("hf:")) {
        let mut p = PathBuf::from(m.as_str());
        f(&mut p);
        *m = p.to_string_lossy().into_owned();
    }
}

impl GenArgs {
    /// Every file named by the arguments (`serve` makes them absolute).
    pub fn for_each_path(&mut self, f: &mut dyn FnMut(&mut PathBuf)) {
        model_path(&mut self.model, f);
        if let Some(t) = self.tokenizer.as_mut() {
            f(t);
        }
    }

    /// The prompt text, reading stdin for '-'.
    fn prompt_text(&self) -> Result<String> {
        if self.prompt == "-" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
            return Ok(s);
        }
        Ok(self.prompt.clone())
    }

    pub fn sampler(&self) -> Result<SamplerSpec> {
        let max_tokens = match self.max_tokens {
            Some(0) => bail!("'--max-tokens' must be at least 1"),
            Some(n) => n,
            None => configured_max_tokens()?,
        };
        if self.top_logprobs > crate::trace::MAX_ALTERNATIVES {
            bail!(
                "'--top-logprobs' is {}; at most {} alternatives are kept",
                self.top_logprobs,
                crate::trace::MAX_ALTERNATIVES
            );
        }
        let spec = SamplerSpec {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            seed: self.seed,
            max_tokens,
            ignore_eos: self.ignore_eos,
        };
        // Check the settings now rather than after loading the model.
        crate::engine::sampler::Sampler::new(&spec)?;
        Ok(spec)
    }

    pub fn request(&self) -> Result<RunRequest> {
        let text = self.prompt_text()?;
        let prompt = if self.raw {
            Prompt::Raw(text)
        } else {
            let mut messages = Vec::new();
            if let Some(system) = &self.system {
                messages.push(Message::new("system", system.clone()));
            }
            messages.push(Message::new("user", text));
            Prompt::Chat(messages)
        };
        Ok(RunRequest {
            prompt,
            sampler: self.sampler()?,
            top_logprobs: self.top_logprobs,
            forced: Vec::new(),
            forced_text: None,
            routing: self.routing,
            prompt_routing: !self.no_prompt_routing,
        })
    }

    pub fn source(&self) -> Result<ModelSource> {
        Ok(ModelSource::parse(self.model.as_deref())?)
    }

    pub fn load_options(&self) -> LoadOptions {
        LoadOptions { force: self.force, tokenizer_json: self.tokenizer.clone(), kv_cache: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_no_cap_and_the_config_can_set_one() {
        let p = std::path::Path::new("c.toml");
        let builtin = max_tokens_in(p, crate::analysis::config::DEFAULT_CONFIG).unwrap();
        assert_eq!(builtin, Some(0));
        assert_eq!(max_tokens_in(p, "[generate]\nmax_tokens = 4096\n").unwrap(), Some(4096));
        assert_eq!(max_tokens_in(p, "[resample]\nsamples = 3\n").unwrap(), None);
        let err = max_tokens_in(p, "[generate]\nmax_tokens = -1\n").unwrap_err().to_string();
        assert!(err.contains("'c.toml'") && err.contains("'generate.max_tokens'"), "{err}");
    }
}
