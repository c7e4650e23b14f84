//! Reasoning-dynamics jobs on the engine thread: the logit lens of the inspector's layers
//! view and the answer-now probe.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::engine::generate::Prompt;
use crate::runs::replay::Parent;
use crate::store::Store;
use crate::trace::RunId;
use crate::tui::error::{Error, Result};
use crate::tui::text::shown;

use super::{Jobs, LensReply, Msg, ProbeReply};

impl Jobs {
    /// The run whose answer-now probe is on the engine thread, if any.
    pub fn probing(&self) -> Option<RunId> {
        self.probe.as_ref().map(|(r, _)| *r)
    }

    /// Runs the answer-now probe of `parent` (`runs::probe`) on the engine thread and keeps
    /// its result beside the run; the end comes back as `Action::ProbeDone`.
    pub fn start_probe(
        &mut self,
        store: &Arc<Store>,
        parent: Parent,
        cfg: crate::analysis::config::ProbeConfig,
    ) -> Result<usize> {
        use crate::runs::probe;
        if let Some(r) = self.probing() {
            return Err(Error::Job(format!("the probe of run '{r}' is still running")));
        }
        let path = self.path()?;
        parent.check_model(&path, false).map_err(|e| Error::Job(e.to_string()))?;
        let plan = probe::plan(&parent.steps, &cfg.close_think);
        let request =
            probe::request(&parent, &plan, &cfg).map_err(|e| Error::Job(e.to_string()))?;
        let n = plan.boundaries.len();
        let id = parent.run.id;
        let cancel = Arc::new(AtomicBool::new(false));
        let (store, flag, tx) = (store.clone(), cancel.clone(), self.tx.clone());
        self.engine_gen += 1;
        self.worker()?.submit_call(Box::new(
            move |engine: std::result::Result<&mut crate::engine::Engine, String>| {
                let result = engine.and_then(|engine| {
                    let outcome =
                        engine.probe(&request, &flag, &mut |_, _| {}).map_err(|e| e.to_string())?;
                    let p = probe::summarize(&parent.steps, &plan, &cfg, &outcome);
                    probe::keep(&store, id, &p).map_err(|e| e.to_string())?;
                    let settled = match p.answer_settled_step() {
                        Some(s) => format!("settled at reasoning step {s}"),
                        None => "never settled".to_string(),
                    };
                    Ok(shown(&format!(
                        "probe of run '{id}': {} boundaries, final answer '{}', {settled}",
                        p.points.len(),
                        p.final_answer
                    ))
                    .into_owned())
                });
                let _ = tx.send(Msg::Probe(ProbeReply { run: id, result }));
            },
        ));
        self.probe = Some((id, cancel));
        Ok(n)
    }

    /// Whether a lens job is on the engine thread (one at a time: the replay state travels
    /// with it).
    pub fn lens_busy(&self) -> bool {
        self.lens_busy
    }

    /// Computes the logit lens at `step` of `run` (`prompt` and its generated `tokens`) on the
    /// engine thread, loading the model first if nothing has yet. The replay of the run is
    /// kept, so the next step costs one token's forward pass; the reply comes back on the job
    /// channel as `Action::Lens`.
    pub fn start_lens(
        &mut self,
        run: RunId,
        prompt: Prompt,
        tokens: Vec<u32>,
        step: usize,
        top: usize,
    ) -> Result<()> {
        if self.lens_busy {
            return Err(Error::Job("the lens is already computing".into()));
        }
        let state = self.lens.take().filter(|(r, _)| *r == run).map(|(_, st)| st);
        let (tx, gen) = (self.tx.clone(), self.engine_gen);
        self.worker()?.submit_call(Box::new(
            move |engine: std::result::Result<&mut crate::engine::Engine, String>| {
                let mut state = state;
                let result = engine.and_then(|engine| {
                    let mut st = match state.take() {
                        Some(st) => st,
                        None => engine.lens_begin(&prompt, &tokens).map_err(|e| e.to_string())?,
                    };
                    let layers = engine.lens_at(&mut st, step, top).map_err(|e| e.to_string());
                    if layers.is_ok() {
                        state = Some(st);
                    }
                    layers
                });
                let reply = LensReply { run, step, result };
                let _ = tx.send(Msg::Lens(Box::new(reply), state, gen));
            },
        ));
        self.lens_busy = true;
        Ok(())
    }
}
