//! Importing other tools' traces: an OpenAI chat-completion exchange or bare response
//! (`openai`), a captured `text/event-stream` (`sse`), dataset rows from JSONL or Parquet with
//! a field mapping (`dataset`), a plain or Markdown file with `<think>` (`text`). Each becomes
//! sessions and runs stored the way server runs are (text per step, `UNKNOWN_TOKEN` ids,
//! logprobs and alternatives where the file has them, `RunSource::File` naming the file, the
//! format and the model the file names), analysed on import.
//!
//! All or nothing, streamed: sessions are written as they are read through a
//! `store::import::Staged` import (ids listed as pending before each write), so a file of
//! any size is never held whole; a bad row N stops the import with `row N: …` and everything
//! already written is removed again (a crash part-way is undone at the next open).
//!
//! Reuses `remote::chunk::Assembler` for the logprobs, reasoning fields and inline `<think>`
//! of `openai` and `sse`, and `remote::sse::SseReader` for the event stream. Depends on
//! `remote`, `analysis`, `store`, `export::jsonl` (detection) and `trace`; never on the
//! front ends.

mod dataset;
mod input;
mod openai;
mod parquet_rows;
mod preview;
mod sse;
mod text;

use crate::analysis::{analyze, prompt_text, AnalysisConfig, StoredAnalysis};
use crate::store::import::{Imported, Staged};
use crate::store::Store;
use crate::trace::{
    LogprobKind, Message, ModelInfo, Phase, RemoteInfo, Run, RunId, RunRecord, RunSource,
    RunStatus, SamplerSpec, Session, SessionId, SessionRecord, Step, StopReason, Timings,
    UNKNOWN_TOKEN,
};

pub use dataset::{FieldMap, Where};
pub use input::{detect, Input};
pub use preview::{preview, Preview};

/// The formats `thinkdbg import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `thinkdbg export --format jsonl`.
    Thinkdbg,
    /// A chat-completion exchange `{"request","response"}` (one object, or one per line), or
    /// a bare response.
    Openai,
    /// A captured `text/event-stream` of a streamed chat completion.
    Sse,
    /// Rows of a JSONL or Parquet dataset, with a field mapping.
    Dataset,
    /// A plain or Markdown file with `<think>…</think>`.
    Text,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Thinkdbg => "thinkdbg",
            Format::Openai => "openai",
            Format::Sse => "sse",
            Format::Dataset => "dataset",
            Format::Text => "text",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("reading '{path}': {source}")]
    Io { path: String, source: std::io::Error },
    /// Something wrong in the file; `at` is `row 3`, `line 7`, … or empty.
    #[error("'{path}': {}{message}", at_prefix(.at))]
    Bad { path: String, at: String, message: String },
    /// Options that do not fit the file.
    #[error("{0}")]
    Usage(String),
}

pub type Result<T> = std::result::Result<T, Error>;

fn at_prefix(at: &str) -> String {
    if at.is_empty() {
        String::new()
    } else {
        format!("{at}: ")
    }
}

/// What the user told the import beyond the file.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The user message of `openai` bare responses, `sse` and `text` (the file has none).
    pub prompt: Option<String>,
    pub system: Option<String>,
    /// A label for every imported run (datasets label theirs from `FieldMap::label`).
    pub label: Option<String>,
    pub fields: FieldMap,
    /// At most this many rows (`dataset`) or exchanges (`openai`), after `wheres`.
    pub limit: Option<usize>,
    pub wheres: Vec<Where>,
}

/// How far an import has got, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes read (rows for Parquet) and the total, when known.
    pub done: u64,
    pub total: Option<u64>,
    /// Whether `done`/`total` count rows (Parquet) rather than bytes.
    pub rows: bool,
    pub sessions: usize,
}

/// What an import created.
#[derive(Debug, Clone)]
pub struct Summary {
    pub format: Format,
    pub imported: Imported,
    /// Rows read but left out by `--where`.
    pub skipped: usize,
}

/// One run as read from the file, before it becomes a `Run`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Built {
    pub messages: Vec<Message>,
    pub steps: Vec<Step>,
    /// The model the file names, where the reasoning came from, what it left out.
    pub info: RemoteInfo,
    pub sampler: Option<SamplerSpec>,
    pub stop: Option<StopReason>,
    pub label: Option<String>,
    /// `row 3 choice 1`, …
    pub place: String,
    pub endpoint: String,
    pub usage_prompt_tokens: u32,
    /// The output was cut short (a capture that ends mid-stream).
    pub cut: bool,
}

/// Turns what a reader built into stored sessions, analysing each run.
pub(crate) struct Sink<'s, 'a> {
    pub path: String,
    pub format: Format,
    staged: Staged<'a>,
    store: &'a Store,
    cfg: &'s AnalysisConfig,
    label: Option<String>,
}

impl Sink<'_, '_> {
    /// Stores one session made of `runs` (siblings: choices of one response, generations of
    /// one row), titled from the first run's user message.
    pub fn session(&mut self, runs: Vec<Built>) -> Result<()> {
        let Some(first) = runs.first() else { return Ok(()) };
        let title = title_of(&first.messages);
        let mut records = Vec::with_capacity(runs.len());
        let mut analyses = Vec::with_capacity(runs.len());
        for (i, mut b) in runs.into_iter().enumerate() {
            let steps = std::mem::take(&mut b.steps);
            let run = self.run_of(RunId(i as u64 + 1), b, steps.len());
            let a = analyze(&run, &prompt_text(&run), &steps, &[], self.cfg);
            analyses.push(StoredAnalysis {
                fingerprint: self.cfg.fingerprint(),
                steps: steps.len(),
                stats: a.stats,
            });
            records.push(RunRecord {
                run: Some(run),
                prompt_routing: Vec::new(),
                steps: steps.into_iter().map(|s| (s, None)).collect(),
                flags: a.flags,
                notes: Vec::new(),
            });
        }
        let session = Session {
            id: SessionId(0),
            title,
            created_at: crate::trace::now_ms(),
            tags: vec![format!("import:{}", self.format.as_str())],
            runs: records.iter().filter_map(|r| r.run.as_ref().map(|x| x.id)).collect(),
        };
        let (_, ids) = self.staged.add(SessionRecord { session, runs: records })?;
        for (id, a) in ids.into_iter().zip(analyses) {
            self.store.put_analysis(id, &a)?;
        }
        Ok(())
    }

    fn run_of(&self, id: RunId, b: Built, steps: usize) -> Run {
        let mut info = b.info;
        if b.sampler.is_none() {
            info.missing.push("sampler settings".into());
        }
        let generated = steps as u32;
        Run {
            id,
            session: SessionId(0),
            parent: None,
            label: b.label.or_else(|| self.label.clone()),
            model: ModelInfo { name: info.model.clone(), ..ModelInfo::default() },
            source: RunSource::File {
                path: self.path.clone(),
                format: self.format.as_str().into(),
                place: b.place,
                endpoint: b.endpoint,
                server: info,
            },
            messages: b.messages,
            rendered_prompt: String::new(),
            prompt_tokens: Vec::new(),
            sampler: b.sampler.unwrap_or(SamplerSpec {
                max_tokens: crate::trace::NO_TOKEN_CAP,
                ..SamplerSpec::default()
            }),
            logprob_kind: LogprobKind::Raw,
            status: if b.cut { RunStatus::Interrupted } else { RunStatus::Complete },
            stop: if b.cut { b.stop } else { Some(b.stop.unwrap_or(StopReason::Eos)) },
            timings: Timings {
                prompt_tokens: b.usage_prompt_tokens,
                generated_tokens: generated,
                ..Timings::default()
            },
            created_at: crate::trace::now_ms(),
        }
    }

    pub fn sessions(&self) -> usize {
        self.staged.sessions()
    }

    pub fn bad(&self, at: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Bad { path: self.path.clone(), at: at.into(), message: message.into() }
    }
}

/// A session's title: its last user message on one line, cut at 72 characters.
fn title_of(messages: &[Message]) -> String {
    let text = messages.iter().rev().find(|m| m.role == "user").map_or("", |m| &m.content);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut title: String = one_line.chars().take(72).collect();
    if one_line.chars().count() > 72 {
        title.push('…');
    }
    if title.is_empty() {
        "(imported, no prompt)".into()
    } else {
        title
    }
}

/// The messages of a file that has none: `--system`, then `--prompt`.
pub(crate) fn given_messages(opts: &Options) -> Vec<Message> {
    let mut m = Vec::new();
    if let Some(s) = &opts.system {
        m.push(Message::new("system", s.clone()));
    }
    if let Some(p) = &opts.prompt {
        m.push(Message::new("user", p.clone()));
    }
    m
}

/// Imports `input` (already opened, its format detected or given) into the store, all or
/// nothing. `progress` is called as the file is read.
pub fn import(
    store: &Store,
    mut input: Input,
    format: Format,
    opts: &Options,
    cfg: &AnalysisConfig,
    progress: &mut dyn FnMut(Progress),
) -> Result<Summary> {
    check_options(format, opts)?;
    if format == Format::Thinkdbg {
        let path = input.name.clone();
        // A pipe of anything else is given up at its first line, not read to its end.
        let first = input.head().split(|&b| b == b'\n').next().unwrap_or_default();
        if let Err(e) = crate::export::jsonl::parse_bytes(first) {
            return Err(Error::Bad { path, at: String::new(), message: e.to_string() });
        }
        let bytes = input.read_all()?;
        let records = crate::export::jsonl::parse_bytes(&bytes).map_err(|e| Error::Bad {
            path,
            at: String::new(),
            message: e.to_string(),
        })?;
        let imported = crate::store::import::import(store, records)?;
        return Ok(Summary { format, imported, skipped: 0 });
    }
    let staged = Staged::begin(store)?;
    let mut sink =
        Sink { path: input.name.clone(), format, staged, store, cfg, label: opts.label.clone() };
    let skipped = match format {
        Format::Openai => openai::read(&mut input, opts, &mut sink, progress)?,
        Format::Sse => sse::read(&mut input, opts, &mut sink, progress)?,
        Format::Text => text::read(&mut input, opts, &mut sink)?,
        Format::Dataset if input.is_parquet() => {
            parquet_rows::read(&mut input, opts, &mut sink, progress)?
        }
        Format::Dataset => dataset::read_jsonl(&mut input, opts, &mut sink, progress)?,
        Format::Thinkdbg => 0,
    };
    if sink.sessions() == 0 {
        let what = if skipped > 0 {
            format!("no row matches the filter ({skipped} rows read)")
        } else {
            "nothing to import (the file is empty)".into()
        };
        return Err(sink.bad("", what));
    }
    let imported = sink.staged.commit()?;
    Ok(Summary { format, imported, skipped })
}

/// Options that mean nothing for the format are refused rather than ignored.
fn check_options(format: Format, opts: &Options) -> Result<()> {
    let f = &opts.fields;
    let dataset_only = [
        ("--prompt-field", f.prompt.is_some()),
        ("--response-field", f.response.is_some()),
        ("--reasoning-field", f.reasoning.is_some()),
        ("--answer-field", f.answer.is_some()),
        ("--label-field", f.label.is_some()),
        ("--where", !opts.wheres.is_empty()),
    ];
    if format != Format::Dataset {
        if let Some((name, _)) = dataset_only.iter().find(|(_, set)| *set) {
            return Err(Error::Usage(format!(
                "'{name}' is for '--format dataset', not '{}'",
                format.as_str()
            )));
        }
    }
    if format == Format::Thinkdbg {
        let given = [
            ("--prompt", opts.prompt.is_some()),
            ("--system", opts.system.is_some()),
            ("--label", opts.label.is_some()),
            ("--limit", opts.limit.is_some()),
        ];
        if let Some((name, _)) = given.iter().find(|(_, set)| *set) {
            return Err(Error::Usage(format!(
                "'{name}' does not apply to a thinkdbg export (it carries its own prompts and labels)"
            )));
        }
    }
    if format == Format::Dataset && opts.prompt.is_some() {
        return Err(Error::Usage(
            "'--prompt' does not apply to a dataset: name the field with '--prompt-field'".into(),
        ));
    }
    Ok(())
}

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// Whether text opened `<think>` in the prompt: it closes thinking before opening it (R1's
/// template ends the prompt with `<think>\n`).
pub(crate) fn starts_in_think(text: &str) -> bool {
    match (text.find(OPEN), text.find(CLOSE)) {
        (Some(o), Some(c)) => c < o,
        (None, Some(_)) => true,
        _ => false,
    }
}

/// Steps of a text without logprobs: word-sized pieces (a word with the spaces before it, or
/// one other character), `<think>` and `</think>` each a piece of their own; the steps'
/// texts concatenate to exactly `reasoning` then `content`. Reasoning is thinking; content
/// is thinking up to its `</think>` when it opens one (or `think` says the prompt did).
pub(crate) fn text_steps(reasoning: &str, content: &str, think: bool, steps: &mut Vec<Step>) {
    for p in pieces(reasoning) {
        push_step(steps, p, Phase::Think);
    }
    let mut in_think = think;
    for p in pieces(content) {
        let phase = if p == OPEN {
            in_think = true;
            Phase::Think
        } else if p == CLOSE {
            in_think = false;
            Phase::Think
        } else if in_think {
            Phase::Think
        } else {
            Phase::Answer
        };
        push_step(steps, p, phase);
    }
}

fn push_step(steps: &mut Vec<Step>, text: &str, phase: Phase) {
    steps.push(Step {
        index: steps.len() as u32,
        token_id: UNKNOWN_TOKEN,
        text: text.to_string(),
        logprob: f32::NAN,
        entropy: f32::NAN,
        phase,
        t_us: 0,
        top: Vec::new(),
    });
}

/// Splits text into word-sized pieces (see `text_steps`); the pieces concatenate to `text`.
pub(crate) fn pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        // Whitespace sticks to what follows it; whitespace at the end is a piece of its own.
        let j = i + (rest.len() - rest.trim_start().len());
        if j >= text.len() {
            out.push(rest);
            break;
        }
        let body = &text[j..];
        let len = match [OPEN, CLOSE].into_iter().find(|t| body.starts_with(t)) {
            Some(tag) => {
                // A tag is a piece of its own, without the whitespace before it.
                if j > i {
                    out.push(&text[i..j]);
                    i = j;
                }
                tag.len()
            }
            None => word_len(body),
        };
        out.push(&text[i..j + len]);
        i = j + len;
    }
    out
}

/// Bytes of the word at the start of `body` (at most 24 letters or digits), or of its first
/// character when that is punctuation or CJK (one piece per character, as tokenizers do).
fn word_len(body: &str) -> usize {
    let word = |c: char| c.is_alphanumeric() && !is_cjk(c);
    let mut n = 0;
    for (k, c) in body.chars().enumerate() {
        if k > 0 && (!word(c) || k >= 24) {
            break;
        }
        n += c.len_utf8();
        if !word(c) {
            break;
        }
    }
    n
}

fn is_cjk(c: char) -> bool {
    matches!(u32::from(c), 0x3040..=0x30ff | 0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xac00..=0xd7af | 0xf900..=0xfaff | 0x20000..=0x2fa1f)
}

#[cfg(test)]
mod tests;
