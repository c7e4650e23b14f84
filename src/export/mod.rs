//! Exports of recorded sessions: JSONL (lossless, re-importable). Markdown and HTML come with
//! the export issue. Reads `trace` values only; never touches sled or the terminal.

pub mod jsonl;
