//! Errors of the terminal UI: keymap and theme files that do not parse, terminal I/O and the
//! store underneath.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("keymap '{file}': {msg}")]
    Keymap { file: String, msg: String },
    #[error("theme '{file}': {msg}")]
    Theme { file: String, msg: String },
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
    #[error("reading '{path}': {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("writing '{path}': {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("{0}")]
    Job(String),
    #[error(transparent)]
    Replay(#[from] crate::runs::replay::Error),
    #[error("sample '{file}': {msg}")]
    Sample { file: String, msg: String },
}

pub type Result<T> = std::result::Result<T, Error>;
