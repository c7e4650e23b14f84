//! thinkdbg: a terminal debugger for reasoning language models.
//!
//! The architecture in ten lines:
//! - `trace` is the shared vocabulary (sessions, runs, steps, routing, flags); it depends on nothing.
//! - `engine` runs GGUF models on candle, token by token, and hands every `Step` to a `Recorder`
//!   on its own worker thread; it never touches the store or the terminal.
//! - `sanitize` turns untrusted model text into something safe to print.
//! - `cli` parses arguments into validated settings and drives the other modules; only it (and
//!   `main`) use `anyhow`.
//! - Still to come, per DESIGN.md: `store` (sled), `remote` (OpenAI-compatible servers),
//!   `analysis`, `compare`, `export` and `tui`, all reading and writing `trace` types.

pub mod cli;
pub mod engine;
pub mod sanitize;
pub mod trace;
