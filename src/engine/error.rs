//! Errors of the embedded engine. Messages name the file, tensor or key that is wrong, in
//! 'single quotes', so that a user can act on them without reading the source.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read '{path}': {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("'{path}' is not a GGUF file (magic bytes {magic:?}, expected \"GGUF\")")]
    NotGguf { path: PathBuf, magic: [u8; 4] },
    #[error("'{path}' is truncated or corrupt: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("tensor '{tensor}' has type {dtype}, which thinkdbg cannot compute with (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K)")]
    UnsupportedTensorType { tensor: String, dtype: String },
    #[error("unknown architecture '{arch}' (supported: {supported})")]
    UnknownArchitecture { arch: String, supported: String },
    #[error("metadata key '{key}' {problem}")]
    Metadata { key: String, problem: String },
    #[error("tensor '{name}' {problem}")]
    Tensor { name: String, problem: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    Template(String),
    #[error("the prompt has {prompt} tokens but the context holds {context}")]
    PromptTooLong { prompt: usize, context: usize },
    #[error("model source: {0}")]
    Source(String),
    #[error("sampler: {0}")]
    Sampler(String),
    #[error("the engine worker stopped unexpectedly: {0}")]
    Worker(String),
    #[error("device: {0}")]
    Device(String),
    #[error("setting: {0}")]
    Setting(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn metadata(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Error::Metadata { key: key.into(), problem: problem.into() }
    }

    pub(crate) fn tensor(name: impl Into<String>, problem: impl Into<String>) -> Self {
        Error::Tensor { name: name.into(), problem: problem.into() }
    }
}
