//! The recording vocabulary: what every producer of a run (the embedded engine, a remote
//! server's stream, later an importer or a scorer) reports while it works, the `Recorder` that
//! receives it, and one `Tee` that hands the same events to several recorders.
//!
//! Producers emit `Event`s; consumers (the store writer, the terminal UI, the CLI's progress
//! line) implement or hold a `Recorder`. Nobody converts one producer's events into another's.
//! Depends on `trace` only.

use std::sync::mpsc::Sender;

use serde::{Deserialize, Serialize};

use crate::trace::{ModelInfo, Phase, Routing, Run, RunSource, Step, StopReason, Timings};

/// What a producer reports about one run, in order: `Loading`/`Loaded` (embedded models only),
/// `Started`, `PromptRouting` (MoE models), `Step`s, then exactly one of `Finished`, `Failed`
/// or `Interrupted` — or nothing, when the producer died (the store writer then keeps the run
/// as interrupted).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Model loading: bytes of tensor data read and in all.
    Loading {
        done: u64,
        total: u64,
    },
    Loaded {
        model: ModelInfo,
        load_ms: u64,
        warnings: Vec<String>,
    },
    Started {
        rendered_prompt: String,
        prompt_tokens: Vec<u32>,
        phase: Phase,
        stop_ids: Vec<u32>,
    },
    /// How each prompt token was routed (MoE models), in prompt order, after the prefill.
    PromptRouting(Vec<Routing>),
    Step {
        step: Step,
        routing: Option<Routing>,
    },
    /// The run ended normally (end of turn, token limit, full context, or the user's stop).
    Finished {
        stop: StopReason,
        timings: Timings,
    },
    /// Nothing usable came of the run; the message says why.
    Failed(String),
    /// The run was cut off after some steps (a broken stream, a cancelled server request):
    /// what arrived is kept, and the message says why it stopped.
    Interrupted(String),
}

impl Event {
    /// Whether this event ends the run.
    pub fn is_end(&self) -> bool {
        matches!(self, Event::Finished { .. } | Event::Failed(_) | Event::Interrupted(_))
    }
}

/// Receives a producer's events. Implementations must not block for long: the store writer
/// and the TUI implement it with a channel send, so generation never waits for the disk or
/// the screen.
pub trait Recorder: Send {
    fn record(&mut self, event: Event);
}

impl Recorder for Sender<Event> {
    fn record(&mut self, event: Event) {
        // A receiver that went away (the user quit) just stops listening.
        let _ = self.send(event);
    }
}

impl Recorder for Vec<Event> {
    fn record(&mut self, event: Event) {
        self.push(event);
    }
}

/// Drops every event (benchmarks that measure the producer alone).
pub struct Discard;

impl Recorder for Discard {
    fn record(&mut self, _: Event) {}
}

/// Sends every event to several recorders (the store writer and the terminal, say), in order.
pub struct Tee(pub Vec<Box<dyn Recorder>>);

impl Tee {
    pub fn new(first: impl Recorder + 'static, second: impl Recorder + 'static) -> Tee {
        Tee(vec![Box::new(first), Box::new(second)])
    }
}

impl Recorder for Tee {
    fn record(&mut self, event: Event) {
        if let Some((last, rest)) = self.0.split_last_mut() {
            for r in rest {
                r.record(event.clone());
            }
            last.record(event);
        }
    }
}

/// How a scorer produced a run (`trace::RunSource::Scored`, `thinkdbg score`): a local model's
/// view of its parent run's text, the parent's output forced token by token, each step with
/// that model's logprob, entropy, top-k and routing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scored {
    /// Where the scored token sequence came from.
    pub tokens: ScoredTokens,
    /// For each step, the parent step holding its first character (a tag the scorer inserted
    /// maps to the parent step it was inserted before); empty when the steps are the parent's
    /// one for one.
    #[serde(default)]
    pub parent_steps: Vec<u32>,
}

/// How a scored run's tokens were chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoredTokens {
    /// The parent's own token ids (same vocabulary fingerprint).
    ParentIds,
    /// Every parent step's text is one token of the scoring model's vocabulary.
    TokenTexts,
    /// The scoring model's tokenization of the parent's text.
    Retokenized,
}

impl ScoredTokens {
    pub fn as_str(self) -> &'static str {
        match self {
            ScoredTokens::ParentIds => "the parent's token ids",
            ScoredTokens::TokenTexts => "the parent's tokens, by their text",
            ScoredTokens::Retokenized => "the model's tokenization of the parent's text",
        }
    }
}

impl Run {
    /// How this run scores its parent's text, if it is a scored run.
    pub fn scored(&self) -> Option<&Scored> {
        match &self.source {
            RunSource::Scored(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_scored(&self) -> bool {
        self.scored().is_some()
    }

    /// The parent step that step `i` of a scored run lines up with: the same index unless the
    /// scorer tokenized the text its own way (`Scored::parent_steps`).
    pub fn scored_parent_step(&self, i: u32) -> u32 {
        match self.scored().map(|s| &s.parent_steps) {
            Some(p) if !p.is_empty() => p.get(i as usize).or(p.last()).copied().unwrap_or(i),
            _ => i,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tee_gives_every_recorder_every_event_in_order() {
        use std::sync::mpsc;
        let (a_tx, a_rx) = mpsc::channel();
        let (b_tx, b_rx) = mpsc::channel();
        let mut tee = Tee::new(a_tx, b_tx);
        tee.record(Event::Loading { done: 1, total: 2 });
        tee.record(Event::Failed("x".into()));
        drop(tee);
        let a: Vec<Event> = a_rx.iter().collect();
        let b: Vec<Event> = b_rx.iter().collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
        assert!(!a[0].is_end() && a[1].is_end());
    }
}
