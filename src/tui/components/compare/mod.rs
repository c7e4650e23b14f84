//! The compare screen: two runs side by side, aligned by `crate::compare`, one cursor over
//! the alignment's rows (a token of both runs, or one only one run has, so every token of
//! both is reachable, a fork's forced token included), differences coloured, the first
//! divergence and a forced token marked and labelled, `n` / `N` to the next / previous
//! divergence, both runs' top-k at the cursor as percentages with the chosen token marked,
//! what differs before the first token, both answers, the statistics side by side with the
//! differences highlighted, a legend, and a step view (`s`) with the reasoning steps of both
//! runs aligned by content. Owns the two runs, their alignment and the cursors (`App` keeps
//! one `CompareState` once a comparison is open); drawing does no I/O. May import
//! `components`, `run_view`, `theme`, `action` and the crate's `analysis`, `compare`, `trace`
//! and `tui::text`.

mod draw;
mod step_view;

use std::time::Duration;

use super::Effect;
use crate::analysis::AnalysisConfig;
use crate::compare::{compare_with, AlignOp, Comparison, Side};
use crate::trace::Routing;
use crate::tui::action::Action;
use crate::tui::run_view::RunView;

pub use draw::draw_empty;

/// How long the alignment may take before it falls back to a coarser one.
const BUDGET: Duration = Duration::from_millis(500);

/// One row of the alignment: a step of A and of B shown together, or a step only one run
/// has (the other side then shows where it would be, `near`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub a: Option<usize>,
    pub b: Option<usize>,
    /// The step of each run nearest to this row (its own step when it has one).
    pub near: (usize, usize),
}

/// Which view the compare screen shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Tokens,
    /// The step map.
    Steps,
}

/// Two runs and their alignment.
pub struct CompareState {
    pub a: RunView,
    pub b: RunView,
    pub cmp: Comparison,
    /// The cursor: a row of `rows`.
    pub cursor: usize,
    pub rows: Vec<Row>,
    /// Per step of A / B: not part of an equal stretch.
    pub diff_a: Vec<bool>,
    pub diff_b: Vec<bool>,
    /// The row where each stretch that differs starts, in order.
    pub divergence_rows: Vec<usize>,
    pub view: View,
    /// The selected row of the step map.
    pub step_cursor: usize,
}

fn routing_of(v: &RunView) -> Vec<(u32, Routing)> {
    v.routing.iter().enumerate().filter_map(|(i, r)| Some((i as u32, r.clone()?))).collect()
}

impl CompareState {
    pub fn new(a: RunView, b: RunView, cfg: &AnalysisConfig) -> CompareState {
        let (ra, rb) = (routing_of(&a), routing_of(&b));
        let cmp = compare_with(
            Side { run: &a.run, steps: &a.steps, routing: &ra },
            Side { run: &b.run, steps: &b.steps, routing: &rb },
            cfg,
            BUDGET,
        );
        let (mut diff_a, mut diff_b) = (vec![false; a.len()], vec![false; b.len()]);
        let mut rows = Vec::with_capacity(a.len().max(b.len()));
        let mut divergence_rows = Vec::new();
        for op in &cmp.ops {
            let (ra, rb) = (op.a(), op.b());
            let equal = matches!(op, AlignOp::Equal { .. });
            if !equal {
                divergence_rows.push(rows.len());
            }
            for i in ra.clone() {
                if let Some(d) = diff_a.get_mut(i) {
                    *d = !equal;
                }
            }
            for i in rb.clone() {
                if let Some(d) = diff_b.get_mut(i) {
                    *d = !equal;
                }
            }
            for k in 0..ra.len().max(rb.len()) {
                let sa = (k < ra.len()).then_some(ra.start + k);
                let sb = (k < rb.len()).then_some(rb.start + k);
                let near_a = sa.unwrap_or(ra.start + k.min(ra.len().saturating_sub(1)));
                let near_b = sb.unwrap_or(rb.start + k.min(rb.len().saturating_sub(1)));
                rows.push(Row { a: sa, b: sb, near: (near_a, near_b) });
            }
        }
        // B scores A's text (`thinkdbg score`): the tokens B would not have chosen (its own
        // top choice differs) are where B disagrees.
        if b.run.is_scored() && b.run.parent.is_some_and(|(p, _)| p == a.run.id) {
            for (i, s) in b.steps.iter().enumerate() {
                if s.top.first().is_some_and(|t| t.id != s.token_id) {
                    diff_b[i] = true;
                    if let Some(d) = diff_a.get_mut(b.run.scored_parent_step(i as u32) as usize) {
                        *d = true;
                    }
                }
            }
        }
        CompareState {
            a,
            b,
            cmp,
            cursor: 0,
            rows,
            diff_a,
            diff_b,
            divergence_rows,
            view: View::Tokens,
            step_cursor: 0,
        }
    }

    /// The row at the cursor.
    pub fn row(&self) -> Row {
        self.rows.get(self.cursor).copied().unwrap_or(Row { a: None, b: None, near: (0, 0) })
    }

    /// The step of run A at the cursor (the nearest one when A has none there).
    pub fn cursor_a(&self) -> usize {
        self.row().near.0
    }

    /// The step of run B at the cursor (the nearest one when B has none there).
    pub fn cursor_b(&self) -> usize {
        self.row().near.1
    }

    /// Rows the cursor moves over.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The row of the first divergence.
    pub fn divergence(&self) -> Option<usize> {
        self.divergence_rows.first().copied()
    }

    /// The row of step `step` of run A (the first row at or after it).
    pub fn row_of_a(&self, step: usize) -> Option<usize> {
        self.rows.iter().position(|r| r.a.is_some_and(|a| a >= step))
    }

    /// Puts the cursor on step `at` of A (a fork's or a resample's step), else on the first
    /// divergence (an edited prompt's re-run replays nothing: its step 0 is no place to start).
    pub fn open_at(&mut self, at: Option<usize>) {
        let at = at.filter(|_| self.cmp.relation.replayed_prefix().is_some());
        let row = at.and_then(|s| self.row_of_a(s)).or(self.divergence());
        self.cursor = row.unwrap_or(0).min(self.len().saturating_sub(1));
    }

    /// Keys on the compare screen: the cursor moves over the alignment's rows (both runs
    /// follow); `page` is the trace viewport's height.
    pub fn update(&mut self, action: Action, page: usize) -> Effect {
        if action == Action::ToggleStepView {
            self.view = match self.view {
                View::Tokens => {
                    self.step_cursor = self.step_row_at_cursor();
                    View::Steps
                }
                View::Steps => View::Tokens,
            };
            return Effect::None;
        }
        if self.view == View::Steps {
            return self.update_steps(action, page);
        }
        let n = self.len();
        if n == 0 {
            return Effect::None;
        }
        let to = match action {
            Action::NextToken | Action::Down | Action::LineDown => self.cursor + 1,
            Action::PrevToken | Action::Up | Action::LineUp => self.cursor.saturating_sub(1),
            Action::PageDown => self.cursor + page * 8,
            Action::PageUp => self.cursor.saturating_sub(page * 8),
            Action::Start => 0,
            Action::End => n - 1,
            Action::JumpDivergence => match self.divergence() {
                Some(d) => d,
                None => return Effect::Message("the runs do not diverge".into()),
            },
            Action::NextDivergence => {
                match self.divergence_rows.iter().find(|&&r| r > self.cursor) {
                    Some(&r) => r,
                    None if self.divergence_rows.is_empty() => {
                        return Effect::Message("the runs do not diverge".into())
                    }
                    None => return Effect::Message("no divergence after this one".into()),
                }
            }
            Action::PrevDivergence => {
                match self.divergence_rows.iter().rev().find(|&&r| r < self.cursor) {
                    Some(&r) => r,
                    None if self.divergence_rows.is_empty() => {
                        return Effect::Message("the runs do not diverge".into())
                    }
                    None => return Effect::Message("no divergence before this one".into()),
                }
            }
            _ => return Effect::None,
        };
        self.cursor = to.min(n - 1);
        Effect::None
    }

    /// The step-map row holding the cursor's token of A (else of B).
    fn step_row_at_cursor(&self) -> usize {
        let r = self.row();
        let (ia, ib) = (&self.cmp.step_info.0, &self.cmp.step_info.1);
        let in_a = |m: &crate::compare::StepMatch| {
            r.a.is_some_and(|s| m.a.and_then(|i| ia.get(i)).is_some_and(|x| x.span.contains(&s)))
        };
        let in_b = |m: &crate::compare::StepMatch| {
            r.b.is_some_and(|s| m.b.and_then(|i| ib.get(i)).is_some_and(|x| x.span.contains(&s)))
        };
        self.cmp.steps.iter().position(|m| in_a(m) || in_b(m)).unwrap_or(0)
    }

    /// Keys in the step view: move over the step map; enter shows the tokens of the step.
    fn update_steps(&mut self, action: Action, page: usize) -> Effect {
        let n = self.cmp.steps.len();
        if n == 0 {
            return Effect::Message("neither run has reasoning steps".into());
        }
        let same = |m: &crate::compare::StepMatch| m.same();
        let to = match action {
            Action::NextToken | Action::Down | Action::LineDown => self.step_cursor + 1,
            Action::PrevToken | Action::Up | Action::LineUp => self.step_cursor.saturating_sub(1),
            Action::PageDown => self.step_cursor + page.max(1),
            Action::PageUp => self.step_cursor.saturating_sub(page.max(1)),
            Action::Start => 0,
            Action::End => n - 1,
            Action::NextDivergence => {
                let next = self.cmp.steps.iter().enumerate().skip(self.step_cursor + 1);
                match next.filter(|(_, m)| !same(m)).map(|(i, _)| i).next() {
                    Some(i) => i,
                    None => return Effect::Message("no differing step after this one".into()),
                }
            }
            Action::PrevDivergence => {
                let prev = self.cmp.steps.iter().enumerate().take(self.step_cursor).rev();
                match prev.filter(|(_, m)| !same(m)).map(|(i, _)| i).next() {
                    Some(i) => i,
                    None => return Effect::Message("no differing step before this one".into()),
                }
            }
            Action::Open => {
                let m = self.cmp.steps.get(self.step_cursor).copied();
                let start = |i: Option<usize>, l: &[crate::compare::StepInfo]| {
                    i.and_then(|i| l.get(i)).map(|x| x.span.start)
                };
                if let Some(m) = m {
                    let (sa, sb) =
                        (start(m.a, &self.cmp.step_info.0), start(m.b, &self.cmp.step_info.1));
                    let row = match (sa, sb) {
                        (Some(s), _) => self.rows.iter().position(|r| r.a == Some(s)),
                        (None, Some(s)) => self.rows.iter().position(|r| r.b == Some(s)),
                        _ => None,
                    };
                    if let Some(r) = row {
                        self.cursor = r;
                    }
                }
                self.view = View::Tokens;
                return Effect::None;
            }
            _ => return Effect::None,
        };
        self.step_cursor = to.min(n - 1);
        Effect::None
    }
}

#[cfg(test)]
mod tests {
    use super::draw::window;
    use super::*;
    use crate::trace::{Phase, Step};
    use crate::trace::{Run, RunId, SamplerSpec, SessionId};

    fn view(n: u32, newline_every: u32) -> RunView {
        let steps = (0..n)
            .map(|i| Step {
                index: i,
                token_id: i,
                text: if newline_every > 0 && i % newline_every == 0 {
                    "x\n".into()
                } else {
                    " w".into()
                },
                logprob: -0.1,
                entropy: 0.1,
                phase: Phase::Think,
                t_us: 0,
                top: vec![],
            })
            .collect();
        RunView::new(
            Run::new_recording(RunId(1), SessionId(1), SamplerSpec::default()),
            steps,
            vec![],
            vec![],
        )
    }

    #[test]
    fn a_pane_lays_out_a_window_around_the_cursor_that_fills_the_screen() {
        let v = view(100_000, 0);
        let (w, h) = (70, 30);
        for cursor in [0, 1, 2_099, 2_100, 50_000, 99_999] {
            let r = window(&v, cursor, w, h);
            assert!(r.contains(&cursor), "{cursor}: {r:?}");
            assert!(cursor - r.start >= (w * h).min(cursor), "rows above {cursor}: {r:?}");
            assert!(
                r.end - cursor >= (w * h).min(100_000 - cursor - 1),
                "rows below {cursor}: {r:?}"
            );
            assert!(r.len() <= 3 * w * h, "bounded: {r:?}");
        }
        // Within a chunk the window stays put, so the rows do not shift as the cursor moves.
        assert_eq!(window(&v, 50_001, w, h), window(&v, 50_002, w, h));
        // With paragraphs it starts after a line break, where the full layout starts a row.
        let v = view(100_000, 500);
        let r = window(&v, 50_000, w, h);
        assert!(v.steps[r.start - 1].text.ends_with('\n'), "{r:?}");
        // A cursor past the end (the shorter run of a pair) is no panic.
        assert!(window(&view(10, 0), 5_000, w, h).is_empty());
    }
}
