//! The experiments screen: the store's experiments (`[` / `]` pick one), the selected one's
//! variants × metrics table with 95% intervals, and each variant against the first with the
//! differences whose interval leaves out zero highlighted. `enter` lists the selected variant's
//! runs (sortable by sample, flags, answer or tokens with `s`); `enter` on a run opens it in the
//! trace view, `C` compares it with its paired sample (same seed) in the first variant (in the
//! second, for a run of the first). The report is built from the store when the screen is
//! opened (`reload`), never while drawing. May import `components` and the crate's `runs`,
//! `store`, `analysis` and `tui::text`.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use super::ctx::Ctx;
use super::widgets::fit;
use super::{Effect, Screen};
use crate::runs::experiment::export::comparison_rows;
use crate::runs::experiment::report::{Sample, RATES};
use crate::runs::experiment::{Report, Spec};
use crate::store::experiments::ExperimentRecord;
use crate::store::Store;
use crate::tui::action::Action;
use crate::tui::text::shown;

/// How the run list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    #[default]
    Sample,
    Flags,
    Answer,
    Tokens,
}

impl SortBy {
    fn next(self) -> SortBy {
        match self {
            SortBy::Sample => SortBy::Flags,
            SortBy::Flags => SortBy::Answer,
            SortBy::Answer => SortBy::Tokens,
            SortBy::Tokens => SortBy::Sample,
        }
    }

    fn name(self) -> &'static str {
        match self {
            SortBy::Sample => "sample",
            SortBy::Flags => "flags",
            SortBy::Answer => "answer",
            SortBy::Tokens => "tokens",
        }
    }
}

#[derive(Debug, Default)]
pub struct Experiments {
    pub list: Vec<ExperimentRecord>,
    /// Index into `list` of the experiment shown.
    pub current: usize,
    pub report: Option<Report>,
    /// Why the report could not be built.
    pub problem: Option<String>,
    /// The variant selected in the table.
    pub variant: usize,
    /// Whether the selected variant's runs are listed (after `enter`).
    pub listing: bool,
    pub run: usize,
    pub sort: SortBy,
}

impl Experiments {
    /// Reads the experiments and builds the report of the one shown (the newest at first).
    pub fn reload(&mut self, store: &Store) {
        self.listing = false;
        match store.experiments() {
            Ok(list) => {
                if self.list.len() != list.len() {
                    self.current = list.len().saturating_sub(1);
                }
                self.list = list;
            }
            Err(e) => {
                self.problem = Some(format!("could not read the experiments: {e}"));
                return;
            }
        }
        self.build(store);
    }

    /// Shows the experiment `id` (one just started), keeping the selected variant.
    pub fn show(&mut self, id: u64) {
        if let Some(i) = self.list.iter().position(|e| e.id == id) {
            self.current = i;
        }
    }

    /// Builds the report of the experiment shown again (a sample ended), keeping the
    /// selected variant, the run list and the selected run.
    pub fn refresh(&mut self, store: &Store) {
        let (listing, run) = (self.listing, self.run);
        match store.experiments() {
            Ok(list) => self.list = list,
            Err(e) => {
                self.problem = Some(format!("could not read the experiments: {e}"));
                return;
            }
        }
        self.build(store);
        self.listing = listing;
        self.run = run.min(self.sorted().len().saturating_sub(1));
    }

    /// The id of the experiment shown.
    pub fn current_id(&self) -> Option<u64> {
        self.list.get(self.current).map(|e| e.id)
    }

    /// The spec path the experiment shown was started from.
    pub fn current_spec_path(&self) -> Option<&str> {
        self.list.get(self.current).map(|e| e.spec_path.as_str())
    }

    fn build(&mut self, store: &Store) {
        self.report = None;
        self.problem = None;
        let Some(record) = self.list.get(self.current) else { return };
        let cfg = crate::analysis::AnalysisConfig::load().unwrap_or_default();
        let built = Spec::parse(&record.spec)
            .and_then(|spec| Report::build(store, record, &spec, &cfg))
            .map_err(|e| e.to_string());
        match built {
            Ok(r) => {
                self.variant = self.variant.min(r.variants.len().saturating_sub(1));
                self.report = Some(r);
            }
            Err(e) => self.problem = Some(e),
        }
        self.run = 0;
    }

    /// The selected variant's samples in the list's order.
    pub fn sorted(&self) -> Vec<&Sample> {
        let Some(v) = self.report.as_ref().and_then(|r| r.variants.get(self.variant)) else {
            return Vec::new();
        };
        let mut s: Vec<&Sample> = v.samples.iter().collect();
        let flags = |x: &Sample| x.flags.iter().map(|(_, n)| n).sum::<usize>();
        match self.sort {
            SortBy::Sample => s.sort_by_key(|x| x.sample),
            SortBy::Flags => s.sort_by_key(|x| (std::cmp::Reverse(flags(x)), x.sample)),
            SortBy::Answer => {
                s.sort_by(|a, b| a.answer.cmp(&b.answer).then(a.sample.cmp(&b.sample)))
            }
            SortBy::Tokens => s.sort_by_key(|x| (std::cmp::Reverse(x.tokens), x.sample)),
        }
        s
    }

    pub fn update(&mut self, action: Action, store: Option<&std::sync::Arc<Store>>) -> Effect {
        let Some(report) = &self.report else {
            return match action {
                Action::NextLayer | Action::PrevLayer => self.switch(action, store),
                _ => Effect::None,
            };
        };
        let variants = report.variants.len();
        match action {
            Action::Up if self.listing => self.run = self.run.saturating_sub(1),
            Action::Down if self.listing => {
                self.run = (self.run + 1).min(self.sorted().len().saturating_sub(1))
            }
            Action::Up => self.variant = self.variant.saturating_sub(1),
            Action::Down => self.variant = (self.variant + 1).min(variants.saturating_sub(1)),
            Action::Open if self.listing => {
                if let Some(s) = self.sorted().get(self.run) {
                    let id = s.run;
                    return Effect::Show(id);
                }
            }
            Action::Open => {
                self.listing = true;
                self.run = 0;
            }
            Action::Back if self.listing => self.listing = false,
            Action::Back => return Effect::Screen(Screen::Sessions),
            Action::CycleSort => {
                self.sort = self.sort.next();
                return Effect::Message(format!("runs sorted by {}", self.sort.name()));
            }
            Action::Compare => return self.compare_paired(),
            Action::NextLayer | Action::PrevLayer => return self.switch(action, store),
            _ => {}
        }
        Effect::None
    }

    /// `]` / `[`: the next or previous experiment.
    fn switch(&mut self, action: Action, store: Option<&std::sync::Arc<Store>>) -> Effect {
        let n = self.list.len();
        if n < 2 {
            return Effect::Message("no other experiment in this store".into());
        }
        self.current = if action == Action::NextLayer {
            (self.current + 1) % n
        } else {
            (self.current + n - 1) % n
        };
        self.listing = false;
        if let Some(s) = store {
            self.build(s);
        }
        Effect::None
    }

    /// The selected run and its paired sample (same seed) in the first variant, or in the
    /// second for a run of the first.
    fn compare_paired(&self) -> Effect {
        let Some(report) = &self.report else { return Effect::None };
        if !self.listing {
            return Effect::Message(
                "enter lists a variant's runs; C compares one with its pair".into(),
            );
        }
        let Some(s) = self.sorted().get(self.run).copied() else { return Effect::None };
        let other = if self.variant == 0 { 1 } else { 0 };
        let Some(o) = report.variants.get(other) else { return Effect::None };
        match o.samples.iter().find(|x| x.sample == s.sample) {
            Some(p) => Effect::Compare { a: p.run, b: s.run, at: None },
            None => Effect::Message(format!(
                "sample {} of '{}' did not complete: nothing to compare with",
                s.sample,
                shown(&o.name)
            )),
        }
    }

    pub fn draw(&self, f: &mut Frame, area: Rect, cx: &Ctx) {
        let t = cx.theme;
        let title = match self.list.get(self.current) {
            Some(e) => format!(
                " Experiment e{} {} ({} of {}, [ ] switch) ",
                e.id,
                shown(&e.name),
                self.current + 1,
                self.list.len()
            ),
            None => " Experiments ".into(),
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(t.get("ui.border.focus"))
            .title(Span::styled(title, t.get("ui.title")));
        let inner = block.inner(area);
        f.render_widget(block, area);
        let Some(r) = &self.report else {
            let msg = self.problem.clone().unwrap_or_else(|| {
                "No experiments yet. n runs a spec here, or `thinkdbg experiment SPEC.toml`.".into()
            });
            f.render_widget(
                Paragraph::new(Span::styled(shown(&msg).into_owned(), t.get("ui.dim"))),
                inner,
            );
            return;
        };
        let w = usize::from(inner.width);
        let rows = r.variants.len() as u16 + 2;
        let [table, rest] =
            Layout::vertical([Constraint::Length(rows), Constraint::Min(1)]).areas(inner);
        // The variants × metrics table: rates with their Wilson intervals, then means.
        let name_w = 14usize;
        let mut head = format!("{:<name_w$} {:>5}", "variant", "n");
        let rate_keys: Vec<(&str, &str)> =
            RATES.iter().copied().filter(|(k, _)| *k != "accuracy" || r.expect.is_some()).collect();
        let short = |k: &str| match k {
            "accuracy" => "accuracy",
            "language_switch_rate" => "lang sw",
            "loop_rate" => "loop",
            "integrity_error_rate" => "integrity",
            "mismatch_rate" => "mismatch",
            "backtracks_per_1k" => "bt/1k",
            "mean_tokens" => "tokens",
            "mean_logprob" => "logprob",
            _ => "",
        };
        for (k, _) in &rate_keys {
            head.push_str(&format!(" {:>10}", short(k)));
        }
        for k in ["backtracks_per_1k", "mean_tokens", "mean_logprob"] {
            head.push_str(&format!(" {:>8}", short(k)));
        }
        let mut lines = vec![Line::from(Span::styled(fit(&head, w), t.get("ui.title")))];
        for (i, v) in r.variants.iter().enumerate() {
            let mut s = format!(
                "{:<name_w$} {:>5}",
                fit(&shown(&v.name), name_w),
                format!("{}/{}", v.n(), v.planned)
            );
            for (k, _) in &rate_keys {
                let cell = match v.rate(k).filter(|x| x.n > 0) {
                    Some(rate) => {
                        let (lo, hi) = rate.wilson();
                        format!(
                            "{:.0}% {:.0}–{:.0}",
                            100.0 * rate.p().unwrap_or(0.0),
                            100.0 * lo,
                            100.0 * hi
                        )
                    }
                    None => "-".into(),
                };
                s.push_str(&format!(" {cell:>10}"));
            }
            for k in ["backtracks_per_1k", "mean_tokens", "mean_logprob"] {
                let d: usize = if k == "mean_logprob" { 3 } else { 1 };
                s.push_str(&format!(
                    " {:>8}",
                    v.mean(k).map_or("-".into(), |x| format!("{x:.d$}"))
                ));
            }
            let style = if i == self.variant && !self.listing {
                t.get("ui.selection")
            } else {
                t.get("ui.text")
            };
            lines.push(Line::from(Span::styled(fit(&s, w), style)));
        }
        f.render_widget(Paragraph::new(lines), table);
        if self.listing {
            self.draw_runs(f, rest, cx);
        } else {
            self.draw_comparisons(f, rest, cx, r);
        }
    }

    fn draw_comparisons(&self, f: &mut Frame, area: Rect, cx: &Ctx, r: &Report) {
        let t = cx.theme;
        let w = usize::from(area.width);
        let mut lines = Vec::new();
        for c in &r.comparisons {
            lines.push(Line::from(Span::styled(
                fit(
                    &format!(
                        "{} against {} (difference [95% interval], exact McNemar):",
                        shown(&c.variant),
                        shown(&c.against)
                    ),
                    w,
                ),
                t.get("ui.title"),
            )));
            for (d, row) in c.metrics.iter().zip(comparison_rows(c)) {
                let text = format!(
                    "  {:<22} {:>8} → {:<8} {:<30} {}",
                    row[0], row[1], row[2], row[3], row[4]
                );
                let style = if d.significant() { t.get("ui.warning") } else { t.get("ui.text") };
                lines.push(Line::from(Span::styled(fit(&text, w), style)));
            }
        }
        lines.push(Line::from(Span::styled(
            fit("enter: the variant's runs · ↑↓ variant · * / highlighted: interval leaves out zero", w),
            t.get("ui.dim"),
        )));
        f.render_widget(Paragraph::new(lines), area);
    }

    fn draw_runs(&self, f: &mut Frame, area: Rect, cx: &Ctx) {
        let t = cx.theme;
        let w = usize::from(area.width);
        let Some(v) = self.report.as_ref().and_then(|r| r.variants.get(self.variant)) else {
            return;
        };
        let mut lines = vec![Line::from(Span::styled(
            fit(
                &format!(
                    "runs of '{}' by {} (s sorts · enter opens · C compares with the pair · esc back)",
                    shown(&v.name),
                    self.sort.name()
                ),
                w,
            ),
            t.get("ui.title"),
        ))];
        let sorted = self.sorted();
        let h = usize::from(area.height).saturating_sub(1).max(1);
        let skip = (self.run + 1).saturating_sub(h);
        for (i, s) in sorted.iter().enumerate().skip(skip).take(h) {
            let flags: Vec<String> = s.flags.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let text = format!(
                "#{:<3} {:<6} {:>6} tok  {:<20}  {}",
                s.sample,
                s.run.to_string(),
                s.tokens,
                fit(&shown(&s.answer), 20),
                if flags.is_empty() { "no flags".into() } else { flags.join(", ") }
            );
            let style = if i == self.run { t.get("ui.selection") } else { t.get("ui.text") };
            lines.push(Line::from(Span::styled(fit(&text, w), style)));
        }
        f.render_widget(Paragraph::new(lines), area);
    }
}
