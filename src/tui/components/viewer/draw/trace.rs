//! The trace pane: the run's text, think and answer distinct, coloured by logprob,
//! entropy, top expert or syntax, with the cursor token, search matches and the span mark.
//! Only the visible lines are laid out, so a 100k-token run draws as fast as a short one.
//! Every character passes through `tui::text`. May import the viewer, `run_view` and `theme`.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use crate::export::annotate::span_text;
use crate::trace::{Phase, RunStatus};
use crate::tui::components::ctx::Ctx;
use crate::tui::components::viewer::{ColourBy, Viewer};
use crate::tui::run_view::RunView;
use crate::tui::text::{shown, shown_chars, Whitespace};
use crate::tui::theme::Theme;

/// The theme key for a logprob (probability buckets 0.9 / 0.5 / 0.1).
pub fn logprob_key(lp: f32) -> &'static str {
    if lp >= -0.105 {
        "token.logprob.high"
    } else if lp >= -0.693 {
        "token.logprob.mid"
    } else if lp >= -2.303 {
        "token.logprob.low"
    } else {
        "token.logprob.verylow"
    }
}

/// The theme key for an entropy in nats.
pub fn entropy_key(h: f32) -> &'static str {
    if h < 0.5 {
        "token.entropy.low"
    } else if h < 1.5 {
        "token.entropy.mid"
    } else if h < 3.0 {
        "token.entropy.high"
    } else {
        "token.entropy.veryhigh"
    }
}

/// The top expert of `layer` at `step`, if the step was routed.
pub fn top_expert(v: &RunView, step: usize, layer: usize) -> Option<u16> {
    let l = v.routing_at(step)?.layers.get(layer)?;
    match &l.weights {
        Some(w) => w.iter().zip(&l.experts).max_by(|a, b| a.0.total_cmp(b.0)).map(|(_, e)| *e),
        None => l.experts.first().copied(),
    }
}

struct Layout<'a> {
    vw: &'a Viewer,
    v: &'a RunView,
    theme: &'a Theme,
    width: usize,
    rows: Vec<Line<'static>>,
    row: Vec<Span<'static>>,
    row_w: usize,
    cursor_row: Option<usize>,
    /// Where each token's pieces went: (row, first column, end column, step).
    cells: Vec<(usize, usize, usize, usize)>,
}

impl Layout<'_> {
    fn token_style(&self, i: usize) -> Style {
        let s = &self.v.steps[i];
        let t = self.theme;
        let mut st = t.get("ui.text").patch(t.get(match s.phase {
            Phase::Think => "phase.think",
            Phase::Answer => "phase.answer",
        }));
        match self.vw.colour {
            // A step without a logprob (some servers) gets no confidence colour.
            ColourBy::Logprob if !s.logprob.is_nan() => {
                st = st.patch(t.get(logprob_key(s.logprob)))
            }
            ColourBy::Entropy if !s.entropy.is_nan() => {
                st = st.patch(t.get(entropy_key(s.entropy)))
            }
            ColourBy::Logprob | ColourBy::Entropy => {}
            ColourBy::Expert => {
                if let Some(e) = top_expert(self.v, i, self.vw.layer) {
                    st = st.patch(t.get(&format!("expert.id.{}", e % 8)));
                }
            }
            ColourBy::Confidence => {
                if let Some(c) = self.v.dynamics.conf.get(i).copied().flatten() {
                    st = st.patch(t.get(confidence_key(c, &self.v.dynamics.quantiles)));
                }
            }
            ColourBy::Syntax => {}
        }
        // Flagged tokens: underlined in their flag's colour.
        let flags = &self.v.flags;
        let upto = flags.partition_point(|f| (f.start as usize) <= i);
        if let Some(f) = flags[..upto].iter().rev().find(|f| (f.end as usize) > i) {
            st = st
                .patch(t.get(super::timeline::flag_key(&f.kind)))
                .add_modifier(Modifier::UNDERLINED);
        }
        // A fork's forced token: reversed in the warning colour (its label is in the title).
        if self.v.run.forced_step() == Some(i as u32) {
            st = st.patch(t.get("ui.warning")).add_modifier(Modifier::REVERSED);
        }
        // Noted tokens: in the note style (notes are few; a linear scan is cheap).
        if self
            .v
            .notes
            .iter()
            .any(|n| (n.start as usize) <= i && i < (n.end.max(n.start + 1) as usize))
        {
            st = st.patch(t.get("note.span"));
        }
        if let Some(m) = self.vw.mark {
            let (a, b) = (m.min(self.vw.cursor), m.max(self.vw.cursor));
            if (a..=b).contains(&i) {
                st = st.patch(t.get("ui.mark"));
            }
        }
        st
    }

    fn in_match(&self, b: usize) -> bool {
        let m = &self.vw.matches;
        let i = m.partition_point(|r| r.0 <= b);
        i > 0 && m[i - 1].1 > b
    }

    fn break_row(&mut self) {
        let spans = std::mem::take(&mut self.row);
        self.rows.push(Line::from(spans));
        self.row_w = 0;
    }

    /// Places one token's piece of the current logical line, wrapping before it when it
    /// does not fit and is short enough to fit on a fresh row.
    fn place(&mut self, pieces: Vec<(String, Style)>, is_cursor: bool, step: usize) {
        let w: usize = pieces.iter().map(|(s, _)| s.width()).sum();
        if w > self.width - self.row_w && w <= self.width && self.row_w > 0 {
            self.break_row();
        }
        if is_cursor && self.cursor_row.is_none() {
            self.cursor_row = Some(self.rows.len());
        }
        for (text, style) in pieces {
            let cw = text.width();
            if self.row_w + cw > self.width && self.row_w > 0 {
                self.break_row();
            }
            self.cells.push((self.rows.len(), self.row_w, self.row_w + cw, step));
            self.row_w += cw;
            match self.row.last_mut() {
                // A mark stays in its base's span whatever its own style, so that no span
                // starts with a zero-width character (ratatui would give it a cell).
                Some(last) if last.style == style || cw == 0 => {
                    last.content.to_mut().push_str(&text)
                }
                _ => self.row.push(Span::styled(text, style)),
            }
        }
    }

    fn line(&mut self, li: usize) {
        let v = self.v;
        let (s0, b0) = v.lines[li];
        let end = v.lines.get(li + 1).copied().unwrap_or((v.len() as u32, 0));
        let t = self.theme;
        let mut i = s0 as usize;
        while i < v.len() && (i as u32) <= end.0 {
            let text = &v.steps[i].text;
            let from = if i as u32 == s0 { b0 as usize } else { 0 };
            let to = if i as u32 == end.0 { end.1 as usize } else { text.len() };
            if from > to || (i as u32 == end.0 && to == 0 && i as u32 != s0) {
                break;
            }
            let is_cursor = i == self.vw.cursor;
            let base = self.token_style(i);
            let mut pieces: Vec<(String, Style)> = Vec::new();
            if from == 0 && v.notes.iter().any(|n| n.start as usize == i) {
                // A note starts here: a marker before its first token.
                pieces.push(("✎".to_string(), t.get("note.marker")));
            }
            let offset = v.offsets[i];
            // The token (from a line start) is the unit a mark's base is looked for in: a
            // token that starts with a combining mark shows it on `◌`.
            for d in shown_chars(&text[from..to], Whitespace::Lines) {
                if d.shown == "\n" {
                    continue;
                }
                let b = offset + from + d.at;
                let mut st = base;
                if v.in_code(b) {
                    st = match (self.vw.colour, v.highlight_at(b)) {
                        (ColourBy::Syntax, Some(col)) => st.fg(col),
                        _ => st.patch(t.get("code.block")),
                    };
                }
                if d.escaped {
                    st = st.patch(t.get("token.control"));
                }
                let shown = d.shown;
                if self.in_match(b) {
                    st = st.patch(t.get("ui.match"));
                }
                if is_cursor {
                    st = st.patch(t.get("ui.cursor"));
                }
                pieces.push((shown, st));
            }
            let first_piece = from == 0;
            if is_cursor && pieces.iter().all(|(s, _)| s == "✎") && first_piece {
                let mark = if text.contains('\n') { "↵" } else { "∅" };
                pieces.push((mark.to_string(), base.patch(t.get("ui.cursor"))));
            }
            if !pieces.is_empty() || (is_cursor && first_piece) {
                self.place(pieces, is_cursor && first_piece, i);
            }
            i += 1;
        }
        self.break_row();
    }
}

/// Lays out the rows that show the cursor, starting at `vw.top_line`.
pub fn rows(
    vw: &Viewer,
    t: &Theme,
    v: &RunView,
    width: usize,
    height: usize,
) -> Vec<Line<'static>> {
    let (lay, skip) = lay_out(vw, t, v, width, height);
    lay.rows.into_iter().skip(skip).take(height).collect()
}

/// The step drawn at (`col`, `row`) of the trace text, `width` × `height` cells, as `rows`
/// lays it out (a click lands on it).
pub fn step_at(
    vw: &Viewer,
    t: &Theme,
    v: &RunView,
    (width, height): (usize, usize),
    (col, row): (usize, usize),
) -> Option<usize> {
    let (lay, skip) = lay_out(vw, t, v, width, height);
    let row = row + skip;
    let on_row = || lay.cells.iter().filter(|c| c.0 == row);
    on_row()
        .find(|c| c.1 <= col && col < c.2)
        .or_else(|| on_row().rfind(|c| c.1 <= col))
        .map(|c| c.3)
}

/// The layout of the rows around the cursor and how many rows to skip to show it.
fn lay_out<'a>(
    vw: &'a Viewer,
    t: &'a Theme,
    v: &'a RunView,
    width: usize,
    height: usize,
) -> (Layout<'a>, usize) {
    let mut lay = Layout {
        vw,
        v,
        theme: t,
        width: width.max(1),
        rows: Vec::new(),
        row: Vec::new(),
        row_w: 0,
        cursor_row: None,
        cells: Vec::new(),
    };
    let cursor_line = v.line_of(vw.cursor);
    let mut li = vw.top_line.min(cursor_line);
    while li < v.lines.len() {
        lay.line(li);
        li += 1;
        if lay.cursor_row.is_some() && lay.rows.len() >= height {
            break;
        }
        if li > cursor_line && lay.rows.len() >= height {
            break;
        }
    }
    let skip = lay.cursor_row.map_or(0, |r| (r + 1).saturating_sub(height));
    (lay, skip)
}

/// The theme key of a token confidence against the run's 10th, 25th and 50th percentiles.
pub fn confidence_key(c: f64, q: &[f64; 3]) -> &'static str {
    if c < q[0] {
        "token.logprob.verylow"
    } else if c < q[1] {
        "token.logprob.low"
    } else if c < q[2] {
        "token.logprob.mid"
    } else {
        "token.logprob.high"
    }
}

/// The colour legend under the trace: what the colours of the current colouring mean, then
/// the styles of a flagged token, a search match, the visual selection and a note.
pub fn legend(colour: ColourBy, layer: usize, t: &Theme) -> Line<'static> {
    let text = t.get("ui.text");
    let dim = t.get("ui.dim");
    let mut spans = vec![Span::styled(" ", dim)];
    let scale: &[(&str, &str)] = match colour {
        ColourBy::Logprob => &[
            ("p≥.9", "token.logprob.high"),
            ("≥.5", "token.logprob.mid"),
            ("≥.1", "token.logprob.low"),
            ("<.1", "token.logprob.verylow"),
        ],
        ColourBy::Entropy => &[
            ("H<.5", "token.entropy.low"),
            ("<1.5", "token.entropy.mid"),
            ("<3", "token.entropy.high"),
            ("≥3", "token.entropy.veryhigh"),
        ],
        ColourBy::Confidence => &[
            ("C≥p50", "token.logprob.high"),
            ("≥p25", "token.logprob.mid"),
            ("≥p10", "token.logprob.low"),
            ("<p10", "token.logprob.verylow"),
        ],
        ColourBy::Expert | ColourBy::Syntax => &[],
    };
    match colour {
        ColourBy::Expert => {
            spans.push(Span::styled(format!("top expert of layer {layer} "), dim));
        }
        ColourBy::Syntax => spans.push(Span::styled("code in syntax colours ", dim)),
        _ => {}
    }
    for (label, key) in scale {
        spans.push(Span::styled(*label, text.patch(t.get(key))));
        spans.push(Span::styled(" ", dim));
    }
    spans.push(Span::styled("· ", dim));
    let samples = [
        ("flag", text.patch(t.get("flag.user")).add_modifier(Modifier::UNDERLINED)),
        ("match", text.patch(t.get("ui.match"))),
        ("selection", text.patch(t.get("ui.mark"))),
        ("note", text.patch(t.get("note.span"))),
    ];
    for (label, st) in samples {
        spans.push(Span::styled(label, st));
        spans.push(Span::styled(" ", dim));
    }
    Line::from(spans)
}

/// Where the cursor is, in the one numbering every screen uses (the JSONL `index`, from 0):
/// `step 72 of 0–95`, or `no steps`.
pub fn position(cursor: usize, len: usize) -> String {
    match len {
        0 => "no steps".into(),
        n => format!("step {} of {}", cursor.min(n - 1), span_text(0, n as u32)),
    }
}

pub fn draw(vw: &Viewer, f: &mut Frame, area: Rect, cx: &Ctx) {
    let t = cx.theme;
    let Some(v) = &vw.view else {
        let p = Paragraph::new("No run selected. Pick one on the Sessions screen (1).")
            .block(Block::default().borders(Borders::ALL).border_style(t.get("ui.border")));
        f.render_widget(p, area);
        return;
    };
    let label = v.run.label.as_deref().map(|l| format!(" {}", shown(l))).unwrap_or_default();
    let live = if vw.live == Some(v.run.id) && v.run.status == RunStatus::Recording {
        " ● live"
    } else {
        ""
    };
    let visual = match (vw.mark, vw.selection()) {
        (Some(_), Some((a, b))) => {
            format!(" · VISUAL {}", span_text(a, b))
        }
        _ => String::new(),
    };
    let layer =
        if vw.colour == ColourBy::Expert { format!(" layer {}", vw.layer) } else { String::new() };
    // A fork's forced token: labelled when the cursor is on it, else where it is.
    let forced = match v.run.forced_step() {
        Some(k) if k as usize == vw.cursor => v
            .steps
            .get(vw.cursor)
            .map(|s| format!(" · {}", crate::compare::forced_label(s)))
            .unwrap_or_default(),
        Some(k) if (k as usize) < v.len() => format!(" · forced step {k}"),
        _ => String::new(),
    };
    let title = format!(
        " {}{} · colour: {}{}{}{}{} · {} ",
        v.run.id,
        label,
        vw.colour.label(),
        layer,
        live,
        visual,
        forced,
        position(vw.cursor, v.len())
    );
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.get("ui.border.focus"))
        .title(Span::styled(title, t.get("ui.title")))
        .title_bottom(legend(vw.colour, vw.layer, t));
    if let (true, crate::trace::RunStatus::Failed(msg)) = (v.is_empty(), &v.run.status) {
        let text = format!("This run failed before its first token:\n{}", shown(msg));
        let p = Paragraph::new(text)
            .style(t.get("ui.warning"))
            .wrap(ratatui::widgets::Wrap { trim: false });
        f.render_widget(p.block(block), area);
        return;
    }
    let inner = block.inner(area);
    let lines = rows(vw, t, v, usize::from(inner.width), usize::from(inner.height));
    f.render_widget(Paragraph::new(lines).block(block), area);
}
