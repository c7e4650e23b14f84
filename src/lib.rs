//! thinkdbg: a terminal debugger for reasoning language models.
//!
//! The architecture in ten lines (layers bottom up; a module imports only from layers below):
//! 1. `trace` is the vocabulary (sessions, runs, steps, routing, flags, the interchange
//!    records); `record` is the recording vocabulary (one `Event` for every producer, the
//!    `Recorder` trait, one `Tee`); `sanitize` makes untrusted text safe to print.
//! 2. Producers and pure functions: `engine` (GGUF models on candle, a worker thread),
//!    `remote` (OpenAI-compatible servers), `analysis`, `compare` (→ `analysis`), `export`
//!    (JSONL written and parsed, Markdown, HTML). None imports another but `compare`.
//! 3. `store`: sled behind `Store`, the writer thread (a `Recorder`), recovery, import, and
//!    its JSONL backups (written with `export::jsonl`) with check and salvage.
//! 4. `runs`: services both front ends use (analysis kept in the store, replay, resample,
//!    remote recording); never imports `cli` or `tui`.
//! 5. Front ends: `cli` (arguments and printing; only it and `main` use `anyhow`) and `tui`
//!    (components with their own state, `update` and `draw`; `App` routes actions).

pub mod analysis;
pub mod cli;
pub mod compare;
pub mod engine;
pub mod export;
pub mod record;
pub mod remote;
pub mod runs;
pub mod sanitize;
pub mod store;
pub mod trace;
pub mod tui;
