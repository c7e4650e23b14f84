//! Analysis thresholds: defaults in `assets/config.toml` (compiled in), overridden key by key
//! by the user's `config.toml` (platform config directory, or `THINKDBG_CONFIG`). Only the
//! `[analysis]` table is read here; other tables belong to other modules. Depends on nothing
//! but `directories`, `toml` and `sha2`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{Error, Result};

/// The compiled-in defaults.
pub const DEFAULT_CONFIG: &str = include_str!("../../assets/config.toml");

/// Bumped when an analysis algorithm changes, so stored flags are recomputed.
pub const ANALYSIS_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisConfig {
    pub language: LanguageConfig,
    pub confidence: ConfidenceConfig,
    pub entropy: EntropyConfig,
    pub repetition: RepetitionConfig,
    pub answer: AnswerConfig,
    pub deepconf: DeepConfConfig,
    pub forks: ForksConfig,
    pub probe: ProbeConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageConfig {
    pub target: String,
    pub min_switch_words: usize,
    pub min_confidence: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfidenceConfig {
    pub low_logprob: f32,
    pub severe_logprob: f32,
    pub max_gap: usize,
    pub min_tokens: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntropyConfig {
    pub window: usize,
    pub warmup: usize,
    pub factor: f32,
    pub min_nats: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepetitionConfig {
    pub max_period: usize,
    pub min_repeats: usize,
    pub min_tokens: usize,
    pub error_repeats: usize,
    pub sentence_window: usize,
    pub min_sentence_chars: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerConfig {
    pub check_mismatch: bool,
}

/// DeepConf confidence (`analysis::confidence`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeepConfConfig {
    /// Alternatives averaged per token (1 to 20).
    pub k: usize,
    /// Tokens per group (sliding window).
    pub window: usize,
    /// Tokens the tail confidence averages.
    pub tail: usize,
    /// Group confidence below which an online early stop would end the run (0: off).
    pub stop_threshold: f64,
}

/// Forking tokens (`analysis::forks`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForksConfig {
    /// Share of a run's tokens, the highest-entropy ones, that are forking tokens.
    pub share: f64,
}

/// The answer-now probe (`runs::probe`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Closes the thinking before the answer prefix (runs that think).
    pub close_think: String,
    /// Fed after it: the start of a stated answer.
    pub answer_prefix: String,
    /// Most answer tokens decoded at each boundary.
    pub max_tokens: usize,
}

impl Default for AnalysisConfig {
    /// The built-in defaults (`assets/config.toml`).
    fn default() -> Self {
        Self::defaults().unwrap_or_else(|_| Self::hard_coded())
    }
}

impl AnalysisConfig {
    /// The values of `assets/config.toml`, for `Default` should that file ever fail to parse
    /// (a unit test keeps the two equal).
    fn hard_coded() -> Self {
        AnalysisConfig {
            language: LanguageConfig {
                target: String::new(),
                min_switch_words: 4,
                min_confidence: 0.5,
            },
            confidence: ConfidenceConfig {
                low_logprob: -2.3,
                severe_logprob: -4.6,
                max_gap: 2,
                min_tokens: 2,
            },
            entropy: EntropyConfig { window: 64, warmup: 16, factor: 3.0, min_nats: 1.5 },
            repetition: RepetitionConfig {
                max_period: 64,
                min_repeats: 3,
                min_tokens: 12,
                error_repeats: 8,
                sentence_window: 4,
                min_sentence_chars: 16,
            },
            answer: AnswerConfig { check_mismatch: true },
            deepconf: DeepConfConfig { k: 20, window: 1024, tail: 1024, stop_threshold: 0.0 },
            forks: ForksConfig { share: 0.2 },
            probe: ProbeConfig {
                close_think: "</think>".into(),
                answer_prefix: "\n\nThe final answer is".into(),
                max_tokens: 16,
            },
        }
    }

    /// The defaults alone.
    pub fn defaults() -> Result<Self> {
        Self::from_texts(None)
    }

    /// The defaults overridden by the user's file, if there is one.
    pub fn load() -> Result<Self> {
        match user_config_path() {
            Some(path) if path.exists() => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| Error::Io { path: path.clone(), source: e })?;
                Self::from_texts(Some((&path, &text)))
            }
            _ => Self::defaults(),
        }
    }

    /// The defaults overridden by `user`, a file's path and text.
    pub fn from_texts(user: Option<(&Path, &str)>) -> Result<Self> {
        let builtin = Path::new("assets/config.toml (built in)");
        let mut merged = parse(builtin, DEFAULT_CONFIG)?;
        if let Some((path, text)) = user {
            let theirs = parse(path, text)?;
            if let Some(analysis) = theirs.get("analysis") {
                let defaults = merged
                    .get("analysis")
                    .cloned()
                    .unwrap_or(toml::Value::Table(toml::Table::new()));
                let mut out = defaults.clone();
                merge(path, "analysis", &defaults, analysis, &mut out)?;
                merged.insert("analysis".into(), out);
            }
        }
        let analysis = merged.remove("analysis").unwrap_or(toml::Value::Table(toml::Table::new()));
        let cfg: AnalysisConfig = analysis.try_into().map_err(|e: toml::de::Error| {
            Error::Config { path: builtin.to_path_buf(), message: e.message().to_string() }
        })?;
        cfg.validate(user.map_or(builtin, |(p, _)| p))?;
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let bad = |key: &str, what: &str| Error::Config {
            path: path.to_path_buf(),
            message: format!("key '{key}' {what}"),
        };
        if self.entropy.window == 0 {
            return Err(bad("analysis.entropy.window", "must be at least 1"));
        }
        if self.repetition.max_period == 0 {
            return Err(bad("analysis.repetition.max_period", "must be at least 1"));
        }
        if self.repetition.min_repeats < 2 {
            return Err(bad("analysis.repetition.min_repeats", "must be at least 2"));
        }
        if !(0.0..=1.0).contains(&self.language.min_confidence) {
            return Err(bad("analysis.language.min_confidence", "must be between 0 and 1"));
        }
        if self.confidence.severe_logprob > self.confidence.low_logprob {
            return Err(bad("analysis.confidence.severe_logprob", "must not exceed low_logprob"));
        }
        let dc = &self.deepconf;
        if dc.k == 0 || dc.k > 20 {
            return Err(bad("analysis.deepconf.k", "must be 1 to 20"));
        }
        if dc.window == 0 {
            return Err(bad("analysis.deepconf.window", "must be at least 1"));
        }
        if dc.tail == 0 {
            return Err(bad("analysis.deepconf.tail", "must be at least 1"));
        }
        if !(dc.stop_threshold >= 0.0 && dc.stop_threshold.is_finite()) {
            return Err(bad("analysis.deepconf.stop_threshold", "must be 0 (off) or more"));
        }
        if self.probe.max_tokens == 0 || self.probe.max_tokens > 256 {
            return Err(bad("analysis.probe.max_tokens", "must be 1 to 256"));
        }
        if !(self.forks.share > 0.0 && self.forks.share <= 1.0) {
            return Err(bad("analysis.forks.share", "must be above 0 and at most 1"));
        }
        Ok(())
    }

    /// A short hash of these settings and the analysis version: stored flags computed under a
    /// different one are stale.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(ANALYSIS_VERSION.to_le_bytes());
        h.update(serde_json::to_vec(self).unwrap_or_default());
        h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// `THINKDBG_CONFIG`, else `config.toml` in the platform config directory.
pub fn user_config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("THINKDBG_CONFIG") {
        return Some(PathBuf::from(p));
    }
    directories::ProjectDirs::from("", "", "thinkdbg").map(|d| d.config_dir().join("config.toml"))
}

fn parse(path: &Path, text: &str) -> Result<toml::Table> {
    text.parse::<toml::Table>()
        .map_err(|e| Error::Config { path: path.to_path_buf(), message: e.to_string() })
}

/// Overlays `theirs` on `defaults` into `out`, refusing keys the defaults do not have and
/// values of another type (an integer is accepted where a float is expected).
fn merge(
    path: &Path,
    key: &str,
    defaults: &toml::Value,
    theirs: &toml::Value,
    out: &mut toml::Value,
) -> Result<()> {
    let err = |message: String| Error::Config { path: path.to_path_buf(), message };
    match (defaults, theirs) {
        (toml::Value::Table(d), toml::Value::Table(t)) => {
            for (k, v) in t {
                let full = format!("{key}.{k}");
                let Some(dv) = d.get(k) else {
                    return Err(err(format!("unknown key '{full}'")));
                };
                if let toml::Value::Table(o) = out {
                    let mut slot = dv.clone();
                    merge(path, &full, dv, v, &mut slot)?;
                    o.insert(k.clone(), slot);
                }
            }
            Ok(())
        }
        (toml::Value::Float(_), toml::Value::Integer(i)) => {
            *out = toml::Value::Float(*i as f64);
            Ok(())
        }
        (d, t) if d.type_str() == t.type_str() => {
            *out = t.clone();
            Ok(())
        }
        (d, t) => {
            Err(err(format!("key '{key}' must be of type {}, not {}", d.type_str(), t.type_str())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_user_keys_override_them() {
        let d = AnalysisConfig::defaults().unwrap();
        assert_eq!(d, AnalysisConfig::hard_coded());
        assert_eq!(d, AnalysisConfig::default());
        let user = "[analysis.entropy]\nfactor = 5\n[tui]\ntheme = 'x'\n";
        let c = AnalysisConfig::from_texts(Some((Path::new("u.toml"), user))).unwrap();
        assert_eq!(c.entropy.factor, 5.0);
        assert_eq!(c.entropy.window, 64);
        assert_ne!(c.fingerprint(), d.fingerprint());
        assert_eq!(d.fingerprint(), AnalysisConfig::defaults().unwrap().fingerprint());
    }

    #[test]
    fn wrong_keys_and_types_are_named() {
        let e = AnalysisConfig::from_texts(Some((
            Path::new("u.toml"),
            "[analysis.entropy]\nfactr = 1\n",
        )))
        .unwrap_err()
        .to_string();
        assert!(e.contains("'u.toml'") && e.contains("'analysis.entropy.factr'"), "{e}");
        let e = AnalysisConfig::from_texts(Some((
            Path::new("u.toml"),
            "[analysis.entropy]\nwindow = 'x'\n",
        )))
        .unwrap_err()
        .to_string();
        assert!(e.contains("'analysis.entropy.window' must be of type integer"), "{e}");
        let e = AnalysisConfig::from_texts(Some((
            Path::new("u.toml"),
            "[analysis.entropy]\nwindow = 0\n",
        )))
        .unwrap_err()
        .to_string();
        assert!(e.contains("'analysis.entropy.window' must be at least 1"), "{e}");
    }
}
