//! Scoring a recorded run under a local model (`thinkdbg score`, the TUI's "score with the
//! model"): the run's text forced token by token through one chunked prefill, stored as a child
//! run (`RunSource::Scored`) holding that model's logprob, entropy, top-k and routing for every
//! token. Any run can be scored: embedded, recorded from a server, or imported; the parent's
//! own token ids are used when they come from the same model. Shared by the CLI and the TUI.
//! Depends on `engine`, `store`, `record`, `replay` and `trace`; never on `cli` or `tui`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::engine::generate::Prompt;
use crate::engine::score::{ScoreInput, ScorePlan, ScoreRequest};
use crate::engine::{Engine, RunSummary};
use crate::record::{Event, Recorder, Scored as ScoredBy, ScoredTokens, Tee};
use crate::runs::replay::{Error, Parent, Result};
use crate::store::{writer, Store, Target};
use crate::trace::{RoutingDetail, Run, RunId, RunSource, RunStatus, StopReason};

/// How to score.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScoreOptions {
    /// The scored run's label (default: `scored by MODEL`).
    pub label: Option<String>,
    /// Alternatives kept per step (default: as many as the parent kept, at least 5).
    pub top_logprobs: Option<usize>,
    /// Tokens per forward pass (0: the engine's default).
    pub chunk: usize,
    pub routing: RoutingDetail,
}

/// What a score produced.
#[derive(Debug, Clone)]
pub struct Scored {
    pub run: RunId,
    pub plan: ScorePlan,
    pub summary: RunSummary,
    pub steps_written: usize,
}

/// The run to score and its steps, whatever its source.
pub fn load(store: &Store, id: &str) -> Result<Parent> {
    let run_id = match store.resolve(id)? {
        Target::Run(r) => r,
        Target::Session(_) => {
            return Err(Error::Invalid(format!("'{id}' is a session; give a run id")))
        }
    };
    load_id(store, run_id)
}

pub fn load_id(store: &Store, run_id: RunId) -> Result<Parent> {
    let Some(run) = store.run(run_id)? else {
        return Err(Error::Invalid(format!("no run '{run_id}'")));
    };
    let read = store.steps(run_id)?;
    if let Some(e) = read.errors.into_iter().next() {
        return Err(e.into());
    }
    if read.steps.is_empty() {
        return Err(Error::Invalid(format!("run '{run_id}' has no steps to score")));
    }
    Ok(Parent { run, steps: read.steps })
}

/// The engine request that scores `parent`.
pub fn request(parent: &Parent, opts: &ScoreOptions) -> Result<ScoreRequest> {
    let prompt = if !parent.run.messages.is_empty() {
        Prompt::Chat(parent.run.messages.clone())
    } else if !parent.run.rendered_prompt.is_empty() {
        Prompt::Raw(parent.run.rendered_prompt.clone())
    } else {
        return Err(Error::Invalid(format!("run '{}' recorded no prompt", parent.run.id)));
    };
    let kept = parent.steps.iter().map(|s| s.top.len()).max().unwrap_or(0);
    Ok(ScoreRequest {
        prompt,
        steps: parent
            .steps
            .iter()
            .map(|s| ScoreInput { token_id: s.token_id, text: s.text.clone(), phase: s.phase })
            .collect(),
        fingerprint: parent.run.model.fingerprint.clone(),
        top_logprobs: opts.top_logprobs.unwrap_or(kept.max(5)),
        routing: opts.routing,
        chunk: opts.chunk,
        stop: parent.run.stop.unwrap_or(StopReason::MaxTokens),
    })
}

/// Scores `parent` on `engine` (on the engine's thread): plans the token sequence, creates the
/// child run in the parent's session, records every step into the store (and to `watch`, a
/// UI's recorder, when given). Nothing is stored when the plan fails (bad input).
pub fn score(
    engine: &mut Engine,
    store: &Arc<Store>,
    parent: &Parent,
    opts: &ScoreOptions,
    watch: Option<Box<dyn Recorder>>,
    cancel: &AtomicBool,
) -> Result<Scored> {
    let req = request(parent, opts)?;
    let plan = engine.plan_score(&req)?;
    let run = child(store, parent, opts)?;
    record(engine, store, run, &req, plan, watch, cancel)
}

/// The scored run, created in the parent's session before the model is at hand (a UI shows it
/// at once); `score_child` fills it.
pub fn child(store: &Store, parent: &Parent, opts: &ScoreOptions) -> Result<Run> {
    let label = opts.label.clone().unwrap_or_else(|| "scored".into());
    let mut run = parent.child(store, 0, label, parent.run.sampler.clone())?;
    run.source =
        RunSource::Scored(ScoredBy { tokens: ScoredTokens::ParentIds, parent_steps: Vec::new() });
    store.put_run(&run)?;
    Ok(run)
}

/// Scores `parent` into `run` (made by `child`); a plan that fails marks it failed.
pub fn score_child(
    engine: &mut Engine,
    store: &Arc<Store>,
    mut run: Run,
    parent: &Parent,
    opts: &ScoreOptions,
    mut watch: Option<Box<dyn Recorder>>,
    cancel: &AtomicBool,
) -> Result<Scored> {
    let planned = request(parent, opts).and_then(|req| Ok((engine.plan_score(&req)?, req)));
    match planned {
        Ok((plan, req)) => record(engine, store, run, &req, plan, watch, cancel),
        Err(e) => {
            run.status = RunStatus::Failed(e.to_string());
            store.put_run(&run)?;
            if let Some(w) = watch.as_mut() {
                w.record(Event::Failed(e.to_string()));
            }
            Err(e)
        }
    }
}

fn record(
    engine: &mut Engine,
    store: &Arc<Store>,
    mut run: Run,
    req: &ScoreRequest,
    plan: ScorePlan,
    watch: Option<Box<dyn Recorder>>,
    cancel: &AtomicBool,
) -> Result<Scored> {
    if run.label.as_deref().is_none_or(|l| l == "scored") {
        run.label = Some(format!("scored by {}", engine.info.name));
    }
    run.sampler.max_tokens = plan.ids.len();
    run.source = RunSource::Scored(ScoredBy {
        tokens: plan.tokens,
        parent_steps: plan.parent_steps.clone(),
    });
    run.model = engine.info.clone();
    let id = run.id;
    let (store_rec, handle) = writer::start(store.clone(), run)?;
    let mut recorder: Box<dyn Recorder> = match watch {
        Some(w) => Box::new(Tee(vec![Box::new(store_rec), w])),
        None => Box::new(store_rec),
    };
    recorder.record(Event::Loaded {
        model: engine.info.clone(),
        load_ms: engine.load_ms,
        warnings: engine.warnings.clone(),
    });
    let outcome = engine.score(req, &plan, recorder.as_mut(), cancel);
    if let Err(e) = &outcome {
        recorder.record(Event::Failed(e.to_string()));
    }
    drop(recorder);
    let written =
        handle.join().map_err(|_| Error::Invalid("the store writer panicked".into()))??;
    let summary = outcome?;
    Ok(Scored { run: id, plan, summary, steps_written: written.steps_written })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Message, Phase, Run, SamplerSpec, SessionId, Step, UNKNOWN_TOKEN};

    fn parent(messages: Vec<Message>, rendered: &str) -> Parent {
        let mut run = Run::new_recording(RunId(1), SessionId(1), SamplerSpec::default());
        run.messages = messages;
        run.rendered_prompt = rendered.into();
        let step = Step {
            index: 0,
            token_id: UNKNOWN_TOKEN,
            text: "hi".into(),
            logprob: f32::NAN,
            entropy: f32::NAN,
            phase: Phase::Answer,
            t_us: 0,
            top: Vec::new(),
        };
        Parent { run, steps: vec![step] }
    }

    #[test]
    fn the_prompt_comes_from_the_messages_else_the_raw_prompt() {
        let msg = Message { role: "user".into(), content: "2+2?".into() };
        let req = request(&parent(vec![msg.clone()], "x"), &ScoreOptions::default()).unwrap();
        assert_eq!(req.prompt, Prompt::Chat(vec![msg]));
        assert_eq!(req.top_logprobs, 5);
        let req = request(&parent(vec![], "raw"), &ScoreOptions::default()).unwrap();
        assert_eq!(req.prompt, Prompt::Raw("raw".into()));
        let err = request(&parent(vec![], ""), &ScoreOptions::default()).unwrap_err();
        assert!(err.to_string().contains("recorded no prompt"), "{err}");
    }
}
