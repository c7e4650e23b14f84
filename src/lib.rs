//! thinkdbg: a terminal debugger for reasoning language models.
//!
//! The architecture in ten lines:
//! - `trace` is the shared vocabulary (sessions, runs, steps, routing, flags); it depends on nothing.
//! - `engine` runs GGUF models on candle, token by token, and hands every `Step` to a `Recorder`
//!   on its own worker thread; it never touches the store or the terminal.
//! - `sanitize` turns untrusted model text into something safe to print.
//! - `cli` parses arguments into validated settings and drives the other modules; only it (and
//!   `main`) use `anyhow`.
//! - `store` keeps sessions, runs and steps in sled behind a `Store` type, with a writer thread
//!   that implements the engine's `Recorder`, crash recovery and JSONL import.
//! - `export` writes recorded sessions out (JSONL now).
//! - `analysed` keeps analysis results beside a run in the store (CLI and TUI).
//! - `replay` and `resample` re-run a recorded run's prefix (fork, resample) for the CLI and the TUI.
//! - `tui` is the terminal UI (ratatui): sessions, the trace, inspector, timeline, flags and
//!   routing, reading the store; keymap and themes are data files.
//! - Still to come, per DESIGN.md: `remote` (OpenAI-compatible servers), `analysis` and
//!   `compare`, all reading and writing `trace` types.

pub mod analysed;
pub mod analysis;
pub mod cli;
pub mod compare;
pub mod engine;
pub mod export;
pub mod remote;
pub mod remote_record;
pub mod replay;
pub mod resample;
pub mod sanitize;
pub mod store;
pub mod trace;
pub mod tui;
