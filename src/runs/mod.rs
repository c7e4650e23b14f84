//! Run services: what both front ends do with recorded runs beyond reading them.
//!
//! - `analysis`: flags and statistics kept beside a run in the store, brought up to date when
//!   the run or the thresholds changed.
//! - `replay`: a recorded run as the parent of new runs (fork, edit and re-run): the model
//!   check and the child runs in its session.
//! - `resample`: N continuations from a point of a run and how often the final answer changed.
//! - `forks`: continuations from the alternatives of a run's forking tokens, ranked.
//! - `probe`: the answer-now probe (when did the answer settle?), kept beside the run.
//! - `experts`: cognitive experts (nPMI of expert and marker) over stored runs.
//! - `score`: a run's text scored under a local model (teacher forcing), stored as a child run.
//! - `remote`: recording one run from an OpenAI-compatible server into the store.
//! - `experiment`: prompt variants sampled N times each, stored, resumed and reported.
//! - `import`: other tools' traces (OpenAI exchanges, captured streams, datasets in JSONL or
//!   Parquet, text with `<think>`) as sessions, streamed and all or nothing.
//!
//! Used by `cli` and `tui`; never imports them. Below it: `engine`, `remote`, `analysis`,
//! `store`, `record` and `trace`.

pub mod analysis;
pub mod experiment;
pub mod experts;
pub mod forks;
pub mod import;
pub mod probe;
pub mod remote;
pub mod replay;
pub mod resample;
pub mod score;
