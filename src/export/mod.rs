//! Exports of recorded sessions: JSONL (lossless, re-importable), Markdown and a
//! self-contained HTML page (both for people, with flags and notes marked). Reads `trace`
//! values only; never touches sled or the terminal.

pub mod annotate;
pub mod html;
pub mod jsonl;
pub mod markdown;
