//! Exports of recorded sessions: JSONL (lossless, re-importable), Markdown and a
//! self-contained HTML page (both for people, with flags and notes marked). Reads `trace`
//! values; parses JSONL back (`jsonl::parse`); never touches sled, the engine or the terminal.

pub mod annotate;
pub mod html;
pub mod jsonl;
pub mod markdown;

/// The formats an export is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Lossless, re-importable.
    Jsonl,
    Markdown,
    Html,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Markdown, Kind::Html, Kind::Jsonl];

    pub fn extension(self) -> &'static str {
        match self {
            Kind::Jsonl => "jsonl",
            Kind::Markdown => "md",
            Kind::Html => "html",
        }
    }
}

/// A session in the chosen format; `stats[i]` holds the statistics rows of run `i`
/// (Markdown and HTML only; fewer entries mean no table).
pub fn render(
    record: &crate::trace::SessionRecord,
    kind: Kind,
    stats: &[Vec<(String, String)>],
) -> serde_json::Result<String> {
    Ok(match kind {
        Kind::Jsonl => {
            let mut text = jsonl::header()?;
            text.push('\n');
            for line in jsonl::session_lines(record)? {
                text.push_str(&line);
                text.push('\n');
            }
            text
        }
        Kind::Markdown => markdown::render(record, stats),
        Kind::Html => html::render(record, stats),
    })
}
