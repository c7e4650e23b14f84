//! What the human-readable exports share: the numbering of a run's flags and notes, which of
//! them start or end at each step, and short descriptions of the model and sampler. Pure
//! functions over `trace` values.

use crate::trace::{Flag, Note, Run, RunSource};

/// A flag or a note, numbered in the order the exports list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Index into the run's flags; shown as `⚑N` with `N = index + 1`.
    Flag(usize),
    /// Index into the run's notes; shown as `✎N`.
    Note(usize),
}

/// For each step, the marks that start there (in list order) and those that end just after it.
#[derive(Debug, Default)]
pub struct Marks {
    pub starts: Vec<Vec<Mark>>,
    pub ends: Vec<Vec<Mark>>,
}

impl Marks {
    /// Marks for a run of `steps` steps. Spans are clamped to the steps that exist, so a flag
    /// recorded past the end (or an empty span) still shows, at the last step.
    pub fn new(steps: usize, flags: &[Flag], notes: &[Note]) -> Self {
        let mut m = Marks { starts: vec![Vec::new(); steps], ends: vec![Vec::new(); steps] };
        if steps == 0 {
            return m;
        }
        let spans = flags
            .iter()
            .enumerate()
            .map(|(i, f)| (Mark::Flag(i), f.start, f.end))
            .chain(notes.iter().enumerate().map(|(i, n)| (Mark::Note(i), n.start, n.end)));
        for (mark, start, end) in spans {
            let last = steps - 1;
            let s = (start as usize).min(last);
            let e = (end as usize).saturating_sub(1).clamp(s, last);
            m.starts[s].push(mark);
            m.ends[e].push(mark);
        }
        m
    }

    /// True when step `i` lies inside a flag (for highlighting).
    pub fn covering(flags: &[Flag], i: u32) -> Option<&Flag> {
        flags.iter().find(|f| f.start <= i && i < f.end.max(f.start + 1))
    }
}

/// `a–b` for a half-open step span, or `a` for a single step.
pub fn span_text(start: u32, end: u32) -> String {
    if end <= start + 1 {
        format!("{start}")
    } else {
        format!("{start}–{}", end - 1)
    }
}

/// The run's settings as (name, value) rows: model, provenance, sampler, outcome.
pub fn settings_rows(run: &Run) -> Vec<(&'static str, String)> {
    let m = &run.model;
    let s = &run.sampler;
    let mut rows = vec![
        ("model", m.name.clone()),
        ("architecture", m.arch.clone()),
        ("quantization", m.quant.clone()),
        ("fingerprint", m.fingerprint.chars().take(16).collect()),
    ];
    if m.experts > 0 {
        rows.push(("experts", format!("{} routed, {} per token", m.experts, m.experts_per_token)));
    }
    rows.push((
        "source",
        match &run.source {
            RunSource::Embedded => "embedded engine".into(),
            RunSource::Remote { endpoint, server } => {
                format!("remote {endpoint} (server model {})", server.model)
            }
            RunSource::Imported => "imported".into(),
            RunSource::File { path, format, place, endpoint, .. } => {
                let mut s = format!("imported {format} file {path}");
                if !place.is_empty() {
                    s.push_str(&format!(" ({place})"));
                }
                if !endpoint.is_empty() {
                    s.push_str(&format!(", recorded from {endpoint}"));
                }
                s
            }
            RunSource::Scored(s) => format!("scored ({})", s.tokens.as_str()),
        },
    ));
    if let RunSource::File { server, .. } = &run.source {
        if !server.model.is_empty() {
            rows.push(("model named in the file", server.model.clone()));
        }
        if !server.missing.is_empty() {
            rows.push(("not in the file", server.missing.join(", ")));
        }
        if !server.notes.is_empty() {
            rows.push(("import notes", server.notes.join("; ")));
        }
    }
    if let RunSource::Remote { server, .. } = &run.source {
        if !server.missing.is_empty() {
            rows.push(("not supplied by the server", server.missing.join(", ")));
        }
        if !server.notes.is_empty() {
            rows.push(("server notes", server.notes.join("; ")));
        }
    }
    if let Some((parent, step)) = run.parent {
        rows.push(("parent", format!("{parent} at step {step}")));
    }
    rows.extend([
        ("temperature", format!("{}", s.temperature)),
        ("top-k / top-p / min-p", format!("{} / {} / {}", s.top_k, s.top_p, s.min_p)),
        ("repeat penalty", format!("{} over {}", s.repeat_penalty, s.repeat_last_n)),
        ("seed", s.seed.to_string()),
        ("max tokens", s.max_tokens_text()),
        ("logprobs", format!("{:?}", run.logprob_kind).to_lowercase()),
        ("status", format!("{:?}", run.status).to_lowercase()),
        ("stop", run.stop.map(|s| s.as_str().to_string()).unwrap_or_else(|| "-".into())),
    ]);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{FlagKind, Origin, Severity};

    fn flag(start: u32, end: u32) -> Flag {
        Flag {
            start,
            end,
            kind: FlagKind::Repetition,
            severity: Severity::Warn,
            detail: String::new(),
            origin: Origin::Auto,
        }
    }

    #[test]
    fn marks_start_and_end_on_the_right_steps_and_clamp_to_the_run() {
        let notes = [Note { start: 1, end: 1, text: "empty span".into() }];
        let m = Marks::new(4, &[flag(1, 3), flag(2, 99)], &notes);
        assert_eq!(m.starts[1], vec![Mark::Flag(0), Mark::Note(0)]);
        assert_eq!(m.ends[2], vec![Mark::Flag(0)]);
        assert_eq!(m.starts[2], vec![Mark::Flag(1)]);
        assert_eq!(m.ends[3], vec![Mark::Flag(1)]);
        assert_eq!(m.ends[1], vec![Mark::Note(0)]);
        assert!(Marks::new(0, &[flag(0, 1)], &[]).starts.is_empty());
    }

    #[test]
    fn spans_read_as_inclusive_ranges() {
        assert_eq!(span_text(3, 4), "3");
        assert_eq!(span_text(3, 7), "3–6");
    }
}
