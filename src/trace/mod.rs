//! The shared vocabulary of thinkdbg: sessions, runs, steps, top-k alternatives, routing, flags
//! and notes, plus their ids.
//!
//! Every other module speaks in these types. This module depends on nothing inside the crate:
//! the engine produces `Step`s, the store keeps them, analysis and the TUI read them.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize};

mod source;
pub use source::{RemoteInfo, RunSource};

/// Identifier of a session (a prompt under investigation and its runs), shown as `s<decimal>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub u64);

/// Identifier of one run (one generation) inside a session, shown as `r<decimal>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// Milliseconds since the Unix epoch, the timestamp used throughout the store.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The proleptic Gregorian date `(year, month 1-12, day 1-31)` of a day counted from
/// 1970-01-01 (Howard Hinnant's days-to-civil algorithm): dates without a calendar crate.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// A prompt under investigation and the runs made from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    pub title: String,
    pub created_at: u64,
    pub tags: Vec<String>,
    pub runs: Vec<RunId>,
}

/// One chat message given to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self { role: role.into(), content: content.into() }
    }
}

/// What the model was: enough to tell whether a replay used the same weights.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelInfo {
    /// `general.name` or the file name.
    pub name: String,
    /// `general.architecture` (`llama`, `qwen2`, `qwen3`, ...).
    pub arch: String,
    /// SHA-256 over the GGUF header and a sample of its tensor data (see `engine::gguf`).
    pub fingerprint: String,
    /// The most common tensor type, e.g. `Q4_1`.
    pub quant: String,
    pub layers: u32,
    /// Routed experts per MoE layer (0 for dense models).
    pub experts: u32,
    pub experts_per_token: u32,
    /// Block indices of the MoE layers, in order (empty for dense models; absent from JSONL
    /// written before MoE support).
    #[serde(default)]
    pub moe_layers: Vec<u16>,
    /// How experts are chosen, e.g. `softmax, top-8, renormalised` (empty for dense models).
    #[serde(default)]
    pub gating: String,
}

/// Sampler settings. Together with the model fingerprint and the rendered prompt they make a
/// run reproducible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerSpec {
    /// 0 means greedy.
    pub temperature: f32,
    /// 0 disables top-k.
    pub top_k: usize,
    /// 1.0 disables top-p.
    pub top_p: f32,
    /// 0.0 disables min-p.
    pub min_p: f32,
    /// 1.0 disables the repetition penalty.
    pub repeat_penalty: f32,
    /// How many recent tokens the repetition penalty looks at.
    pub repeat_last_n: usize,
    pub seed: u64,
    pub max_tokens: usize,
    /// Keep generating past end-of-generation tokens (for benchmarks), as llama.cpp's
    /// `--ignore-eos`.
    #[serde(default)]
    pub ignore_eos: bool,
}

/// `SamplerSpec::max_tokens` of a run without a cap: it generates until the end of its turn or
/// until the context is full (the engine stops there whatever the cap). `u32::MAX`, so that
/// JSON readers that hold numbers as doubles read it exactly.
pub const NO_TOKEN_CAP: usize = u32::MAX as usize;

impl SamplerSpec {
    /// `max_tokens` as people read it: the number, or `none` for `NO_TOKEN_CAP`.
    pub fn max_tokens_text(&self) -> String {
        if self.max_tokens >= NO_TOKEN_CAP {
            "none".into()
        } else {
            self.max_tokens.to_string()
        }
    }

    /// Whether generation is capped below the end of the context.
    pub fn capped(&self) -> bool {
        self.max_tokens < NO_TOKEN_CAP
    }
}

impl Default for SamplerSpec {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
            max_tokens: 512,
            ignore_eos: false,
        }
    }
}

/// Whether the chain of thought or the final answer was being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Think,
    Answer,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Think => "think",
            Phase::Answer => "answer",
        }
    }
}

/// The token id of a step or alternative whose source gave text but no id (OpenAI-compatible
/// servers return token strings only).
pub const UNKNOWN_TOKEN: u32 = u32::MAX;

/// A float that may be unknown: `NaN` in memory and in the store, `null` in JSON (which has no
/// NaN; serde_json writes NaN as `null`, and this reads `null` back as NaN).
fn f32_or_nan<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f32, D::Error> {
    if d.is_human_readable() {
        Ok(Option::<f32>::deserialize(d)?.unwrap_or(f32::NAN))
    } else {
        f32::deserialize(d)
    }
}

/// One alternative the model could have chosen at a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopToken {
    pub id: u32,
    pub text: String,
    /// NaN when unknown (a server that sent an impossible value).
    #[serde(deserialize_with = "f32_or_nan")]
    pub logprob: f32,
}

/// One generated token with everything known about the choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub index: u32,
    /// `UNKNOWN_TOKEN` when the source gave no id.
    pub token_id: u32,
    /// The text this step made visible. Concatenating every step's text gives the output;
    /// a token that ends inside a UTF-8 character contributes its text to the next step.
    pub text: String,
    /// Raw log-probability of the chosen token (log-softmax of the unmodified logits); NaN
    /// when the source did not supply it (see `RemoteInfo::missing`).
    #[serde(deserialize_with = "f32_or_nan")]
    pub logprob: f32,
    /// Entropy, in nats, of the raw distribution; NaN when unknown (servers return top-k only).
    #[serde(deserialize_with = "f32_or_nan")]
    pub entropy: f32,
    pub phase: Phase,
    /// Microseconds from the start of generation to this token being chosen.
    pub t_us: u64,
    /// The most likely tokens of the raw distribution, most likely first.
    pub top: Vec<TopToken>,
}

/// Routing of one MoE layer for one token.
///
/// Recorded weights are rounded to f16 (as they are stored) and experts are listed in
/// canonical order: decreasing weight, ties by increasing id (see `LayerRoute::canonical`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerRoute {
    pub layer: u16,
    pub experts: Vec<u16>,
    /// Final gate weights in the order of `experts`; `None` when the source gave ids only.
    pub weights: Option<Vec<f32>>,
    /// The full router distribution over every expert, by expert id (softmax probabilities
    /// or sigmoid scores, before the selection bias and the group limit), rounded to f16.
    /// Only recorded with `--routing full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<Vec<f32>>,
}

impl LayerRoute {
    /// A route from `(expert, final gate weight)` pairs: weights rounded to f16, experts in
    /// decreasing weight order (ties by id), so what is shown live equals what is stored.
    pub fn canonical(layer: u16, pairs: &[(u16, f32)]) -> Self {
        let mut p: Vec<(u16, f32)> =
            pairs.iter().map(|&(e, w)| (e, half::f16::from_f32(w).to_f32())).collect();
        p.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        LayerRoute {
            layer,
            experts: p.iter().map(|x| x.0).collect(),
            weights: Some(p.iter().map(|x| x.1).collect()),
            router: None,
        }
    }

    /// This route with the full router distribution (rounded to f16, as it is stored).
    pub fn with_router(mut self, probs: &[f32]) -> Self {
        self.router = Some(probs.iter().map(|&p| half::f16::from_f32(p).to_f32()).collect());
        self
    }
}

/// How much MoE routing the engine records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoutingDetail {
    /// None (the experts still run; nothing about them is kept).
    Off,
    /// The selected experts and their final gate weights, per MoE layer.
    #[default]
    Selected,
    /// `Selected` plus the full router distribution over every expert.
    Full,
}

/// How one token was routed through every MoE layer, indexed by the position of the token
/// that was processed (as SGLang and vLLM index it).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Routing {
    pub layers: Vec<LayerRoute>,
}

/// Whether logprobs are of the model's raw distribution or of the one after sampling filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogprobKind {
    Raw,
    PostSampling,
}

/// Life cycle of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Recording,
    /// Ended by itself: an end-of-turn token, the token cap or a full context.
    Complete,
    /// Cut short by something that went wrong (a crash, a broken stream, a full disk).
    Interrupted,
    Failed(String),
    /// Stopped by the user (a key in the UI, Ctrl-C): the steps so far are kept, flushed when
    /// it stopped. Last, so that stores written before it existed decode as before.
    Cancelled,
}

impl RunStatus {
    /// The status as `ls`, the UI and the exports name it.
    pub fn as_str(&self) -> &'static str {
        match self {
            RunStatus::Recording => "recording",
            RunStatus::Complete => "complete",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Failed(_) => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// An end-of-sequence or end-of-turn token was generated.
    Eos,
    MaxTokens,
    /// The context window was full.
    ContextFull,
    /// The user (or the caller) cancelled.
    User,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Eos => "eos",
            StopReason::MaxTokens => "max_tokens",
            StopReason::ContextFull => "context_full",
            StopReason::User => "user",
        }
    }
}

/// Wall-clock figures of a run.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Timings {
    pub load_ms: u64,
    pub prompt_tokens: u32,
    pub prefill_us: u64,
    pub generated_tokens: u32,
    pub decode_us: u64,
}

impl Timings {
    /// Decode speed in tokens per second (0 when nothing was decoded).
    pub fn decode_tok_s(&self) -> f64 {
        if self.decode_us == 0 || self.generated_tokens <= 1 {
            return 0.0;
        }
        // The first token comes out of the prefill; the rest each cost one decode step.
        f64::from(self.generated_tokens - 1) / (self.decode_us as f64 / 1e6)
    }

    pub fn prefill_tok_s(&self) -> f64 {
        if self.prefill_us == 0 {
            return 0.0;
        }
        f64::from(self.prompt_tokens) / (self.prefill_us as f64 / 1e6)
    }
}

/// One generation: its inputs, its provenance and its outcome. Steps live beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: RunId,
    pub session: SessionId,
    /// The run this one was forked or edited from, and the step it forked at.
    pub parent: Option<(RunId, u32)>,
    pub label: Option<String>,
    pub source: RunSource,
    pub model: ModelInfo,
    pub messages: Vec<Message>,
    pub rendered_prompt: String,
    pub prompt_tokens: Vec<u32>,
    pub sampler: SamplerSpec,
    pub logprob_kind: LogprobKind,
    pub status: RunStatus,
    pub stop: Option<StopReason>,
    pub timings: Timings,
    pub created_at: u64,
}

impl Run {
    /// The step whose token was forced: a fork's fork step. A resampled continuation (label
    /// `resample@…`) forces only the tokens before its fork step, an edit's re-run and a
    /// scored run (which forces every token) none.
    pub fn forced_step(&self) -> Option<u32> {
        let (_, at) = self.parent?;
        let label = self.label.as_deref().unwrap_or("");
        let scored = matches!(self.source, RunSource::Scored(_));
        (!label.starts_with("resample@") && label != "edit" && !scored).then_some(at)
    }

    /// A run about to be recorded by the embedded engine: status `Recording`, raw logprobs,
    /// everything learned while it runs (model, prompt tokens, timings) still empty.
    pub fn new_recording(id: RunId, session: SessionId, sampler: SamplerSpec) -> Self {
        Run {
            id,
            session,
            parent: None,
            label: None,
            source: RunSource::Embedded,
            model: ModelInfo::default(),
            messages: Vec::new(),
            rendered_prompt: String::new(),
            prompt_tokens: Vec::new(),
            sampler,
            logprob_kind: LogprobKind::Raw,
            status: RunStatus::Recording,
            stop: None,
            timings: Timings::default(),
            created_at: now_ms(),
        }
    }
}

/// What kind of suspicious place a flag marks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    LanguageSwitch,
    LowConfidence,
    EntropySpike,
    Repetition,
    Backtrack,
    ThinkIntegrity,
    AnswerMismatch,
    User(String),
}

impl FlagKind {
    /// The kind's name in machine-readable output (`--json`, `flags --kind`, exports):
    /// `language_switch`, …, `user:LABEL`.
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        match self {
            FlagKind::LanguageSwitch => "language_switch".into(),
            FlagKind::LowConfidence => "low_confidence".into(),
            FlagKind::EntropySpike => "entropy_spike".into(),
            FlagKind::Repetition => "repetition".into(),
            FlagKind::Backtrack => "backtrack".into(),
            FlagKind::ThinkIntegrity => "think_integrity".into(),
            FlagKind::AnswerMismatch => "answer_mismatch".into(),
            FlagKind::User(s) => format!("user:{s}").into(),
        }
    }

    /// The kind as people read it (`language switch`, `user: LABEL`). A user's label is
    /// untrusted text: sanitize or escape it for where it goes.
    pub fn label(&self) -> String {
        match self {
            FlagKind::User(s) => format!("user: {s}"),
            k => k.as_str().replace('_', " "),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warn,
    Error,
}

impl Severity {
    /// The word the CLI, the exports and JSON write: `info`, `warn`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Auto,
    User,
}

/// Most alternatives a step keeps (`--top-logprobs`, imports, servers that send more).
pub const MAX_ALTERNATIVES: usize = 100;

/// A place in a run worth a look, over the half-open step range `start..end`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    pub start: u32,
    pub end: u32,
    pub kind: FlagKind,
    pub severity: Severity,
    pub detail: String,
    pub origin: Origin,
}

/// A user's note over the half-open step range `start..end`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub start: u32,
    pub end: u32,
    pub text: String,
}

/// Everything recorded about one run: the unit the store reads out and imports, and the
/// exports write.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunRecord {
    pub run: Option<Run>,
    /// How each prompt token was routed (MoE runs that recorded it), in prompt order.
    pub prompt_routing: Vec<Routing>,
    pub steps: Vec<(Step, Option<Routing>)>,
    pub flags: Vec<Flag>,
    pub notes: Vec<Note>,
}

/// How far above 0 a logprob may be and still be a probability of 1 (rounding in another
/// tool's output); anything higher is impossible, refused by import and not recorded.
pub const LOGPROB_SLACK: f32 = 1e-3;

/// A session with its runs, in the order they are written.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub session: Session,
    pub runs: Vec<RunRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_kinds_have_one_machine_name_and_one_label() {
        assert_eq!(FlagKind::LanguageSwitch.as_str(), "language_switch");
        assert_eq!(FlagKind::LanguageSwitch.label(), "language switch");
        assert_eq!(FlagKind::User("my_tag".into()).as_str(), "user:my_tag");
        assert_eq!(FlagKind::User("my_tag".into()).label(), "user: my_tag");
    }

    #[test]
    fn an_unknown_alternative_logprob_round_trips_through_json() {
        let t = TopToken { id: 1, text: "a".into(), logprob: f32::NAN };
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"{"id":1,"text":"a","logprob":null}"#);
        assert!(serde_json::from_str::<TopToken>(&json).unwrap().logprob.is_nan());
    }

    #[test]
    fn decode_speed_excludes_the_prefill_token() {
        let t = Timings { generated_tokens: 11, decode_us: 1_000_000, ..Timings::default() };
        assert!((t.decode_tok_s() - 10.0).abs() < 1e-9);
        assert_eq!(Timings::default().decode_tok_s(), 0.0);
    }

    #[test]
    fn ids_display_in_decimal() {
        // Decimal, so that ids sort as people expect: r10 after r9, not after rf.
        assert_eq!(RunId(255).to_string(), "r255");
        assert_eq!(SessionId(16).to_string(), "s16");
    }
}
