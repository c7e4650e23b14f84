//! The inspector's layers view in `App`: `L` toggles it, and while it is open every move of
//! the cursor asks the engine thread (`Jobs::start_lens`) for the lens at the cursor's step
//! unless it was computed already; one job is in flight at a time, and when its reply comes
//! the step now at the cursor is asked for next. Before the first job on a run the UI's model
//! is checked to be the one the run was recorded with. `A` runs the answer-now probe of the
//! run shown on the same engine thread; when it ends its row appears on the timeline.

use super::App;
use crate::runs::replay::Parent;
use crate::tui::components::viewer::lens::LENS_TOP;
use crate::tui::components::Screen;
use crate::tui::jobs::{LensReply, ProbeReply};

impl App {
    /// `L`: the layers view on or off.
    pub(super) fn toggle_lens(&mut self) {
        if !matches!(self.screen, Screen::Trace | Screen::Routing) {
            return;
        }
        let lens = &mut self.viewer.lens;
        lens.open = !lens.open;
        if lens.open {
            // Opening again retries what failed.
            lens.error = None;
            lens.checked = false;
            self.message = "layers view: each block's prediction of the token at the cursor".into();
        } else {
            self.message = "layers view closed".into();
        }
    }

    /// Starts the lens job for the cursor's step if the layers view is open and needs it.
    pub(super) fn request_lens(&mut self) {
        if !self.viewer.lens.open || self.jobs.lens_busy() {
            return;
        }
        let Some(v) = &self.viewer.view else { return };
        let (run, step) = (v.run.id, self.viewer.cursor);
        if step >= v.steps.len() {
            return;
        }
        self.viewer.lens.switch_to(run);
        if !self.viewer.lens.wants(run, step) {
            return;
        }
        if let Err(e) = self.check_lens_model(run) {
            self.viewer.lens.error = Some(e);
            return;
        }
        let Some(v) = &self.viewer.view else { return };
        let prompt = Parent { run: v.run.clone(), steps: Vec::new() }.prompt();
        let tokens: Vec<u32> = v.steps.iter().map(|s| s.token_id).collect();
        let started = prompt.map_err(|e| e.to_string()).and_then(|p| {
            self.jobs.start_lens(run, p, tokens, step, LENS_TOP).map_err(|e| e.to_string())
        });
        match started {
            Ok(()) => {
                self.viewer.lens.computing = Some(step);
                if self.jobs.loading.is_some() {
                    self.message = "loading the model for the layers view…".into();
                }
            }
            Err(e) => self.viewer.lens.error = Some(e),
        }
    }

    /// Whether the lens can run on `run` with the UI's model (checked once per run).
    fn check_lens_model(&mut self, run: crate::trace::RunId) -> Result<(), String> {
        if self.viewer.lens.checked {
            return Ok(());
        }
        if self.jobs.running.iter().any(|r| r.run == run) {
            return Err(format!(
                "run '{run}' is still recording; the layers view works once it ends"
            ));
        }
        let store =
            self.store.clone().ok_or_else(|| "no store to read the run from".to_string())?;
        let parent =
            Parent::load_id(&store, run).map_err(|e| format!("no layers for this run: {e}"))?;
        if parent.run.model.fingerprint.is_empty() {
            return Err(format!(
                "run '{run}' records no model fingerprint (imported?); the layers view needs the \
                 model it was recorded with"
            ));
        }
        self.jobs
            .check_model(&parent)
            .map_err(|e| format!("the UI's model is not this run's: {e}"))?;
        self.viewer.lens.checked = true;
        Ok(())
    }

    /// The lens at a step arrived: kept for the view, then the cursor's step is asked for.
    pub(super) fn on_lens(&mut self, reply: LensReply) {
        if let Err(e) = &reply.result {
            self.message = format!("layers view: {e}");
        }
        self.viewer.lens.done(reply.run, reply.step, reply.result);
        self.request_lens();
    }

    /// `A`: the answer-now probe of the run shown, as a job.
    pub(super) fn start_probe(&mut self) {
        let Some(id) = self.viewer.view.as_ref().map(|v| v.run.id) else {
            self.message = "no run to probe".into();
            return;
        };
        let result = (|| -> Result<usize, String> {
            if self.jobs.running.iter().any(|r| r.run == id) {
                return Err("it is still recording".into());
            }
            let store = self.store.clone().ok_or_else(|| "no store".to_string())?;
            let parent = Parent::load_id(&store, id).map_err(|e| e.to_string())?;
            let cfg = crate::analysis::AnalysisConfig::load().unwrap_or_default().probe;
            self.jobs.start_probe(&store, parent, cfg).map_err(|e| e.to_string())
        })();
        self.message = match result {
            Ok(n) => format!("probing run '{id}' at {n} boundaries (X cancels)"),
            Err(e) => format!("could not probe '{id}': {e}"),
        };
    }

    /// The probe ended: its row is read into the view if the run is on screen.
    pub(super) fn on_probe(&mut self, reply: ProbeReply) {
        match reply.result {
            Ok(m) => {
                self.message = m;
                let store = self.store.clone();
                if let (Some(v), Some(store)) = (self.viewer.view.as_mut(), store) {
                    if v.run.id == reply.run {
                        match crate::runs::probe::stored(&store, reply.run) {
                            Ok(p) => v.dynamics.probe = p,
                            Err(e) => self.message = format!("could not read the probe: {e}"),
                        }
                    }
                }
            }
            Err(e) => self.message = format!("probe of run '{}' failed: {e}", reply.run),
        }
    }
}
