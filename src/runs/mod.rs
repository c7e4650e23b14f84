//! Run services: what both front ends do with recorded runs beyond reading them.
//!
//! - `analysis`: flags and statistics kept beside a run in the store, brought up to date when
//!   the run or the thresholds changed.
//! - `replay`: a recorded run as the parent of new runs (fork, edit and re-run): the model
//!   check and the child runs in its session.
//! - `resample`: N continuations from a point of a run and how often the final answer changed.
//! - `score`: a run's text scored under a local model (teacher forcing), stored as a child run.
//! - `remote`: recording one run from an OpenAI-compatible server into the store.
//!
//! Used by `cli` and `tui`; never imports them. Below it: `engine`, `remote`, `analysis`,
//! `store`, `record` and `trace`.

pub mod analysis;
pub mod remote;
pub mod replay;
pub mod resample;
pub mod score;
