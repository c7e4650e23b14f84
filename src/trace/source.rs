//! Where a run came from: the embedded engine, a server, an imported file, or a local model
//! scoring another run's text.

use serde::{Deserialize, Serialize};

/// Where a run came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunSource {
    Embedded,
    /// Recorded from an OpenAI-compatible server; `endpoint` carries no credentials.
    Remote {
        endpoint: String,
        #[serde(default)]
        server: RemoteInfo,
    },
    Imported,
    /// Imported by `thinkdbg import` from another tool's file (an OpenAI exchange, a captured
    /// stream, a dataset row, a text file). Last, so that older stores decode as before.
    File {
        /// The file's name as given (`-` for standard input).
        path: String,
        /// `openai`, `sse`, `dataset` (JSONL or Parquet), `text`.
        format: String,
        /// Where in the file: `row 3`, `row 3 choice 1`, or empty.
        #[serde(default)]
        place: String,
        /// The endpoint the file names (a proxy log's URL, without credentials), or empty.
        #[serde(default)]
        endpoint: String,
        /// The model the file names, where the reasoning came from, what the file left out.
        #[serde(default)]
        server: RemoteInfo,
    },
    Scored(crate::record::Scored), // a local model's view of the parent's text: `thinkdbg score`
}

impl RunSource {
    /// One short word for lists: `embedded`, `remote`, `imported`, or the imported format.
    pub fn short(&self) -> &str {
        match self {
            RunSource::Embedded => "embedded",
            RunSource::Remote { .. } => "remote",
            RunSource::Imported => "imported",
            RunSource::File { format, .. } => format,
            RunSource::Scored(_) => "scored",
        }
    }
}

/// Provenance of a run recorded from a server: what it said it was and what it left out.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RemoteInfo {
    /// The model id the server reported (the requested name when it reported none).
    pub model: String,
    /// Where reasoning text came from: `reasoning_content`, `reasoning`, `inline <think>`, or
    /// empty when none was seen.
    pub reasoning_from: String,
    /// The routed-experts format found (e.g. `sglang base64 int32`, `vllm npy u8`), or empty.
    pub routing_format: String,
    /// Fields the server did not supply, e.g. `token ids`, `entropy`, `logprobs on 3 steps`.
    pub missing: Vec<String>,
    /// Known server bugs met and how they were handled.
    pub notes: Vec<String>,
}
