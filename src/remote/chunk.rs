//! Turns streamed chat-completion chunks into `Step`s: text, logprob, top-k alternatives and
//! phase, with the known server bugs handled rather than crashed on. Depends only on `trace`.
//!
//! - Reasoning text comes from `delta.reasoning_content` or `delta.reasoning`; a server without
//!   a reasoning parser sends `<think>…</think>` inline in `content`, split here.
//! - With logprobs, every `logprobs.content` entry is one step (one token). Without them (a
//!   server that sends none, or reasoning chunks with `logprobs: null`, SGLang #26778) every
//!   chunk's text is one step with a NaN logprob, and the run says how many.
//! - Logprobs that include tokens the streamed text does not (reasoning tokens in `logprobs`
//!   while `content` has none, SGLang #25055): when no reasoning text was streamed they become
//!   thinking steps, otherwise they are dropped (their text is already recorded); counted.
//! - Token ids: OpenAI-compatible chat endpoints return token strings only, so every step and
//!   alternative has `trace::UNKNOWN_TOKEN`; entropy is NaN (only the top-k is known).

use serde::Deserialize;
use serde_json::Value;

use super::error::{quote, Error, Result};
use crate::trace::{Phase, RemoteInfo, Step, TopToken, MAX_ALTERNATIVES, UNKNOWN_TOKEN};

#[derive(Debug, Default, Deserialize)]
struct Chunk {
    model: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Debug, Default, Deserialize)]
struct Choice {
    delta: Option<Delta>,
    logprobs: Option<Logprobs>,
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Delta {
    content: Option<String>,
    reasoning_content: Option<String>,
    reasoning: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Logprobs {
    content: Option<Vec<Entry>>,
}

#[derive(Debug, Default, Deserialize)]
struct Entry {
    #[serde(default)]
    token: String,
    logprob: Option<f64>,
    bytes: Option<Vec<u8>>,
    top_logprobs: Option<Vec<Top>>,
}

#[derive(Debug, Default, Deserialize)]
struct Top {
    #[serde(default)]
    token: String,
    logprob: Option<f64>,
    bytes: Option<Vec<u8>>,
}

/// Token counts the server reported.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Usage {
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
}

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// Inline `<think>` tracking over the content stream; tags may be split across pieces.
#[derive(Debug, Default)]
struct Inline {
    in_think: bool,
    tail: String,
    seen: bool,
}

impl Inline {
    /// The phase of a piece of content: a piece that opens or closes thinking belongs to it.
    fn phase_of(&mut self, text: &str) -> Phase {
        let window = format!("{}{}", self.tail, text);
        let fresh = self.tail.len();
        let open = window.rfind(OPEN).filter(|&i| i + OPEN.len() > fresh);
        let close = window.rfind(CLOSE).filter(|&i| i + CLOSE.len() > fresh);
        let phase = match (open, close) {
            (Some(o), Some(c)) if o > c => {
                self.in_think = true;
                Phase::Think
            }
            (_, Some(_)) => {
                self.in_think = false;
                Phase::Think
            }
            (Some(_), None) => {
                self.in_think = true;
                Phase::Think
            }
            (None, None) if self.in_think => Phase::Think,
            (None, None) => Phase::Answer,
        };
        self.seen |= open.is_some() || close.is_some();
        let cut = window.char_indices().rev().nth(CLOSE.len() - 1).map_or(0, |(i, _)| i);
        self.tail = window[cut..].to_string();
        phase
    }
}

/// Splits text right before each `<think>` and right after each `</think>`.
fn split_at_tags(text: &str) -> Vec<&str> {
    let mut cuts = vec![0];
    for (i, _) in text.match_indices(OPEN) {
        cuts.push(i);
    }
    for (i, _) in text.match_indices(CLOSE) {
        cuts.push(i + CLOSE.len());
    }
    cuts.push(text.len());
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2).map(|w| &text[w[0]..w[1]]).filter(|s| !s.is_empty()).collect()
}

#[derive(Debug, Default)]
struct Counts {
    steps: u32,
    no_logprobs: u32,
    think_no_logprobs: u32,
    no_top: u32,
    extra_dropped: u32,
    extra_as_think: u32,
    mismatched_chunks: u32,
    /// Steps that came with more alternatives than are kept, and the most seen on one.
    top_cut: u32,
    top_most: usize,
    /// Logprobs above 0 (a probability over 1) that the server sent, recorded as unknown.
    impossible: u32,
}

/// Assembles steps from chunks, remembering what the server supplied.
#[derive(Debug, Default)]
pub struct Assembler {
    top_requested: usize,
    reasoning_from: Option<&'static str>,
    inline: Inline,
    carry: Vec<u8>,
    think_text_streamed: bool,
    counts: Counts,
    pub model: Option<String>,
    pub usage: Option<Usage>,
    pub finish: Option<String>,
}

impl Assembler {
    /// `starts_in_think`: the prompt already opened `<think>` (DeepSeek-R1's template).
    pub fn new(top_requested: usize, starts_in_think: bool) -> Self {
        let mut a = Assembler { top_requested, ..Assembler::default() };
        a.inline.in_think = starts_in_think;
        a
    }

    /// How many alternatives a step keeps: those asked for (any the server sends, up to the
    /// cap, when none were asked for).
    fn alternatives_kept(&self) -> usize {
        match self.top_requested {
            0 => MAX_ALTERNATIVES,
            n => n.min(MAX_ALTERNATIVES),
        }
    }

    pub fn steps(&self) -> u32 {
        self.counts.steps
    }

    /// Decodes token bytes, keeping an incomplete UTF-8 character for the next token.
    fn token_text(&mut self, token: &str, bytes: Option<&[u8]>) -> String {
        let Some(b) = bytes else { return token.to_string() };
        self.carry.extend_from_slice(b);
        match std::str::from_utf8(&self.carry) {
            Ok(s) => {
                let s = s.to_string();
                self.carry.clear();
                s
            }
            Err(e) if e.error_len().is_none() && self.carry.len() - e.valid_up_to() < 4 => {
                let rest = self.carry.split_off(e.valid_up_to());
                let s = String::from_utf8_lossy(&self.carry).into_owned();
                self.carry = rest;
                s
            }
            Err(_) => {
                let s = String::from_utf8_lossy(&self.carry).into_owned();
                self.carry.clear();
                s
            }
        }
    }

    fn step(
        &mut self,
        text: String,
        phase: Phase,
        logprob: f32,
        top: Vec<TopToken>,
        t_us: u64,
    ) -> Step {
        let index = self.counts.steps;
        self.counts.steps += 1;
        if logprob.is_nan() {
            self.counts.no_logprobs += 1;
            if phase == Phase::Think {
                self.counts.think_no_logprobs += 1;
            }
        } else if top.is_empty() && self.top_requested > 0 {
            self.counts.no_top += 1;
        }
        Step { index, token_id: UNKNOWN_TOKEN, text, logprob, entropy: f32::NAN, phase, t_us, top }
    }

    fn content_phase(&mut self, text: &str) -> Phase {
        if self.reasoning_from.is_some_and(|r| r != "inline <think>") {
            return Phase::Answer;
        }
        let phase = self.inline.phase_of(text);
        if self.inline.seen {
            self.reasoning_from = Some("inline <think>");
        }
        phase
    }

    /// The steps in one chunk (its first choice). `line` is the chunk's SSE line, for errors.
    pub fn chunk(&mut self, value: &Value, line: usize, t_us: u64) -> Result<Vec<Step>> {
        let chunk = Chunk::deserialize(value).map_err(|e| Error::Sse {
            line,
            message: format!("unexpected chunk shape ({e})"),
            content: quote(&value.to_string(), 200),
        })?;
        Ok(self.apply(chunk, t_us))
    }

    /// As `chunk`, from the event's JSON text (one parse, no intermediate `Value`).
    pub fn chunk_str(&mut self, data: &str, line: usize, t_us: u64) -> Result<Vec<Step>> {
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| Error::Sse {
            line,
            message: if e.is_data() {
                format!("unexpected chunk shape ({e})")
            } else {
                format!("not JSON ({e})")
            },
            content: quote(data, 200),
        })?;
        Ok(self.apply(chunk, t_us))
    }

    fn apply(&mut self, chunk: Chunk, t_us: u64) -> Vec<Step> {
        if let Some(m) = chunk.model {
            self.model = Some(m);
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        let Some(choice) = chunk.choices.into_iter().next() else { return Vec::new() };
        if choice.finish_reason.is_some() {
            self.finish = choice.finish_reason;
        }
        let delta = choice.delta.unwrap_or_default();
        let reasoning = match (delta.reasoning_content, delta.reasoning) {
            (Some(r), _) if !r.is_empty() => {
                self.reasoning_from = Some("reasoning_content");
                r
            }
            (_, Some(r)) if !r.is_empty() => {
                self.reasoning_from = Some("reasoning");
                r
            }
            _ => String::new(),
        };
        let content = delta.content.unwrap_or_default();
        let entries = choice.logprobs.and_then(|l| l.content).unwrap_or_default();
        if entries.is_empty() {
            return self.without_logprobs(reasoning, &content, t_us);
        }
        self.with_logprobs(entries, &reasoning, &content, t_us)
    }

    fn without_logprobs(&mut self, reasoning: String, content: &str, t_us: u64) -> Vec<Step> {
        let mut out = Vec::new();
        if !reasoning.is_empty() {
            self.think_text_streamed = true;
            out.push(self.step(reasoning, Phase::Think, f32::NAN, Vec::new(), t_us));
        }
        for piece in split_at_tags(content) {
            let phase = self.content_phase(piece);
            if phase == Phase::Think {
                self.think_text_streamed = true;
            }
            out.push(self.step(piece.to_string(), phase, f32::NAN, Vec::new(), t_us));
        }
        out
    }

    fn with_logprobs(
        &mut self,
        entries: Vec<Entry>,
        reasoning: &str,
        content: &str,
        t_us: u64,
    ) -> Vec<Step> {
        let mut texts = Vec::with_capacity(entries.len());
        for e in &entries {
            let t = self.token_text(&e.token, e.bytes.as_deref());
            texts.push(t);
        }
        let streamed_len = reasoning.len() + content.len();
        let all: String = texts.concat();
        // Entries before `first` are tokens the streamed text does not have; `extra` bytes.
        let extra = all.len().checked_sub(streamed_len).filter(|&x| {
            all.get(x..).is_some_and(|tail| tail.strip_prefix(reasoning) == Some(content))
        });
        let first = extra.and_then(|x| {
            let mut acc = 0;
            (0..=texts.len()).find(|&k| {
                let hit = acc == x;
                acc += texts.get(k).map_or(0, String::len);
                hit
            })
        });
        let aligned = first.is_some();
        let (first, extra) = (first.unwrap_or(0), extra.unwrap_or(0));
        if !aligned {
            self.counts.mismatched_chunks += 1;
        }
        let drop_extra = self.think_text_streamed;
        let mut out = Vec::with_capacity(entries.len());
        let mut pos = 0usize;
        for (i, (e, text)) in entries.into_iter().zip(texts).enumerate() {
            let start = pos;
            pos += text.len();
            let phase = if aligned && i < first {
                if drop_extra {
                    self.counts.extra_dropped += 1;
                    continue;
                }
                self.counts.extra_as_think += 1;
                Phase::Think
            } else if !aligned {
                if !reasoning.is_empty() && content.is_empty() {
                    Phase::Think
                } else {
                    self.content_phase(&text)
                }
            } else if start - extra < reasoning.len() {
                Phase::Think
            } else {
                self.content_phase(&text)
            };
            let mut given = e.top_logprobs.unwrap_or_default();
            let keep = self.alternatives_kept();
            if given.len() > keep {
                self.counts.top_cut += 1;
                self.counts.top_most = self.counts.top_most.max(given.len());
                given.truncate(keep);
            }
            let top = given
                .into_iter()
                .map(|t| TopToken {
                    id: UNKNOWN_TOKEN,
                    text: match t.bytes {
                        Some(b) => String::from_utf8_lossy(&b).into_owned(),
                        None => t.token,
                    },
                    logprob: self.logprob(t.logprob),
                })
                .collect();
            let logprob = self.logprob(e.logprob);
            out.push(self.step(text, phase, logprob, top, t_us));
        }
        out
    }

    /// A logprob as sent; one above 0 (beyond rounding) is impossible and recorded as unknown,
    /// as an import would refuse it.
    fn logprob(&mut self, sent: Option<f64>) -> f32 {
        match sent {
            Some(l) if l > f64::from(crate::trace::LOGPROB_SLACK) || l.is_nan() => {
                self.counts.impossible += 1;
                f32::NAN
            }
            Some(l) => l as f32,
            None => f32::NAN,
        }
    }

    /// What the server supplied and left out, and the bugs met.
    pub fn info(&self, requested_model: &str) -> RemoteInfo {
        let c = &self.counts;
        let mut missing =
            vec!["token ids".to_string(), "entropy".to_string(), "rendered prompt".to_string()];
        if c.no_logprobs > 0 {
            missing.push(format!("logprobs on {} of {} steps", c.no_logprobs, c.steps));
        }
        if c.no_top > 0 {
            missing.push(format!("top_logprobs on {} of {} steps", c.no_top, c.steps));
        }
        if self.usage.is_none() {
            missing.push("usage (token counts)".into());
        }
        let mut notes = Vec::new();
        if c.think_no_logprobs > 0 && c.no_logprobs < c.steps {
            notes.push(format!(
                "reasoning chunks came with 'logprobs: null' (SGLang #26778): {} thinking steps recorded without logprobs, one per chunk",
                c.think_no_logprobs
            ));
        }
        if c.impossible > 0 {
            notes.push(format!(
                "the server sent {} logprobs above 0 (a probability over 1): recorded as unknown",
                c.impossible
            ));
        }
        if c.extra_as_think > 0 {
            notes.push(format!(
                "logprobs included {} tokens the streamed content did not (reasoning tokens, SGLang #25055): recorded as thinking steps",
                c.extra_as_think
            ));
        }
        if c.extra_dropped > 0 {
            notes.push(format!(
                "logprobs included {} tokens not in the streamed text (reasoning tokens already streamed, SGLang #25055): dropped",
                c.extra_dropped
            ));
        }
        if c.top_cut > 0 {
            notes.push(format!(
                "the server sent up to {} alternatives per token on {} steps; the first {} were kept",
                c.top_most,
                c.top_cut,
                self.alternatives_kept()
            ));
        }
        if c.mismatched_chunks > 0 {
            notes.push(format!(
                "logprob tokens did not match the streamed text on {} chunks; those steps follow the logprob tokens",
                c.mismatched_chunks
            ));
        }
        RemoteInfo {
            model: self.model.clone().unwrap_or_else(|| requested_model.to_string()),
            reasoning_from: self.reasoning_from.unwrap_or("").to_string(),
            routing_format: String::new(),
            missing,
            notes,
        }
    }
}
