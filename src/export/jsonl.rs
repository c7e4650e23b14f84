//! The JSONL interchange format: one JSON object per line, each with a `"type"`:
//! `header` (format name and version) first, then per session a `session` line followed by
//! its runs, each a `run` line, its `prompt_routing` lines (MoE runs: how each prompt token
//! was routed, by position) and its `step`, `flag` and `note` lines. A `step` line has the
//! same fields as `thinkdbg run --jsonl` plus `run` (and `routing` for MoE runs). Lossless:
//! importing an export and exporting again gives the same bytes apart from ids.

use serde::{Deserialize, Serialize};

use crate::sanitize::json_line;
use crate::trace::{Flag, LayerRoute, Note, Routing, Run, RunId, Session, SessionId, Step};

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

/// Everything recorded about one run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunRecord {
    pub run: Option<Run>,
    /// How each prompt token was routed (MoE runs that recorded it), in prompt order.
    pub prompt_routing: Vec<Routing>,
    pub steps: Vec<(Step, Option<Routing>)>,
    pub flags: Vec<Flag>,
    pub notes: Vec<Note>,
}

/// A session with its runs, in the order they are written.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub session: Session,
    pub runs: Vec<RunRecord>,
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
