//! Errors of the session store. Messages name the store path, the run and the step in
//! 'single quotes' so that a user knows what is affected.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("store '{0}' is in use by another thinkdbg process")]
    InUse(PathBuf),
    #[error("store '{path}' has schema version {found}, newer than this thinkdbg understands ({supported}); upgrade thinkdbg")]
    NewerSchema { path: PathBuf, found: u32, supported: u32 },
    #[error("store '{path}' is damaged ({message}) and cannot be opened; nothing was changed. 'thinkdbg store check' shows which runs can be recovered, 'thinkdbg store salvage --to NEW' copies them into a new store")]
    Damaged { path: PathBuf, message: String },
    #[error("store '{0}' is read-only (opened from a copy): it can be read but not changed")]
    ReadOnly(PathBuf),
    #[error("store '{path}' cannot be opened: {message}")]
    Open { path: PathBuf, message: String },
    #[error("corrupt value in tree '{tree}' at {place}: {message}")]
    Corrupt { tree: &'static str, place: String, message: String },
    #[error("no run or session '{0}' in the store")]
    NotFound(String),
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("cannot read or write '{path}': {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the store writer stopped: {0}")]
    Writer(String),
    #[error("not enough free space for the store '{path}': {needed_mib} MiB needed, {available_mib} MiB free; nothing was written")]
    NoSpace { path: PathBuf, needed_mib: u64, available_mib: u64 },
}

pub type Result<T> = std::result::Result<T, Error>;
