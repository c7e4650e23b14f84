//! Experiments: did the prompt change fix it? A spec (`spec`) names a model or an endpoint,
//! a sampler, N samples and two or more prompt variants; sample *i* of every variant uses seed
//! `seed + i` (paired samples). Every sample is an ordinary stored run in its variant's
//! session; the store's `experiments` tree records which run answers which (variant, sample),
//! so an interrupted experiment resumes where it stopped (`runner`). The report (`report`)
//! aggregates the runs' analysis per variant and compares each variant with the first
//! (`stats`: Wilson and Newcombe intervals, the exact McNemar test); `export` writes it as
//! Markdown or HTML. Shared by `thinkdbg experiment` and the terminal UI; depends on `engine`,
//! `remote`, `runs::{analysis, remote, resample}`, `store`, `export`'s escaping and `trace`;
//! never on `cli` or `tui`.

pub mod export;
pub mod report;
pub mod runner;
pub mod spec;
pub mod stats;

pub use report::Report;
pub use spec::Spec;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("experiment spec: {0}")]
    Spec(String),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Engine(#[from] crate::engine::Error),
    #[error(transparent)]
    Remote(#[from] crate::runs::remote::Error),
    #[error(transparent)]
    Analysis(#[from] crate::runs::analysis::Error),
    #[error("no experiment '{0}' (see 'thinkdbg experiment --list')")]
    NoExperiment(String),
    #[error("{0}")]
    Resume(String),
    #[error("the store writer of run '{0}' stopped unexpectedly")]
    Writer(crate::trace::RunId),
}

pub type Result<T> = std::result::Result<T, Error>;
