//! The JSONL interchange format: one JSON object per line, each with a `"type"`:
//! `header` (format name and version) first, then per session a `session` line followed by
//! its runs, each a `run` line, its `prompt_routing` lines (MoE runs: how each prompt token
//! was routed, by position) and its `step`, `flag` and `note` lines. A `step` line has the
//! same fields as `thinkdbg run --jsonl` plus `run` (and `routing` for MoE runs). Lossless:
//! importing an export and exporting again gives the same bytes apart from ids. `parse` reads
//! a file back into `trace::SessionRecord`s, checking every line; `store::import` writes them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::sanitize::json_line;
use crate::trace::{
    Flag, LayerRoute, Note, Routing, Run, RunId, RunRecord, Session, SessionId, SessionRecord,
    Step, MAX_ALTERNATIVES,
};

/// Name and version written in the header line.
pub const FORMAT: &str = "thinkdbg-jsonl";
pub const FORMAT_VERSION: u32 = 1;

/// A session line: the session without its run list (the run lines that follow say that).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionLine {
    pub id: SessionId,
    pub title: String,
    pub created_at: u64,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLine {
    pub run: RunId,
    #[serde(flatten)]
    pub step: Step,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<Vec<LayerRoute>>,
}

/// How the prompt token at `position` was routed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptRoutingLine {
    pub run: RunId,
    pub position: u32,
    pub routing: Vec<LayerRoute>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlagLine {
    pub run: RunId,
    #[serde(flatten)]
    pub flag: Flag,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoteLine {
    pub run: RunId,
    #[serde(flatten)]
    pub note: Note,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
}

/// One line of the format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    Header(Header),
    Session(SessionLine),
    Run(Box<Run>),
    PromptRouting(Box<PromptRoutingLine>),
    Step(Box<StepLine>),
    Flag(FlagLine),
    Note(NoteLine),
}

/// Writes the header line.
pub fn header() -> serde_json::Result<String> {
    json_line(&Line::Header(Header { format: FORMAT.into(), version: FORMAT_VERSION }))
}

/// The lines of one session and its runs (no header).
pub fn session_lines(rec: &SessionRecord) -> serde_json::Result<Vec<String>> {
    let s = &rec.session;
    let mut out = vec![json_line(&Line::Session(SessionLine {
        id: s.id,
        title: s.title.clone(),
        created_at: s.created_at,
        tags: s.tags.clone(),
    }))?];
    for r in &rec.runs {
        let Some(run) = &r.run else { continue };
        out.push(json_line(&Line::Run(Box::new(run.clone())))?);
        for (position, routing) in r.prompt_routing.iter().enumerate() {
            out.push(json_line(&Line::PromptRouting(Box::new(PromptRoutingLine {
                run: run.id,
                position: position as u32,
                routing: routing.layers.clone(),
            })))?);
        }
        for (step, routing) in &r.steps {
            out.push(json_line(&Line::Step(Box::new(StepLine {
                run: run.id,
                step: step.clone(),
                routing: routing.as_ref().map(|r| r.layers.clone()),
            })))?);
        }
        for flag in &r.flags {
            out.push(json_line(&Line::Flag(FlagLine { run: run.id, flag: flag.clone() }))?);
        }
        for note in &r.notes {
            out.push(json_line(&Line::Note(NoteLine { run: run.id, note: note.clone() }))?);
        }
    }
    Ok(out)
}

/// A line of a JSONL file that cannot be imported, and why (line 0: the whole file).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            0 => f.write_str(&self.message),
            n => write!(f, "line {n}: {}", self.message),
        }
    }
}

/// Parses a JSONL export into sessions, checking references and order.
pub fn parse(text: &str) -> Result<Vec<SessionRecord>, ParseError> {
    let bad = |line: usize, message: String| ParseError { line, message };
    let mut sessions: Vec<SessionRecord> = Vec::new();
    let mut run_index: HashMap<RunId, (usize, usize)> = HashMap::new();
    let mut saw_header = false;
    // (line, session, run, span end, what) of every flag and note, checked against the run's
    // steps once all are read; (line, session, run) of every run, for its parent.
    let mut spans: Vec<(usize, usize, usize, u32, &str)> = Vec::new();
    let mut run_lines: Vec<(usize, usize, usize)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(raw)
            .map_err(|e| bad(n, format!("not a valid thinkdbg JSONL line: {e}")))?;
        if !saw_header {
            match &line {
                Line::Header(h) if h.format == FORMAT && h.version <= FORMAT_VERSION => {
                    saw_header = true;
                    continue;
                }
                Line::Header(h) => {
                    return Err(bad(n, format!("format '{}' version {} is not one this thinkdbg reads ({FORMAT} up to {FORMAT_VERSION})", h.format, h.version)))
                }
                _ => return Err(bad(n, "the first line must be the 'header' line".into())),
            }
        }
        match line {
            Line::Header(_) => return Err(bad(n, "a second 'header' line".into())),
            Line::Session(s) => {
                if sessions.iter().any(|x| x.session.id == s.id) {
                    return Err(bad(n, format!("session '{}' appears twice", s.id)));
                }
                sessions.push(SessionRecord {
                    session: Session {
                        id: s.id,
                        title: s.title,
                        created_at: s.created_at,
                        tags: s.tags,
                        runs: Vec::new(),
                    },
                    runs: Vec::new(),
                });
            }
            Line::Run(run) => {
                let si = sessions
                    .iter()
                    .position(|x| x.session.id == run.session)
                    .ok_or_else(|| bad(n, format!("run '{}' belongs to session '{}', which has no 'session' line before it", run.id, run.session)))?;
                if run_index.contains_key(&run.id) {
                    return Err(bad(n, format!("run '{}' appears twice", run.id)));
                }
                if run.parent.is_some_and(|(p, _)| p == run.id) {
                    return Err(bad(n, format!("run '{}' is its own parent", run.id)));
                }
                run_lines.push((n, si, sessions[si].runs.len()));
                run_index.insert(run.id, (si, sessions[si].runs.len()));
                sessions[si].session.runs.push(run.id);
                sessions[si].runs.push(RunRecord { run: Some(*run), ..RunRecord::default() });
            }
            Line::PromptRouting(p) => {
                let &(si, ri) = run_index.get(&p.run).ok_or_else(|| {
                    bad(
                        n,
                        format!(
                            "prompt routing of run '{}', which has no 'run' line before it",
                            p.run
                        ),
                    )
                })?;
                let rec = &mut sessions[si].runs[ri];
                let want = rec.prompt_routing.len() as u32;
                if p.position != want {
                    return Err(bad(
                        n,
                        format!(
                            "prompt routing position {} of run '{}' where {want} was expected",
                            p.position, p.run
                        ),
                    ));
                }
                check_routing(&p.routing).map_err(|m| {
                    bad(n, format!("prompt position {} of run '{}': {m}", p.position, p.run))
                })?;
                rec.prompt_routing.push(Routing { layers: p.routing });
            }
            Line::Step(s) => {
                let &(si, ri) = run_index.get(&s.run).ok_or_else(|| {
                    bad(n, format!("step of run '{}', which has no 'run' line before it", s.run))
                })?;
                let rec = &mut sessions[si].runs[ri];
                let want = rec.steps.len() as u32;
                if s.step.index != want {
                    return Err(bad(
                        n,
                        format!(
                            "step index {} of run '{}' where {want} was expected",
                            s.step.index, s.run
                        ),
                    ));
                }
                check_step(&s.step)
                    .and_then(|()| s.routing.as_deref().map_or(Ok(()), check_routing))
                    .map_err(|m| {
                        bad(n, format!("step {} of run '{}': {m}", s.step.index, s.run))
                    })?;
                rec.steps.push((s.step, s.routing.map(|layers| Routing { layers })));
            }
            Line::Flag(f) => {
                let &(si, ri) = run_index.get(&f.run).ok_or_else(|| {
                    bad(n, format!("flag of run '{}', which has no 'run' line before it", f.run))
                })?;
                if f.flag.start > f.flag.end {
                    return Err(bad(
                        n,
                        format!("flag span {}..{} is reversed", f.flag.start, f.flag.end),
                    ));
                }
                spans.push((n, si, ri, f.flag.end, "flag"));
                sessions[si].runs[ri].flags.push(f.flag);
            }
            Line::Note(x) => {
                let &(si, ri) = run_index.get(&x.run).ok_or_else(|| {
                    bad(n, format!("note of run '{}', which has no 'run' line before it", x.run))
                })?;
                if x.note.start > x.note.end {
                    return Err(bad(
                        n,
                        format!("note span {}..{} is reversed", x.note.start, x.note.end),
                    ));
                }
                spans.push((n, si, ri, x.note.end, "note"));
                sessions[si].runs[ri].notes.push(x.note);
            }
        }
    }
    if !saw_header {
        return Err(bad(
            1,
            "the file is empty; a thinkdbg JSONL export starts with a 'header' line".into(),
        ));
    }
    for (n, si, ri, end, what) in spans {
        let steps = sessions[si].runs[ri].steps.len();
        if end as usize > steps {
            return Err(bad(
                n,
                format!("{what} span ends at step {end}, past the run's {steps} steps"),
            ));
        }
    }
    // A parent outside the file would point at an unrelated run once imported: it is dropped.
    for &(_, si, ri) in &run_lines {
        if let Some(run) = sessions[si].runs[ri].run.as_mut() {
            if run.parent.is_some_and(|(p, _)| !run_index.contains_key(&p)) {
                run.parent = None;
            }
        }
    }
    check_parents(&sessions, &run_index, &run_lines)?;
    Ok(sessions)
}

/// A fork point inside its parent's steps, and no run its own ancestor.
fn check_parents(
    sessions: &[SessionRecord],
    run_index: &HashMap<RunId, (usize, usize)>,
    run_lines: &[(usize, usize, usize)],
) -> Result<(), ParseError> {
    let parent_of = |id: RunId| {
        let &(si, ri) = run_index.get(&id)?;
        sessions[si].runs[ri].run.as_ref()?.parent
    };
    for &(n, si, ri) in run_lines {
        let Some(run) = sessions[si].runs[ri].run.as_ref() else { continue };
        let Some((p, at)) = run.parent else { continue };
        if let Some(&(psi, pri)) = run_index.get(&p) {
            let steps = sessions[psi].runs[pri].steps.len();
            if at as usize > steps {
                let message = format!(
                    "run '{}' forks from step {at} of run '{p}', which has {steps} steps",
                    run.id
                );
                return Err(ParseError { line: n, message });
            }
        }
        // Walk up at most as many links as there are runs: more means a cycle.
        let mut at_run = p;
        for _ in 0..=run_index.len() {
            if at_run == run.id {
                let message = format!("run '{}' is its own ancestor (a cycle of parents)", run.id);
                return Err(ParseError { line: n, message });
            }
            match parent_of(at_run) {
                Some((next, _)) => at_run = next,
                None => break,
            }
        }
    }
    Ok(())
}

/// MoE routing as a model produces it: each expert once per layer, a weight per expert, and
/// expert ids inside the router's distribution when there is one.
fn check_routing(layers: &[LayerRoute]) -> Result<(), String> {
    for l in layers {
        let mut seen = l.experts.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != l.experts.len() {
            return Err(format!("layer {} routes to an expert twice", l.layer));
        }
        if let Some(w) = &l.weights {
            if w.len() != l.experts.len() {
                return Err(format!(
                    "layer {}: {} weights for {} experts",
                    l.layer,
                    w.len(),
                    l.experts.len()
                ));
            }
            if w.iter().any(|x| !x.is_finite() || *x < 0.0) {
                return Err(format!(
                    "layer {}: a gate weight that is not a finite number ≥ 0",
                    l.layer
                ));
            }
        }
        if let Some(r) = &l.router {
            if let Some(e) = l.experts.iter().find(|&&e| e as usize >= r.len()) {
                return Err(format!(
                    "layer {}: expert {e} is outside the router's {} experts",
                    l.layer,
                    r.len()
                ));
            }
        }
    }
    Ok(())
}

/// The most a gzipped file may expand to (a file that expands further is refused rather than
/// allowed to fill memory).
pub const MAX_GUNZIPPED: u64 = 1 << 30;

/// `parse` over bytes: a line that is not UTF-8 is named like any other bad line. Gzipped
/// bytes (the store's backups) are decompressed first.
pub fn parse_bytes(bytes: &[u8]) -> Result<Vec<SessionRecord>, ParseError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read;
        let mut text = Vec::new();
        let mut gz = flate2::read::GzDecoder::new(bytes).take(MAX_GUNZIPPED + 1);
        let bad = |message: String| ParseError { line: 0, message };
        gz.read_to_end(&mut text).map_err(|e| bad(format!("not a valid gzip file: {e}")))?;
        if text.len() as u64 > MAX_GUNZIPPED {
            return Err(bad(format!(
                "expands to over {} MiB; decompress it first",
                MAX_GUNZIPPED >> 20
            )));
        }
        return parse_utf8(&text);
    }
    parse_utf8(bytes)
}

fn parse_utf8(bytes: &[u8]) -> Result<Vec<SessionRecord>, ParseError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text),
        Err(e) => {
            let at = e.valid_up_to();
            let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            let col = at - bytes[..at].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            Err(ParseError {
                line,
                message: format!("not valid UTF-8 (byte {} of the line)", col + 1),
            })
        }
    }
}

/// A step's numbers must be ones a model can produce (`null`, read as NaN, is an unknown
/// value: a server that sent no logprob).
fn check_step(step: &Step) -> Result<(), String> {
    const SLACK: f32 = crate::trace::LOGPROB_SLACK;
    if step.logprob > SLACK {
        return Err(format!("logprob {} is above 0 (a probability over 1)", step.logprob));
    }
    if step.entropy < -SLACK {
        return Err(format!("entropy {} is negative", step.entropy));
    }
    if step.top.len() > MAX_ALTERNATIVES {
        return Err(format!(
            "{} alternatives; at most {MAX_ALTERNATIVES} are kept",
            step.top.len()
        ));
    }
    if let Some(t) = step.top.iter().find(|t| t.logprob > SLACK) {
        return Err(format!("alternative logprob {} is above 0", t.logprob));
    }
    Ok(())
}
