//! The embedded inference engine: GGUF loading, tokenizer, chat template, forward passes on
//! candle's quantized matmuls, sampling, and a worker thread that hands every generated `Step`
//! to a `Recorder`.
//!
//! It depends only on `trace`; it must never import `store`, `tui` or `cli`.

pub mod error;
pub mod gguf;

pub use error::{Error, Result};
