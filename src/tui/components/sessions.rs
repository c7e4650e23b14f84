//! The sessions screen: sessions and their runs (label, model, tokens, status, flags, date),
//! filtered by what is typed, and a summary of the selected run with an entropy sparkline.
//! Owns the run list read from the store, the filter and the selection; the selected run is
//! shown by the viewer (`Effect::Show`). May import `components`, `run_view`, `provenance`,
//! `theme`, `action`, `error` and the crate's `store`, `trace` and `tui::text`.

use std::sync::Arc;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Sparkline, Wrap};
use ratatui::Frame;

use super::ctx::Ctx;
use super::widgets::{buckets, date, fit};
use super::Effect;
use crate::store::Store;
use crate::trace::{Run, RunId, RunStatus, Session};
use crate::tui::action::Action;
use crate::tui::error::Result;
use crate::tui::run_view::RunView;
use crate::tui::text::{shown, shown_lines};

/// One run in the sessions list.
#[derive(Debug, Clone)]
pub struct RunEntry {
    pub run: Run,
    pub steps: usize,
    pub flags: usize,
    /// The run's text, loaded the first time the list is filtered.
    pub text: Option<String>,
}

fn status(s: &RunStatus) -> &'static str {
    s.as_str()
}

/// The sessions screen's state.
#[derive(Debug, Default)]
pub struct Sessions {
    pub sessions: Vec<Session>,
    pub runs: Vec<RunEntry>,
    /// Indexes into `runs` that pass the filter, grouped by session.
    pub visible: Vec<usize>,
    pub selected: usize,
    pub filter: String,
    /// The run marked as side A of the next comparison (`m`), badged `A` in the list.
    pub marked: Option<RunId>,
}

impl Sessions {
    /// Reads the session list from the store. Returns a message when some runs could not be
    /// read.
    pub fn reload(&mut self, store: &Store) -> Result<Option<String>> {
        let mut sessions = store.sessions()?;
        sessions.sort_by_key(|s| s.created_at);
        let (runs, errors) = store.runs_lossy()?;
        let message =
            (!errors.is_empty()).then(|| format!("{} run(s) could not be read", errors.len()));
        self.runs.clear();
        for s in &sessions {
            for id in &s.runs {
                if let Some(r) = runs.iter().find(|r| r.id == *id) {
                    let flags = store.flags(r.id).map(|f| f.len()).unwrap_or(0);
                    self.runs.push(RunEntry {
                        run: r.clone(),
                        steps: store.step_count(r.id),
                        flags,
                        text: None,
                    });
                }
            }
        }
        self.sessions = sessions;
        self.refilter(Some(store));
        Ok(message)
    }

    pub fn selected_run(&self) -> Option<&RunEntry> {
        self.visible.get(self.selected).and_then(|&i| self.runs.get(i))
    }

    pub fn session_of(&self, run: &Run) -> Option<&Session> {
        self.sessions.iter().find(|s| s.id == run.session)
    }

    /// The row of run `id` among the visible runs.
    pub fn row_of(&self, id: RunId) -> Option<usize> {
        self.visible.iter().position(|&i| self.runs[i].run.id == id)
    }

    /// Filters the list by `filter` (reading the runs' text from the store the first time)
    /// and shows its first run.
    pub fn set_filter(&mut self, filter: String, store: Option<&Arc<Store>>) -> Effect {
        self.filter = filter;
        self.refilter(store.map(|s| &**s));
        self.selected = 0;
        self.select(0)
    }

    fn refilter(&mut self, store: Option<&Store>) {
        let needle = self.filter.to_lowercase();
        if !needle.is_empty() {
            if let Some(store) = store {
                for e in self.runs.iter_mut().filter(|e| e.text.is_none()) {
                    let steps = store.steps(e.run.id).map(|r| r.steps).unwrap_or_default();
                    e.text = Some(steps.iter().map(|s| s.text.as_str()).collect());
                }
            }
        }
        let sessions = &self.sessions;
        self.visible = (0..self.runs.len())
            .filter(|&i| {
                let e = &self.runs[i];
                if needle.is_empty() {
                    return true;
                }
                let title = sessions
                    .iter()
                    .find(|s| s.id == e.run.session)
                    .map_or(String::new(), |s| s.title.to_lowercase());
                title.contains(&needle)
                    || e.run.label.as_deref().unwrap_or("").to_lowercase().contains(&needle)
                    || e.run.model.name.to_lowercase().contains(&needle)
                    || e.text.as_deref().unwrap_or("").to_lowercase().contains(&needle)
            })
            .collect();
    }

    /// Selects row `i` of the visible runs and asks for that run to be shown.
    pub fn select(&mut self, i: usize) -> Effect {
        if self.visible.is_empty() {
            self.selected = 0;
            return Effect::None;
        }
        self.selected = i.min(self.visible.len() - 1);
        self.selected_run().map_or(Effect::None, |e| Effect::Show(e.run.id))
    }

    /// Keys on the sessions screen.
    pub fn update(&mut self, action: Action, cx: &Ctx) -> Effect {
        let page = cx.trace_height().max(2) / 2;
        match action {
            Action::Down => self.select(self.selected + 1),
            Action::Up => self.select(self.selected.saturating_sub(1)),
            Action::PageDown => self.select(self.selected + page),
            Action::PageUp => self.select(self.selected.saturating_sub(page)),
            Action::Start => self.select(0),
            Action::End => self.select(self.visible.len().saturating_sub(1)),
            Action::Open => Effect::OpenSelected,
            Action::Search => Effect::Prompt(self.filter.clone()),
            _ => Effect::None,
        }
    }

    /// The list and, beside it, the summary of `view` (the run shown).
    pub fn draw(&self, f: &mut Frame, area: Rect, cx: &Ctx, view: Option<&RunView>) {
        let [list, summary] =
            Layout::horizontal([Constraint::Percentage(58), Constraint::Percentage(42)])
                .areas(area);
        self.draw_list(f, list, cx);
        self.draw_summary(f, summary, cx, view);
    }

    fn draw_list(&self, f: &mut Frame, area: Rect, cx: &Ctx) {
        let t = cx.theme;
        let mut title = if self.filter.is_empty() {
            format!(" Sessions · {} runs ", self.runs.len())
        } else {
            format!(
                " Sessions · {} of {} runs match '{}' ",
                self.visible.len(),
                self.runs.len(),
                shown(&self.filter)
            )
        };
        if let Some(m) = self.marked {
            title.push_str(&format!("· A = {m}, marked (C compares) "));
        }
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(t.get("ui.border.focus"))
            .title(Span::styled(title, t.get("ui.title")));
        let inner = block.inner(area);
        let w = usize::from(inner.width);
        let mut lines: Vec<Line> = Vec::new();
        let mut sel_row = 0;
        let mut last_session = None;
        for (row, &i) in self.visible.iter().enumerate() {
            let e = &self.runs[i];
            if last_session != Some(e.run.session) {
                last_session = Some(e.run.session);
                let title = self.session_of(&e.run).map_or("", |s| s.title.as_str());
                let head = format!("{} {}", e.run.session, shown(title));
                lines.push(Line::from(Span::styled(fit(&head, w), t.get("ui.title"))));
            }
            if row == self.selected {
                sel_row = lines.len();
            }
            let label = e.run.label.as_deref().unwrap_or("-");
            let when = date(e.run.created_at);
            let label = fit(&shown(label), 12);
            // Narrow lists drop the model and the date before the counts.
            let badge = if self.marked == Some(e.run.id) { "A " } else { "  " };
            let text = if w >= 72 {
                format!(
                    "{badge}{:<5} {label} {} {:>6} tok {:<11} {:>3} flags  {}",
                    e.run.id.to_string(),
                    fit(&shown(&model_column(&e.run)), 12),
                    e.steps,
                    status(&e.run.status),
                    e.flags,
                    when.get(5..).unwrap_or(&when)
                )
            } else {
                // No model column: an imported run's badge says it was imported.
                let imported = matches!(e.run.source, crate::trace::RunSource::File { .. });
                let badge = if imported && badge == "  " { "⇣ " } else { badge };
                format!(
                    "{badge}{:<5} {label} {:>6} {:<9} {:>3}▲",
                    e.run.id.to_string(),
                    e.steps,
                    status(&e.run.status),
                    e.flags
                )
            };
            let style = if row == self.selected { t.get("ui.selection") } else { t.get("ui.text") };
            lines.push(Line::from(Span::styled(fit(&text, w), style)));
        }
        if lines.is_empty() {
            let msg = if self.filter.is_empty() {
                "No sessions yet. Record one with `thinkdbg record PROMPT`, or start with\n`thinkdbg --import-samples`."
            } else {
                "No run matches the filter (Esc clears it)."
            };
            lines.push(Line::from(Span::styled(msg, t.get("ui.dim"))));
        }
        let h = usize::from(inner.height);
        let skip = (sel_row + 1).saturating_sub(h);
        let lines: Vec<Line> = lines.into_iter().skip(skip).collect();
        f.render_widget(Paragraph::new(lines).block(block), area);
    }

    fn draw_summary(&self, f: &mut Frame, area: Rect, cx: &Ctx, view: Option<&RunView>) {
        let t = cx.theme;
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(t.get("ui.border"))
            .title(Span::styled(" Run ", t.get("ui.title")));
        let (Some(e), Some(v)) = (self.selected_run(), view) else {
            f.render_widget(Paragraph::new("").block(block), area);
            return;
        };
        let inner = block.inner(area);
        f.render_widget(block, area);
        let [text_area, spark_title, spark_area] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(1), Constraint::Length(3)])
                .areas(inner);
        let r = &v.run;
        let dim = t.get("ui.dim");
        let txt = t.get("ui.text");
        let kv = |k: &str, val: String| {
            Line::from(vec![Span::styled(format!("{k:<9}"), dim), Span::styled(val, txt)])
        };
        let prompt = r
            .messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map_or(r.rendered_prompt.as_str(), |m| m.content.as_str());
        let s = &r.sampler;
        let think = v.steps.iter().filter(|s| s.phase == crate::trace::Phase::Think).count();
        let known: Vec<f32> = v.steps.iter().map(|s| s.entropy).filter(|h| !h.is_nan()).collect();
        let mean_h = match known.len() {
            0 if !v.is_empty() => "unknown (the source gave top-k only)".to_string(),
            0 => "mean 0.00 nats".to_string(),
            n => format!("mean {:.2} nats", known.iter().sum::<f32>() / n as f32),
        };
        let mut lines = vec![
            kv("run", format!("{} {}", r.id, shown(r.label.as_deref().unwrap_or("")))),
            kv(
                "model",
                if r.model.arch.is_empty() {
                    shown(&r.model.name).into_owned()
                } else {
                    format!(
                        "{} ({}, {})",
                        shown(&r.model.name),
                        shown(&r.model.arch),
                        shown(&r.model.quant)
                    )
                },
            ),
            kv(
                "sampler",
                format!("T {} top-k {} top-p {} seed {}", s.temperature, s.top_k, s.top_p, s.seed),
            ),
            kv(
                "status",
                match &r.status {
                    crate::trace::RunStatus::Failed(msg) => {
                        format!("failed: {}", shown(msg))
                    }
                    s => format!("{} · stop {}", status(s), r.stop.map_or("-", |x| x.as_str())),
                },
            ),
            kv(
                "tokens",
                format!(
                    "{} ({} think, {} answer) · {:.1} tok/s",
                    e.steps,
                    think,
                    v.len() - think,
                    r.timings.decode_tok_s()
                ),
            ),
        ];
        lines.extend(crate::tui::provenance::rows(r).into_iter().map(|(k, val)| kv(k, val)));
        lines.extend([
            kv("entropy", mean_h),
            kv("flags", e.flags.to_string()),
            kv("date", date(r.created_at)),
            Line::from(Span::styled("prompt", dim)),
        ]);
        for l in shown_lines(prompt) {
            lines.push(Line::from(Span::styled(l, txt)));
        }
        f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), text_area);
        f.render_widget(Paragraph::new(Span::styled("entropy over the run", dim)), spark_title);
        let w = usize::from(spark_area.width);
        let vals: Vec<f32> = if v.len() <= w {
            v.steps.iter().map(|s| s.entropy).collect()
        } else {
            buckets(v.steps.iter().map(|s| s.entropy), w)
        };
        let data: Vec<u64> = vals.iter().map(|x| (x * 100.0) as u64).collect();
        f.render_widget(Sparkline::default().data(&data).style(t.get("spark.entropy")), spark_area);
    }
}

/// The model column of the run list: an imported run shows `⇣` and its format before the
/// model its file names.
fn model_column(run: &crate::trace::Run) -> String {
    match &run.source {
        crate::trace::RunSource::File { format, .. } => format!("⇣{format} {}", run.model.name),
        _ => run.model.name.clone(),
    }
}
