//! Resample from the reasoning step at the cursor: the form (how many continuations, most
//! tokens) and the panel of a resample started from it (`ResampleJob`: each continuation's
//! progress as its events arrive, then the summary once all have ended). The continuations
//! are child runs of the session (parent = the run, fork step = the start of the reasoning
//! step, whose tokens are resampled too, as `thinkdbg resample --reasoning-step` does); `App`
//! starts them on the job channel. The plan and the answer summary are
//! `crate::runs::resample`'s; drawing is in `draw.rs`. May import `components`, `theme`,
//! `action`, and the crate's `record`, `runs`, `store`, `trace` and `tui::text`.

mod draw;
pub mod form;

pub use form::ResampleForm;

use super::Effect;
use crate::record::Event;
use crate::runs::resample::{FinalAnswer, Summary};
use crate::store::Store;
use crate::trace::{RunId, StopReason};
use crate::tui::action::Action;

/// How one continuation ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Running,
    /// Its final answer, and where its text first differs from the parent's
    /// (`resample::first_difference`; `None`: the same text).
    Done(FinalAnswer, Option<String>),
    Cancelled,
    Failed(String),
}

/// A resample in progress or finished.
#[derive(Debug, Clone)]
pub struct ResampleJob {
    pub parent: RunId,
    pub reasoning_step: usize,
    pub at: u32,
    pub max_tokens: usize,
    pub temperature: f32,
    pub runs: Vec<RunId>,
    /// Steps recorded so far, per continuation.
    pub tokens: Vec<usize>,
    pub outcomes: Vec<Outcome>,
    pub original: FinalAnswer,
    /// Over the continuations that finished, once none is running.
    pub summary: Option<Summary>,
    /// The continuation selected in the summary (for compare).
    pub sel: usize,
}

impl ResampleJob {
    pub fn running(&self) -> usize {
        self.outcomes.iter().filter(|o| matches!(o, Outcome::Running)).count()
    }

    pub fn finished(&self) -> bool {
        self.running() == 0
    }

    /// The continuations that reached an answer, with it.
    pub fn answers(&self) -> Vec<(RunId, FinalAnswer)> {
        self.runs
            .iter()
            .zip(&self.outcomes)
            .filter_map(|(id, o)| match o {
                Outcome::Done(a, _) => Some((*id, a.clone())),
                _ => None,
            })
            .collect()
    }

    /// Keys in the panel: ↑/↓ pick a continuation, Enter compares it with the parent, X
    /// cancels (Esc hides the panel; the continuations keep running).
    pub fn update(&mut self, action: &Action) -> Effect {
        let n = self.runs.len();
        match action {
            Action::FieldNext if n > 0 => self.sel = (self.sel + 1) % n,
            Action::FieldPrev if n > 0 => self.sel = (self.sel + n - 1) % n,
            Action::Input('X' | 'x') => return Effect::CancelContinuations,
            Action::InputSubmit => {
                let Some(&b) = self.runs.get(self.sel) else { return Effect::None };
                return Effect::Compare { a: self.parent, b, at: Some(self.at as usize) };
            }
            _ => {}
        }
        Effect::None
    }

    /// Counts a continuation's steps as they stream.
    pub fn on_event(&mut self, id: RunId, ev: &Event) {
        let Some(i) = self.runs.iter().position(|x| *x == id) else { return };
        if let Event::Step { .. } = ev {
            self.tokens[i] += 1;
        }
    }

    /// A continuation ended (its writer has flushed): reads its answer; once none is running,
    /// summarises. Returns the message to show, or `None` when `id` is not a continuation.
    pub fn ended(
        &mut self,
        id: RunId,
        ev: &Event,
        stored: bool,
        store: Option<&Store>,
    ) -> Option<String> {
        let i = self.runs.iter().position(|x| *x == id)?;
        self.outcomes[i] = match ev {
            Event::Failed(m) | Event::Interrupted(m) => Outcome::Failed(m.clone()),
            Event::Finished { stop: StopReason::User, .. } => Outcome::Cancelled,
            _ if !stored => Outcome::Failed("not stored".into()),
            _ => match store.map(|s| s.steps(id)) {
                Some(Ok(read)) => {
                    let parent = store.and_then(|s| s.steps(self.parent).ok()).map(|r| r.steps);
                    let differs = parent.and_then(|p| {
                        crate::runs::resample::first_difference(&p, &read.steps, self.at, 6)
                    });
                    Outcome::Done(FinalAnswer::of(&read.steps), differs)
                }
                Some(Err(e)) => Outcome::Failed(e.to_string()),
                None => Outcome::Failed("no store".into()),
            },
        };
        let done = self.runs.len() - self.running();
        if self.finished() {
            let s = Summary::new(&self.original, &self.answers());
            let msg = format!(
                "resample done: answer changed in {} of {} (importance {:.2})",
                s.changed,
                s.total,
                s.importance()
            );
            self.summary = Some(s);
            Some(msg)
        } else {
            Some(format!("resample: {done} of {} continuations done", self.runs.len()))
        }
    }
}
