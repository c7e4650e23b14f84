//! Drawing the compare screen's token view: the header (names and relation, what differs
//! before the first token, answers, the divergence, statistics side by side), both panes
//! wrapped at words, a legend, and both runs' top-k at the cursor. May import the compare
//! component, `run_view`, `theme` and `tui::text`.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use super::{CompareState, View};
use crate::analysis::RunStats;
use crate::compare::{forced_label, Change, Relation};
use crate::trace::{Phase, Step};
use crate::tui::components::ctx::Ctx;
use crate::tui::run_view::RunView;
use crate::tui::text::{shown, shown_token};
use crate::tui::theme::Theme;

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

/// Spans cut to `width` columns in all.
fn clip(spans: Vec<Span<'static>>, width: usize) -> Line<'static> {
    let mut out = Vec::new();
    let mut used = 0;
    for sp in spans {
        let w = sp.content.width();
        if used + w <= width {
            used += w;
            out.push(sp);
            continue;
        }
        let mut cut = String::new();
        for ch in sp.content.chars() {
            let cw = UnicodeWidthStr::width(ch.encode_utf8(&mut [0; 4]) as &str);
            if used + cw + 1 > width {
                break;
            }
            cut.push(ch);
            used += cw;
        }
        cut.push('…');
        out.push(Span::styled(cut, sp.style));
        break;
    }
    Line::from(out)
}

/// The statistics compared side by side: (name, A's value, B's value).
fn stat_fields(s: &RunStats) -> Vec<(&'static str, String)> {
    let lp = s.mean_logprob.map_or("-".into(), |v| format!("{v:.3}"));
    let lang = match (&s.target_language, s.target_language_ratio) {
        (Some(l), Some(r)) => format!("{l} {:.0}%", r * 100.0),
        _ => "-".into(),
    };
    let flags: Vec<String> = s.flags_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let flags = if flags.is_empty() { "none".into() } else { flags.join(", ") };
    vec![
        ("tok", format!("{} tok ({} think)", s.tokens, s.think_tokens)),
        ("logp", format!("logp {lp}")),
        ("lang", lang),
        ("backtracks", format!("{} backtracks", s.backtracks)),
        ("flags", format!("flags: {flags}")),
    ]
}

fn stat_lines(t: &Theme, c: &CompareState, width: usize) -> [Line<'static>; 2] {
    let (fa, fb) = (stat_fields(&c.cmp.stats.0), stat_fields(&c.cmp.stats.1));
    let line = |tag: &'static str, mine: &[(&str, String)], other: &[(&str, String)]| {
        let mut spans = vec![Span::styled(tag, t.get("ui.title"))];
        for (k, ((_, v), (_, o))) in mine.iter().zip(other).enumerate() {
            if k > 0 {
                spans.push(Span::styled(" · ", t.get("ui.dim")));
            }
            let style = if v == o { t.get("ui.text") } else { t.get("compare.diff") };
            spans.push(Span::styled(shown(v).into_owned(), style));
        }
        clip(spans, width)
    };
    [line("A ", &fa, &fb), line("B ", &fb, &fa)]
}

/// A word diff as spans: removed words struck through, added ones in the diff style.
fn diff_spans(t: &Theme, parts: &[(Change, String)]) -> Vec<Span<'static>> {
    let mut out = Vec::new();
    let mut prev = Change::Same;
    for (k, text) in parts {
        let s = shown(&text.replace('\n', " ")).into_owned();
        // A replacement reads `old→new`.
        if prev == Change::Removed && *k == Change::Added {
            out.push(Span::styled("→", t.get("ui.dim")));
        }
        out.push(match k {
            Change::Same => Span::styled(s, t.get("ui.text")),
            Change::Removed => {
                Span::styled(s, t.get("compare.diff").add_modifier(Modifier::CROSSED_OUT))
            }
            Change::Added => Span::styled(s, t.get("compare.same").add_modifier(Modifier::BOLD)),
        });
        prev = *k;
    }
    out
}

/// What differs before the first token, on one row.
fn setup_line(t: &Theme, c: &CompareState, width: usize) -> Line<'static> {
    let s = &c.cmp.setup;
    let dim = t.get("ui.dim");
    if s.same() {
        return clip(
            vec![Span::styled("before the first token: same prompt, system, sampler, model", dim)],
            width,
        );
    }
    let mut spans = Vec::new();
    if s.prompt_differs {
        spans.push(Span::styled("prompt: ", t.get("ui.warning")));
        spans.extend(diff_spans(t, &s.prompt));
    } else {
        spans.push(Span::styled("same prompt", dim));
    }
    if s.system_differs {
        spans.push(Span::styled(" · system: ", t.get("ui.warning")));
        spans.extend(diff_spans(t, &s.system));
    }
    for st in &s.settings {
        let v = |x: &str| if x.is_empty() { "-".to_string() } else { shown(x).into_owned() };
        let (a, b) = if st.name == "model.fingerprint" {
            let short = |x: &str| v(&x.chars().take(8).collect::<String>());
            (short(&st.a), short(&st.b))
        } else {
            (v(&st.a), v(&st.b))
        };
        spans.push(Span::styled(format!(" · {} ", st.name), t.get("ui.warning")));
        spans.push(Span::styled(format!("{a}→{b}"), t.get("ui.text")));
    }
    clip(spans, width)
}

fn header(t: &Theme, c: &CompareState, width: usize) -> Vec<Line<'static>> {
    let (dim, text) = (t.get("ui.dim"), t.get("ui.text"));
    let model = |v: &RunView| {
        if v.run.model.name.is_empty() {
            String::new()
        } else {
            format!(" · {}", shown(&v.run.model.name))
        }
    };
    let names = clip(
        vec![
            Span::styled("A ", t.get("ui.title")),
            Span::styled(format!("{}{}", shown(&name(&c.a)), model(&c.a)), text),
            Span::styled("   B ", t.get("ui.title")),
            Span::styled(format!("{}{}", shown(&name(&c.b)), model(&c.b)), text),
            Span::styled(format!("   {}", c.cmp.relation.describe()), dim),
        ],
        width,
    );
    let show = |a: &Option<crate::analysis::answer::Answer>| {
        a.as_ref().map_or("none found".into(), |x| format!("'{}'", shown(&x.value)))
    };
    let verdict = match c.cmp.answers_agree {
        Some(true) => Span::styled("agree", t.get("compare.same")),
        Some(false) => Span::styled("differ", t.get("compare.diff")),
        None => Span::styled("cannot tell", dim),
    };
    let (eq_a, eq_b) = c.cmp.equal_steps();
    let answers = clip(
        vec![
            Span::styled("answers ", dim),
            Span::styled(
                format!("A {} · B {}: ", show(&c.cmp.answers.0), show(&c.cmp.answers.1)),
                text,
            ),
            verdict,
            Span::styled(
                format!(" · equal {eq_a}/{} A, {eq_b}/{} B tokens", c.a.len(), c.b.len()),
                dim,
            ),
        ],
        width,
    );
    let div = match &c.cmp.first_divergence {
        Some(d) => {
            let pick = |ch: &Option<crate::compare::Choice>| {
                ch.as_ref().map_or("(end)".into(), |c| shown_token(&c.text))
            };
            let mut spans = vec![
                Span::styled("first divergence ", dim),
                Span::styled(
                    format!("A#{} {} / B#{} {}", d.a_step, pick(&d.a), d.b_step, pick(&d.b)),
                    t.get("compare.divergence"),
                ),
            ];
            let child = match c.cmp.relation {
                Relation::Fork { child_is_b: true, .. } => c.b.steps.get(d.b_step),
                Relation::Fork { child_is_b: false, .. } => c.a.steps.get(d.a_step),
                _ => None,
            };
            if let (true, Some(s)) = (d.forced, child) {
                spans.push(Span::styled(format!(" {}", forced_label(s)), t.get("ui.warning")));
            }
            let n = c.divergence_rows.len();
            let at = c.divergence_rows.iter().filter(|&&r| r <= c.cursor).count();
            let which = match (at, n) {
                (_, 1) => " · the only divergence".to_string(),
                (0, n) => format!(" · {n} divergences"),
                (at, n) => format!(" · divergence {at} of {n}"),
            };
            spans.push(Span::styled(which, dim));
            clip(spans, width)
        }
        None => clip(vec![Span::styled("no divergence: the runs are the same", dim)], width),
    };
    let [sa, sb] = stat_lines(t, c, width);
    let mut lines = vec![names, setup_line(t, c, width), answers, div, sa, sb];
    if let Some(moe) = &c.cmp.moe {
        let mut by: Vec<_> = moe.iter().collect();
        by.sort_by(|x, y| y.distance.total_cmp(&x.distance));
        let top: Vec<String> =
            by.iter().take(4).map(|l| format!("L{} {:.2}", l.layer, l.distance)).collect();
        lines.push(clip(
            vec![Span::styled(format!("expert usage differs most: {}", top.join("  ")), text)],
            width,
        ));
    }
    lines
}

/// The legend under the panes.
fn legend(t: &Theme, width: usize) -> Line<'static> {
    let dim = t.get("ui.dim");
    let key = t.get("ui.help.key");
    let mut spans = vec![
        Span::styled("differs", t.get("compare.diff")),
        Span::styled(" ", dim),
        Span::styled("divergence", t.get("compare.divergence")),
        Span::styled(" ", dim),
        Span::styled("cursor", t.get("ui.cursor")),
        Span::styled(" ", dim),
        Span::styled("think", t.get("phase.think")),
        Span::styled("/", dim),
        Span::styled("answer", t.get("phase.answer")),
        Span::styled("  ", dim),
    ];
    for (k, what) in [("n", "/"), ("N", " divergence  "), ("d", " first  "), ("s", " steps")] {
        spans.push(Span::styled(k, key));
        spans.push(Span::styled(what, dim));
    }
    clip(spans, width)
}

/// The steps a pane lays out around `cursor` so that `height` rows of `width` cells are
/// filled on both sides of it: a window of whole chunks (so the rows do not shift while the
/// cursor moves within one), starting after a line break where there is one, since a frame
/// that laid out a whole 100k-token run took ~150 ms.
pub(super) fn window(
    v: &RunView,
    cursor: usize,
    width: usize,
    height: usize,
) -> std::ops::Range<usize> {
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

/// Rows of styled characters being wrapped at words.
struct Wrapper {
    rows: Vec<Line<'static>>,
    row: Vec<(Span<'static>, bool)>,
    used: usize,
    width: usize,
    cursor_row: Option<usize>,
}

impl Wrapper {
    fn push_row(&mut self) {
        let row = std::mem::take(&mut self.row);
        if row.iter().any(|(_, c)| *c) {
            self.cursor_row = Some(self.rows.len());
        }
        self.rows.push(Line::from(row.into_iter().map(|(s, _)| s).collect::<Vec<_>>()));
        self.used = 0;
    }

    /// Adds one character (`is_cursor`: of the token the pane follows); a word that does not
    /// fit moves whole to the next row (a word longer than a row is cut).
    fn push(&mut self, ch: char, style: Style, is_cursor: bool) {
        let w = UnicodeWidthStr::width(ch.encode_utf8(&mut [0; 4]) as &str);
        if self.used + w > self.width {
            if ch == ' ' {
                self.push_row();
                // The space that broke the row is not drawn at the start of the next, but the
                // cursor on it still shows.
                if !is_cursor {
                    return;
                }
            } else {
                let brk = self.row.iter().rposition(|(s, _)| s.content == " ");
                match brk {
                    Some(at) if at + 1 < self.row.len() => {
                        let tail = self.row.split_off(at + 1);
                        self.push_row();
                        self.used = tail.iter().map(|(s, _)| s.content.width()).sum();
                        self.row = tail;
                    }
                    _ => self.push_row(),
                }
            }
        }
        self.row.push((Span::styled(ch.to_string(), style), is_cursor));
        self.used += w;
    }
}

/// Lays out a run's tokens in `steps` into rows of `width` cells, wrapped at words; returns
/// the rows and the row of `focus` (the cursor's step, or the nearest one when this run has
/// no token at the cursor).
fn pane_rows(
    t: &Theme,
    v: &RunView,
    steps: std::ops::Range<usize>,
    (diff, cursor, focus, divergence): (&[bool], Option<usize>, usize, Option<usize>),
    width: usize,
) -> (Vec<Line<'static>>, usize) {
    let mut w = Wrapper {
        rows: Vec::new(),
        row: Vec::new(),
        used: 0,
        width: width.max(4),
        cursor_row: None,
    };
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
        let at_cursor = cursor == Some(i);
        if at_cursor {
            style = style.patch(t.get("ui.cursor"));
        }
        let pieces: Vec<&str> = s.text.split('\n').collect();
        for (k, piece) in pieces.iter().enumerate() {
            if k > 0 {
                w.push_row();
            }
            let mut shown = shown(piece).into_owned();
            if shown.is_empty() && (at_cursor || piece.is_empty() && pieces.len() == 1) {
                shown = if s.text.is_empty() { "∅".into() } else { String::new() };
            }
            if k + 1 < pieces.len() && at_cursor {
                shown.push('⏎');
            }
            for ch in shown.chars() {
                w.push(ch, style, i == focus);
            }
        }
    }
    w.push_row();
    let at = w.cursor_row.unwrap_or(0);
    (w.rows, at)
}

fn phase_style(t: &Theme, s: &Step) -> Style {
    t.get(if s.phase == Phase::Think { "phase.think" } else { "phase.answer" })
}

/// One pane: its block and rows, scrolled so the cursor's row is in the middle.
struct Pane {
    rows: Vec<Line<'static>>,
    at: usize,
}

fn pane(
    t: &Theme,
    v: &RunView,
    (diff, cursor, near, div): (&[bool], Option<usize>, usize, Option<usize>),
    width: usize,
    height: usize,
) -> Pane {
    let steps = window(v, near, width, height);
    let (rows, at) = pane_rows(t, v, steps, (diff, cursor, near, div), width);
    Pane { rows, at }
}

fn draw_pane(t: &Theme, f: &mut Frame, area: Rect, v: &RunView, p: Pane, here: Option<usize>) {
    let pos = match here {
        Some(s) => format!(" · step {s}"),
        None => " · no token here".into(),
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.get("ui.border"))
        .title(Span::styled(format!(" {}{pos} ", shown(&name(v))), t.get("ui.title")));
    let h = usize::from(block.inner(area).height).max(1);
    let top = p.at.saturating_sub(h / 2).min(p.rows.len().saturating_sub(h));
    let shown: Vec<Line> = p.rows.into_iter().skip(top).take(h).collect();
    f.render_widget(Paragraph::new(shown).block(block), area);
}

/// The cursor's token of one run and its alternatives as percentages, the chosen one marked.
fn topk(
    t: &Theme,
    v: &RunView,
    step: Option<usize>,
    forced: bool,
    rows: usize,
) -> Vec<Line<'static>> {
    let dim = t.get("ui.dim");
    let Some(s) = step.and_then(|i| v.steps.get(i)) else {
        return vec![Line::from(Span::styled("no token here: only the other run has one", dim))];
    };
    let p = if s.logprob.is_nan() {
        "p ?".to_string()
    } else {
        format!("p {:.1}%", f64::from(s.logprob).exp() * 100.0)
    };
    let mut first = vec![
        Span::styled(format!("step {} ", s.index), dim),
        Span::styled(shown_token(&s.text), t.get("ui.cursor")),
        Span::styled(format!(" {p}"), t.get("ui.text")),
    ];
    if forced {
        first.push(Span::styled(format!("  {}", forced_label(s)), t.get("ui.warning")));
    }
    let mut out = vec![Line::from(first)];
    if s.top.is_empty() {
        out.push(Line::from(Span::styled("no alternatives recorded", dim)));
    }
    for alt in s.top.iter().take(rows.saturating_sub(1)) {
        let chosen = RunView::is_chosen(s, alt);
        let pct = if alt.logprob.is_nan() {
            "     ?".to_string()
        } else {
            format!("{:>5.1}%", f64::from(alt.logprob).exp() * 100.0)
        };
        let style = if chosen { t.get("ui.selection") } else { t.get("ui.text") };
        out.push(Line::from(vec![
            Span::styled(if chosen { "▸" } else { " " }, t.get("ui.help.key")),
            Span::styled(format!("{pct} "), style),
            Span::styled(shown_token(&alt.text), style),
        ]));
    }
    out
}

impl CompareState {
    /// The screen: the header, then the token view (both panes, the legend and both runs'
    /// top-k at the cursor) or the step view.
    pub fn draw(&self, f: &mut Frame, area: Rect, cx: &Ctx) {
        let t = cx.theme;
        let width = usize::from(area.width);
        let head = header(t, self, width);
        let head_h = (head.len() as u16).min(area.height.saturating_sub(6));
        let [h, body] =
            Layout::vertical([Constraint::Length(head_h), Constraint::Min(3)]).areas(area);
        f.render_widget(Paragraph::new(head), h);
        if self.view == View::Steps {
            super::step_view::draw(self, f, body, cx);
            return;
        }
        let row = self.row();
        let div = self.cmp.first_divergence.as_ref();
        let half = usize::from(body.width / 2).saturating_sub(2).max(4);
        let avail = usize::from(body.height).saturating_sub(1);
        let (pa, pb) = (
            pane(t, &self.a, (&self.diff_a, row.a, row.near.0, div.map(|d| d.a_step)), half, avail),
            pane(t, &self.b, (&self.diff_b, row.b, row.near.1, div.map(|d| d.b_step)), half, avail),
        );
        // The top-k panels take the rows the text does not need.
        let need = pa.rows.len().max(pb.rows.len()) + 2;
        let alts = |v: &RunView, s: Option<usize>| {
            s.and_then(|i| v.steps.get(i)).map_or(0, |x| x.top.len())
        };
        let want = alts(&self.a, row.a).max(alts(&self.b, row.b)).max(1) + 3;
        let topk_h =
            avail.saturating_sub(need.max(5)).min(want).max(7).min(avail.saturating_sub(3));
        let [panes, leg, k] = Layout::vertical([
            Constraint::Min(3),
            Constraint::Length(1),
            Constraint::Length(topk_h as u16),
        ])
        .areas(body);
        let [l, r] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .areas(panes);
        draw_pane(t, f, l, &self.a, pa, row.a);
        draw_pane(t, f, r, &self.b, pb, row.b);
        f.render_widget(Paragraph::new(legend(t, width)), leg);
        let [kl, kr] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(k);
        let forced = |is_b: bool, step: Option<usize>| {
            let d = div.filter(|d| d.forced);
            match (d, self.cmp.relation) {
                (Some(d), Relation::Fork { child_is_b, .. }) if child_is_b == is_b => {
                    step == Some(if is_b { d.b_step } else { d.a_step })
                }
                _ => false,
            }
        };
        for (area, v, step, title, is_b) in
            [(kl, &self.a, row.a, " A top-k ", false), (kr, &self.b, row.b, " B top-k ", true)]
        {
            let block = Block::default()
                .borders(Borders::ALL)
                .border_style(t.get("ui.border"))
                .title(Span::styled(title, t.get("ui.title")));
            let rows = usize::from(area.height.saturating_sub(2));
            let lines = topk(t, v, step, forced(is_b, step), rows);
            f.render_widget(Paragraph::new(lines).block(block), area);
        }
    }
}
