//! Resample from the reasoning step at the cursor, in `App::update`: the form (how many
//! continuations, most tokens), the continuations started on the engine worker (each a child
//! run of the session: parent = the run, fork step = the start of the reasoning step, whose
//! tokens are resampled too, as `thinkdbg resample --reasoning-step` does), their progress as
//! engine events arrive, and the summary once all have ended. The plan and the answer summary
//! are `crate::runs::resample`'s; drawing is in `resample_panel.rs`.

use super::app::{App, Overlay};
use super::error::{Error, Result};
use crate::record::Event;
use crate::runs::replay::Parent;
use crate::runs::resample::{self, FinalAnswer, Summary};
use crate::trace::{RunId, StopReason};

/// The form that starts a resample.
#[derive(Debug, Clone, PartialEq)]
pub struct ResampleForm {
    pub run: RunId,
    /// The reasoning step (0-based) and the token step where it starts.
    pub reasoning_step: usize,
    pub at: u32,
    /// The step's first words, for the title.
    pub preview: String,
    /// How many continuations, as typed.
    pub samples: String,
    /// Most tokens per continuation (prefix included), as typed.
    pub max_tokens: String,
    /// The run's temperature (0.7 when it was greedy).
    pub temperature: f32,
    /// 0: samples, 1: max tokens.
    pub focus: usize,
}

impl ResampleForm {
    pub fn next_field(&mut self) {
        self.focus = (self.focus + 1) % 2;
    }

    pub fn input(&mut self, c: char) {
        if c.is_ascii_digit() {
            if self.focus == 0 { &mut self.samples } else { &mut self.max_tokens }.push(c);
        }
    }

    pub fn backspace(&mut self) {
        if self.focus == 0 { &mut self.samples } else { &mut self.max_tokens }.pop();
    }

    fn values(&self) -> std::result::Result<(usize, usize), String> {
        let n: usize =
            self.samples.parse().map_err(|_| "'samples' must be a number".to_string())?;
        if n == 0 || n > resample::MAX_SAMPLES {
            return Err(format!("'samples' is {n}; give 1 to {}", resample::MAX_SAMPLES));
        }
        let m: usize =
            self.max_tokens.parse().map_err(|_| "'max tokens' must be a number".to_string())?;
        Ok((n, m))
    }
}

/// How one continuation ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Running,
    Done(FinalAnswer),
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
                Outcome::Done(a) => Some((*id, a.clone())),
                _ => None,
            })
            .collect()
    }
}

impl App {
    /// `r`: the resample form for the reasoning step at the cursor, or the panel of the
    /// resample still running.
    pub(super) fn open_resample(&mut self) {
        if self.resample.as_ref().is_some_and(|r| !r.finished()) {
            self.overlay = Some(Overlay::ResamplePanel);
            return;
        }
        let samples = resample::configured_samples().unwrap_or_else(|e| {
            self.message = format!("{e}; using {}", resample::DEFAULT_SAMPLES);
            resample::DEFAULT_SAMPLES
        });
        let Some(v) = self.view.as_mut().filter(|v| !v.is_empty()) else {
            self.message = "no run to resample".into();
            return;
        };
        if self.store.is_none() {
            self.message = "no store".into();
            return;
        }
        v.resegment();
        let c = self.cursor.min(v.len() - 1);
        let Some((n, step)) =
            v.segments.steps.iter().enumerate().rev().find(|(_, s)| s.span.start <= c)
        else {
            self.message = "no reasoning step at the cursor".into();
            return;
        };
        let preview: String = v.steps[step.span.start..step.span.end.min(step.span.start + 8)]
            .iter()
            .map(|s| s.text.as_str())
            .collect();
        let t = v.run.sampler.temperature;
        self.overlay = Some(Overlay::Resample(ResampleForm {
            run: v.run.id,
            reasoning_step: n,
            at: step.span.start as u32,
            preview,
            samples: samples.to_string(),
            max_tokens: v.run.sampler.max_tokens.to_string(),
            temperature: if t > 0.0 { t } else { resample::GREEDY_FALLBACK_TEMPERATURE },
            focus: 0,
        }));
    }

    /// `P`: the panel of the last resample.
    pub(super) fn show_resample_panel(&mut self) {
        if self.resample.is_some() {
            self.overlay = Some(Overlay::ResamplePanel);
        } else {
            self.message = "no resample yet; press r on a reasoning step".into();
        }
    }

    /// Starts the continuations the form describes.
    pub(super) fn start_resample(&mut self, form: &ResampleForm) -> Result<()> {
        let (samples, max_tokens) = form.values().map_err(Error::Job)?;
        let store = self.store.clone().ok_or_else(|| Error::Job("no store".into()))?;
        let parent = Parent::load_id(&store, form.run)?;
        let mut base = parent.run.sampler.clone();
        base.max_tokens = max_tokens;
        let sampler = resample::sampler(&base, None, form.at)?;
        self.jobs.check_model(&parent)?;
        let plan = resample::plan(&store, &parent, form.at, samples, &sampler)?;
        let mut runs = Vec::with_capacity(plan.len());
        for (run, request) in plan {
            runs.push(self.jobs.start(&store, &parent, run, request)?);
        }
        self.resample = Some(ResampleJob {
            parent: parent.run.id,
            reasoning_step: form.reasoning_step,
            at: form.at,
            max_tokens,
            temperature: sampler.temperature,
            tokens: vec![0; runs.len()],
            outcomes: vec![Outcome::Running; runs.len()],
            runs,
            original: FinalAnswer::of(&parent.steps),
            summary: None,
            sel: 0,
        });
        self.overlay = Some(Overlay::ResamplePanel);
        self.refresh_list();
        self.message = format!("resampling {samples} continuations from step {}", form.at);
        Ok(())
    }

    /// Counts a continuation's steps as they stream.
    pub(super) fn resample_event(&mut self, id: RunId, ev: &Event) {
        let Some(r) = &mut self.resample else { return };
        let Some(i) = r.runs.iter().position(|x| *x == id) else { return };
        if let Event::Step { .. } = ev {
            r.tokens[i] += 1;
        }
    }

    /// A continuation ended (its writer has flushed): reads its answer; once none is running,
    /// summarises. Returns whether `id` was a continuation.
    pub(super) fn resample_ended(&mut self, id: RunId, ev: &Event, stored: bool) -> bool {
        let store = self.store.clone();
        let Some(r) = &mut self.resample else { return false };
        let Some(i) = r.runs.iter().position(|x| *x == id) else { return false };
        r.outcomes[i] = match ev {
            Event::Failed(m) | Event::Interrupted(m) => Outcome::Failed(m.clone()),
            Event::Finished { stop: StopReason::User, .. } => Outcome::Cancelled,
            _ if !stored => Outcome::Failed("not stored".into()),
            _ => match store.map(|s| s.steps(id)) {
                Some(Ok(read)) => Outcome::Done(FinalAnswer::of(&read.steps)),
                Some(Err(e)) => Outcome::Failed(e.to_string()),
                None => Outcome::Failed("no store".into()),
            },
        };
        let done = r.runs.len() - r.running();
        if r.finished() {
            let s = Summary::new(&r.original, &r.answers());
            self.message = format!(
                "resample done: answer changed in {} of {} (importance {:.2})",
                s.changed,
                s.total,
                s.importance()
            );
            r.summary = Some(s);
        } else {
            self.message = format!("resample: {done} of {} continuations done", r.runs.len());
        }
        true
    }

    /// Keys in the resample panel: ↑/↓ pick a continuation, Enter compares it with the
    /// parent, X cancels, Esc hides the panel (the continuations keep running).
    pub(super) fn resample_panel_key(&mut self, action: &super::Action) {
        use super::Action;
        let Some(r) = &mut self.resample else { return };
        let n = r.runs.len();
        match action {
            Action::FieldNext if n > 0 => r.sel = (r.sel + 1) % n,
            Action::FieldPrev if n > 0 => r.sel = (r.sel + n - 1) % n,
            Action::Input('X' | 'x') => {
                let k = self.jobs.cancel_all();
                self.message = format!("cancelling {k} continuation(s)");
            }
            Action::InputSubmit => {
                let (parent, at) = (r.parent, r.at as usize);
                let Some(&b) = r.runs.get(r.sel) else { return };
                match self.open_compare(parent, b, Some(at)) {
                    Ok(()) => self.overlay = None,
                    Err(e) => self.message = format!("could not compare: {e}"),
                }
            }
            _ => {}
        }
    }
}
