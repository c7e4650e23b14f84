//! Errors of the analysis module: only its configuration can fail.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config '{path}': {message}")]
    Config { path: PathBuf, message: String },
    #[error("cannot read config '{path}': {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;
