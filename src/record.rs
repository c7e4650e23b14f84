//! The recording vocabulary: what every producer of a run (the embedded engine, a remote
//! server's stream, later an importer or a scorer) reports while it works, the `Recorder` that
//! receives it, and one `Tee` that hands the same events to several recorders.
//!
//! Producers emit `Event`s; consumers (the store writer, the terminal UI, the CLI's progress
//! line) implement or hold a `Recorder`. Nobody converts one producer's events into another's.
//! Depends on `trace` only.

use std::sync::mpsc::Sender;

use crate::trace::{ModelInfo, Phase, Routing, Step, StopReason, Timings};

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
