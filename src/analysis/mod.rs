//! Analysis of recorded runs: segmentation (think/answer, words, sentences, reasoning steps),
//! automatic flags and run statistics. Pure functions over `trace` types; must not depend on
//! `store`, `tui` or `engine`.

pub mod segment;
pub mod text;

pub use segment::{segment, ReasoningStep, Segments};
