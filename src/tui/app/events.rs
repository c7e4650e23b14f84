//! The job channel's events in `App`: the model load, the steps of the run followed live
//! (to the viewer), a resample's continuations (to its panel), and a run's end: its outcome
//! stored, analysed, the lists re-read with the view kept, and a fork compared with its
//! parent. Every live run reaches here as `Action::Job`, whoever started it.

use super::App;
use crate::analysis::AnalysisConfig;
use crate::record::Event;
use crate::trace::RunId;
use crate::tui::jobs::{Ended, JobEvent};

impl App {
    /// An event from a run started in the UI (or the model load).
    pub(super) fn on_job(&mut self, ev: JobEvent) {
        let Some(id) = ev.run else {
            match ev.event {
                Event::Loading { done, total } => self.jobs.loading = Some((done, total)),
                Event::Loaded { model, load_ms, .. } => {
                    self.jobs.loading = None;
                    self.message = format!("loaded '{}' in {load_ms} ms", model.name);
                }
                Event::Failed(msg) => {
                    self.jobs.loading = None;
                    self.message = format!("model load failed: {msg}");
                }
                _ => {}
            }
            return;
        };
        if self.jobs.experiment.as_ref().is_some_and(|e| RunId(e.id) == id) {
            self.on_experiment(id.0, ev.event.is_end(), &ev.event);
            return;
        }
        let ended = ev.event.is_end();
        if let Some(r) = &mut self.resample {
            r.on_event(id, &ev.event);
        }
        if self.viewer.live == Some(id) {
            let h = self.trace_height();
            if let Some(m) = self.viewer.on_engine(ev.event.clone(), &self.theme.syntax, h) {
                self.message = m;
            }
        }
        if !ended {
            return;
        }
        let outcome = self.jobs.ended(id);
        let remote = outcome.as_ref().is_some_and(|(r, _)| r.remote);
        let started = self.started.iter().position(|s| s.run == id).map(|i| self.started.remove(i));
        let stored = matches!(outcome, Some((_, Ok(_))));
        let msg = match (&ev.event, outcome) {
            (_, Some((_, Err(e)))) => format!("run '{id}' could not be stored: {e}"),
            (_, Some((_, Ok(Ended { remote_summary: Some(m) })))) => m,
            (Event::Failed(m), _) => format!("run '{id}' failed: {m}"),
            (Event::Interrupted(m), _) => format!("run '{id}' interrupted: {m}"),
            (Event::Finished { stop, .. }, _) => {
                format!("run '{id}' finished ({}); C compares with its parent", stop.as_str())
            }
            _ => String::new(),
        };
        self.last_started = started;
        let analysis = if stored { self.analyse_ended(id) } else { None };
        self.refresh_keep_view();
        if remote && self.viewer.view.as_ref().is_some_and(|v| v.run.id == id) {
            // The server's provenance and routing were stored after the last step.
            let (cursor, top, mark) = (self.viewer.cursor, self.viewer.top_line, self.viewer.mark);
            match self.load_view(id) {
                Ok(v) => {
                    self.set_view(v);
                    self.viewer.cursor = cursor
                        .min(self.viewer.view.as_ref().map_or(0, |v| v.len().saturating_sub(1)));
                    self.viewer.top_line = top;
                    self.viewer.mark = mark;
                }
                Err(e) => self.message = e.to_string(),
            }
        }
        self.message = match analysis {
            Some(problem) => format!("{msg} ({problem})"),
            None => msg,
        };
        let store = self.store.clone();
        if let Some(m) =
            self.resample.as_mut().and_then(|r| r.ended(id, &ev.event, stored, store.as_deref()))
        {
            self.message = m;
            return;
        }
        if let Some(s) = started.filter(|s| s.fork && self.viewer.live == Some(id)) {
            if let Err(e) = self.open_compare(s.parent, s.run, Some(s.at as usize)) {
                self.message = format!("could not compare: {e}");
            }
        }
    }

    /// The experiment started from the UI: a sample ended (the table is built again, the
    /// selection kept), or the experiment stopped (what it did is said on the status line).
    fn on_experiment(&mut self, id: u64, ended: bool, event: &Event) {
        let store = self.store.clone();
        let mut msg = None;
        if ended {
            if let Some(e) = self.jobs.experiment_ended(id) {
                let (done, total) = e.progress.samples();
                let failed: usize = e
                    .progress
                    .variants
                    .iter()
                    .map(|v| v.failed.load(std::sync::atomic::Ordering::Relaxed))
                    .sum();
                let shown_id = crate::runs::experiment::runner::shown_id(id);
                let mut m = match event {
                    Event::Failed(err) => format!("experiment {shown_id} failed: {err}"),
                    Event::Finished { stop: crate::trace::StopReason::User, .. } => format!(
                        "experiment {shown_id} stopped: {done}/{total} samples kept; r resumes it"
                    ),
                    _ => format!("experiment {shown_id} finished: {done}/{total} samples"),
                };
                if failed > 0 {
                    m.push_str(&format!(" · {failed} did not complete (r redoes them)"));
                }
                msg = Some(m);
            }
            self.refresh_keep_view();
        }
        if let Some(s) = store {
            if self.experiments.current_id() == Some(id) {
                self.experiments.refresh(&s);
            }
        }
        if let Some(m) = msg {
            self.message = m;
        }
    }

    /// Analyses a run that ended (as `record` does), showing its flags if it is on screen.
    /// Returns what went wrong, if anything.
    fn analyse_ended(&mut self, id: RunId) -> Option<String> {
        let store = self.store.clone()?;
        let cfg = AnalysisConfig::load().unwrap_or_default();
        match crate::runs::analysis::ensure(&store, id, &cfg, true) {
            Ok(a) => {
                if let Some(v) = self.viewer.view.as_mut().filter(|v| v.run.id == id) {
                    v.flags = a.flags;
                }
                None
            }
            Err(e) => Some(format!("analysis failed: {e}")),
        }
    }

    /// Re-reads the run list (a run ended), keeping the current run, cursor and screen.
    pub(super) fn refresh_keep_view(&mut self) {
        let keep = self.viewer.view.as_ref().map(|v| v.run.id);
        let (cursor, top, screen) = (self.viewer.cursor, self.viewer.top_line, self.screen);
        // A run ending (e.g. a resample's continuation) must not end a visual selection.
        let (mark, flag_sel) = (self.viewer.mark, self.viewer.flag_sel);
        if let Err(e) = self.reload() {
            self.message = e.to_string();
            return;
        }
        if let Some(id) = keep {
            if let Some(i) = self.sessions.row_of(id) {
                self.select_row(i);
            }
        }
        self.screen = screen;
        self.viewer.top_line = top;
        self.viewer.cursor =
            cursor.min(self.viewer.view.as_ref().map_or(0, |v| v.len().saturating_sub(1)));
        if keep.is_some() && self.viewer.view.as_ref().map(|v| v.run.id) == keep {
            self.viewer.mark = mark.map(|m| m.min(self.viewer.len().saturating_sub(1)));
            self.viewer.flag_sel = flag_sel;
        }
    }
}
