//! The compare screen: two runs side by side, aligned by `crate::compare`, one cursor that
//! scrolls both (the other side follows the alignment), differences coloured, the first
//! divergence marked, both runs' top-k at the cursor, both runs' statistics in a header and,
//! for MoE runs, the layers whose expert usage differs most. Owns the two runs, their
//! alignment and the cursor (`App` keeps one `CompareState` once a comparison is open); drawing
//! does no I/O. May import `components`, `run_view`, `theme`, `action` and the crate's
//! `analysis`, `compare`, `trace` and `tui::text`.

use std::time::Duration;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use super::ctx::Ctx;
use super::Effect;
use crate::analysis::{AnalysisConfig, RunStats};
use crate::compare::{compare_with, AlignOp, Comparison, Side};
use crate::trace::{Phase, Routing, Step};
use crate::tui::action::Action;
use crate::tui::run_view::RunView;
use crate::tui::text::{shown, shown_token};
use crate::tui::theme::Theme;

/// How long the alignment may take before it falls back to a coarser one.
const BUDGET: Duration = Duration::from_millis(500);

/// Two runs and their alignment.
pub struct CompareState {
    pub a: RunView,
    pub b: RunView,
    pub cmp: Comparison,
    /// The cursor, a step of run A (or of B when A is empty).
    pub cursor: usize,
    /// Per step of A / B: not part of an equal stretch.
    pub diff_a: Vec<bool>,
    pub diff_b: Vec<bool>,
    /// For each step of A, the step of B aligned with it.
    pub a_to_b: Vec<usize>,
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
        let mut a_to_b = vec![0; a.len()];
        for op in &cmp.ops {
            let (ra, rb) = (op.a(), op.b());
            let equal = matches!(op, AlignOp::Equal { .. });
            for (k, i) in ra.clone().enumerate() {
                if let Some(d) = diff_a.get_mut(i) {
                    *d = !equal;
                }
                if let Some(m) = a_to_b.get_mut(i) {
                    *m = if rb.is_empty() { rb.start } else { rb.start + k.min(rb.len() - 1) };
                }
            }
            for i in rb {
                if let Some(d) = diff_b.get_mut(i) {
                    *d = !equal;
                }
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
        let b_len = b.len();
        for m in &mut a_to_b {
            *m = (*m).min(b_len.saturating_sub(1));
        }
        CompareState { a, b, cmp, cursor: 0, diff_a, diff_b, a_to_b }
    }

    /// The step of run B at the cursor.
    pub fn cursor_b(&self) -> usize {
        if self.a.is_empty() {
            return self.cursor;
        }
        self.a_to_b.get(self.cursor).copied().unwrap_or(0)
    }

    /// Steps the cursor moves over.
    pub fn len(&self) -> usize {
        if self.a.is_empty() {
            self.b.len()
        } else {
            self.a.len()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn divergence(&self) -> Option<usize> {
        self.cmp.first_divergence.as_ref().map(|d| d.a_step)
    }

    /// Keys on the compare screen: the cursor moves over run A, B follows the alignment;
    /// `page` is the trace viewport's height.
    pub fn update(&mut self, action: Action, page: usize) -> Effect {
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
            _ => return Effect::None,
        };
        self.cursor = to.min(n - 1);
        Effect::None
    }

    /// The screen: the header, both panes and both runs' top-k at the cursor.
    pub fn draw(&self, f: &mut Frame, area: Rect, cx: &Ctx) {
        let t = cx.theme;
        let c = self;
        let head = header(t, c, usize::from(area.width));
        let [h, body, k] = Layout::vertical([
            Constraint::Length(head.len() as u16),
            Constraint::Min(3),
            Constraint::Length(7),
        ])
        .areas(area);
        f.render_widget(Paragraph::new(head), h);
        let [l, r] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .areas(body);
        let div = c.cmp.first_divergence.as_ref();
        pane(t, f, l, (&c.a, &c.diff_a, c.cursor, div.map(|d| d.a_step)));
        pane(t, f, r, (&c.b, &c.diff_b, c.cursor_b(), div.map(|d| d.b_step)));
        let [kl, kr] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(k);
        for (area, v, step, title) in
            [(kl, &c.a, c.cursor, " A top-k "), (kr, &c.b, c.cursor_b(), " B top-k ")]
        {
            let block = Block::default()
                .borders(Borders::ALL)
                .border_style(t.get("ui.border"))
                .title(Span::styled(title, t.get("ui.title")));
            let rows = usize::from(area.height.saturating_sub(2));
            f.render_widget(Paragraph::new(topk(t, v, step, rows)).block(block), area);
        }
    }
}

/// The compare screen before any comparison was opened.
pub fn draw_empty(f: &mut Frame, area: Rect, cx: &Ctx) {
    let msg = "No comparison. On the trace screen press C (the run against its parent), \
               or mark a run with m on the sessions screen and press C on another.";
    f.render_widget(Paragraph::new(msg).style(cx.theme.get("ui.dim")), area);
}

/// A run's name in the compare view: its label, else its id.
pub fn name(v: &RunView) -> String {
    v.run.label.clone().map_or_else(|| v.run.id.to_string(), |l| format!("{l} ({})", v.run.id))
}

fn stat_line(s: &RunStats) -> String {
    let lp = s.mean_logprob.map_or("-".into(), |v| format!("{v:.3}"));
    let lang = match (&s.target_language, s.target_language_ratio) {
        (Some(l), Some(r)) => format!("{l} {:.0}%", r * 100.0),
        _ => "-".into(),
    };
    let flags: Vec<String> = s.flags_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let flags = if flags.is_empty() { "none".into() } else { flags.join(", ") };
    format!("{} tok · mean logp {lp} · lang {lang} · flags: {flags}", s.tokens)
}

fn header(t: &Theme, c: &CompareState, width: usize) -> Vec<Line<'static>> {
    let (dim, text) = (t.get("ui.dim"), t.get("ui.text"));
    let clip = |s: String| shown(&s).chars().take(width).collect::<String>();
    let answer = match c.cmp.answers_agree {
        Some(true) => Span::styled("answers agree", t.get("compare.same")),
        Some(false) => Span::styled("answers differ", t.get("compare.diff")),
        None => Span::styled("answers: not found in both", dim),
    };
    let div = match &c.cmp.first_divergence {
        Some(d) => {
            let pick = |ch: &Option<crate::compare::Choice>| {
                ch.as_ref().map_or("(end)".into(), |c| shown_token(&c.text))
            };
            format!(
                "first divergence: A step {} {} / B step {} {}",
                d.a_step,
                pick(&d.a),
                d.b_step,
                pick(&d.b)
            )
        }
        None => "no divergence".into(),
    };
    let (eq_a, eq_b) = c.cmp.equal_steps();
    let mut lines = vec![
        Line::from(vec![
            Span::styled("A ", t.get("ui.title")),
            Span::styled(clip(name(&c.a)), text),
            Span::styled("   B ", t.get("ui.title")),
            Span::styled(clip(name(&c.b)), text),
        ]),
        Line::from(Span::styled(clip(format!("A: {}", stat_line(&c.cmp.stats.0))), text)),
        Line::from(Span::styled(clip(format!("B: {}", stat_line(&c.cmp.stats.1))), text)),
        Line::from(vec![
            answer,
            Span::styled(clip(format!(" · {div} · equal {eq_a}/{} A steps", c.a.len())), dim),
            Span::styled(clip(format!(", {eq_b}/{} B", c.b.len())), dim),
        ]),
    ];
    if let Some(moe) = &c.cmp.moe {
        let mut by: Vec<_> = moe.iter().collect();
        by.sort_by(|x, y| y.distance.total_cmp(&x.distance));
        let top: Vec<String> =
            by.iter().take(4).map(|l| format!("L{} {:.2}", l.layer, l.distance)).collect();
        lines.push(Line::from(Span::styled(
            clip(format!("expert usage differs most: {}", top.join("  "))),
            text,
        )));
    }
    lines
}

/// The steps a pane lays out around `cursor` so that `height` rows of `width` cells are
/// filled on both sides of it: a window of whole chunks (so the rows do not shift while the
/// cursor moves within one), starting after a line break where there is one, since a frame
/// that laid out a whole 100k-token run took ~150 ms.
fn window(v: &RunView, cursor: usize, width: usize, height: usize) -> std::ops::Range<usize> {
    let chunk = (width * height).max(64);
    let mut lo = cursor.saturating_sub(chunk) / chunk * chunk;
    let end = cursor.min(v.steps.len());
    if lo > 0 && lo < end {
        if let Some(nl) = v.steps[lo..end].iter().position(|s| s.text.contains('\n')) {
            lo += nl + 1;
        }
    }
    let hi = (cursor / chunk + 2).saturating_mul(chunk).min(v.steps.len());
    lo.min(hi)..hi
}

/// Lays out a run's tokens in `steps` into rows of `width` cells; returns the rows and the
/// row of `cursor`.
fn pane_rows(
    t: &Theme,
    v: &RunView,
    steps: std::ops::Range<usize>,
    (diff, cursor, divergence): (&[bool], usize, Option<usize>),
    width: usize,
) -> (Vec<Line<'static>>, usize) {
    let mut rows: Vec<Line<'static>> = Vec::new();
    let mut row: Vec<Span<'static>> = Vec::new();
    let mut used = 0usize;
    let mut cursor_row = 0;
    let width = width.max(4);
    let first = steps.start;
    for (i, s) in v.steps[steps].iter().enumerate() {
        let i = i + first;
        let mut style = phase_style(t, s);
        if diff.get(i).copied().unwrap_or(false) {
            style = style.patch(t.get("compare.diff"));
        }
        if divergence == Some(i) {
            style = style.patch(t.get("compare.divergence"));
        }
        if i == cursor {
            style = style.patch(t.get("ui.cursor"));
            cursor_row = rows.len();
        }
        let pieces: Vec<&str> = s.text.split('\n').collect();
        for (k, piece) in pieces.iter().enumerate() {
            if k > 0 {
                rows.push(Line::from(std::mem::take(&mut row)));
                used = 0;
            }
            let mut shown = shown(piece).into_owned();
            if shown.is_empty() && (i == cursor || piece.is_empty() && pieces.len() == 1) {
                shown = if s.text.is_empty() { "∅".into() } else { String::new() };
            }
            if k + 1 < pieces.len() && i == cursor {
                shown.push('⏎');
            }
            for ch in shown.chars() {
                let w = UnicodeWidthStr::width(ch.encode_utf8(&mut [0; 4]) as &str);
                if used + w > width {
                    rows.push(Line::from(std::mem::take(&mut row)));
                    used = 0;
                }
                row.push(Span::styled(ch.to_string(), style));
                used += w;
            }
            if i == cursor {
                cursor_row = rows.len();
            }
        }
    }
    rows.push(Line::from(row));
    (rows, cursor_row)
}

fn phase_style(t: &Theme, s: &Step) -> Style {
    t.get(if s.phase == Phase::Think { "phase.think" } else { "phase.answer" })
}

fn pane(t: &Theme, f: &mut Frame, area: Rect, which: (&RunView, &[bool], usize, Option<usize>)) {
    let (v, diff, cursor, div) = which;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.get("ui.border"))
        .title(Span::styled(format!(" {} ", shown(&name(v))), t.get("ui.title")));
    let inner = block.inner(area);
    let h = usize::from(inner.height).max(1);
    let steps = window(v, cursor, usize::from(inner.width), h);
    let (rows, at) = pane_rows(t, v, steps, (diff, cursor, div), usize::from(inner.width));
    let top = at.saturating_sub(h / 2).min(rows.len().saturating_sub(h));
    let shown: Vec<Line> = rows.into_iter().skip(top).take(h).collect();
    f.render_widget(Paragraph::new(shown).block(block), area);
}

fn topk(t: &Theme, v: &RunView, step: usize, rows: usize) -> Vec<Line<'static>> {
    let Some(s) = v.steps.get(step) else { return vec![Line::from("no token")] };
    let mut out = vec![Line::from(vec![
        Span::styled(format!("step {} ", s.index), t.get("ui.dim")),
        Span::styled(shown_token(&s.text), t.get("ui.cursor")),
        Span::styled(format!(" {:.3}", s.logprob), t.get("ui.text")),
    ])];
    for alt in s.top.iter().take(rows.saturating_sub(1)) {
        let st = if alt.id == s.token_id { t.get("ui.selection") } else { t.get("ui.text") };
        out.push(Line::from(Span::styled(
            format!("{:>8.3} {}", alt.logprob, shown_token(&alt.text)),
            st,
        )));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
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
