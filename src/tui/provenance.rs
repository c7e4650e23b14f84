//! Where a run came from, for the run header and the inspector: for a run recorded from a
//! server, the endpoint (stored without credentials), the model id the server reported, what
//! its logprobs are, where the reasoning text came from, the routed-experts format, what the
//! server did not supply and the server bugs met. Every value passes through `tui::text`.
//! Depends on `trace` and `tui::text` only.

use crate::trace::{LogprobKind, Run, RunSource};
use crate::tui::text::shown;

pub fn kind_label(k: LogprobKind) -> &'static str {
    match k {
        LogprobKind::Raw => "raw (before sampling)",
        LogprobKind::PostSampling => "post-sampling",
    }
}

/// `(key, value)` rows describing the run's source; empty for an embedded run.
pub fn rows(run: &Run) -> Vec<(&'static str, String)> {
    let clean = |s: &str| shown(s).into_owned();
    match &run.source {
        RunSource::Embedded => Vec::new(),
        RunSource::Imported => vec![("source", "imported".into())],
        RunSource::File { path, format, place, endpoint, server } => {
            let mut v = vec![("source", format!("imported {} file", clean(format)))];
            v.push((
                "file",
                clean(&if place.is_empty() { path.clone() } else { format!("{path} ({place})") }),
            ));
            if !endpoint.is_empty() {
                v.push(("endpoint", clean(endpoint)));
            }
            if !server.model.is_empty() {
                v.push(("model", format!("{} (named in the file)", clean(&server.model))));
            }
            if !server.missing.iter().any(|m| m.starts_with("logprobs (the file has none")) {
                v.push(("logprobs", kind_label(run.logprob_kind).to_string()));
            }
            if !server.missing.is_empty() {
                v.push(("missing", clean(&server.missing.join(", "))));
            }
            if !server.reasoning_from.is_empty() {
                v.push(("thinking", format!("from {}", clean(&server.reasoning_from))));
            }
            for n in &server.notes {
                v.push(("note", clean(n)));
            }
            v
        }
        RunSource::Scored(s) => vec![
            ("source", format!("scored by {}", clean(&run.model.name))),
            ("tokens", s.tokens.as_str().to_string()),
        ],
        RunSource::Remote { endpoint, server } => {
            let mut v = vec![
                ("endpoint", clean(endpoint)),
                ("server", clean(&server.model)),
                ("logprobs", kind_label(run.logprob_kind).to_string()),
            ];
            if !server.missing.is_empty() {
                v.push(("missing", clean(&server.missing.join(", "))));
            }
            if !server.reasoning_from.is_empty() {
                v.push(("thinking", format!("from {}", clean(&server.reasoning_from))));
            }
            if !server.routing_format.is_empty() {
                v.push((
                    "routing",
                    format!("{} · expert ids only, weights unknown", clean(&server.routing_format)),
                ));
            }
            for n in &server.notes {
                v.push(("note", clean(n)));
            }
            v
        }
    }
}

/// Whether the run came from a server.
pub fn is_remote(run: &Run) -> bool {
    matches!(run.source, RunSource::Remote { .. })
}
