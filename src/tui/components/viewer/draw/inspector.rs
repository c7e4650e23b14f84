//! The inspector pane: the token under the cursor (id, text with invisible characters
//! shown, logprob, probability, entropy, rank) and its top-k alternatives as bars; for a run
//! recorded from a server, where it came from and what the server did not supply (a step
//! without a logprob says so rather than showing a number). With the layers view open (`L`)
//! the logit lens's rows (`viewer::lens`) take the alternatives' place.
//! May import the viewer, `run_view`, `provenance`, `components::widgets` and `theme`.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use super::flags;
use super::timeline::flag_key;
use super::trace::{entropy_key, logprob_key};
use crate::export::annotate::span_text;
use crate::trace::UNKNOWN_TOKEN;
use crate::tui::components::ctx::Ctx;
use crate::tui::components::viewer::{ColourBy, Viewer};
use crate::tui::components::widgets::fit;
use crate::tui::provenance;
use crate::tui::run_view::RunView;
use crate::tui::text::{shown, shown_token};

/// `text` in rows of at most `w` columns, broken between words (a longer word is cut).
pub fn words(text: &str, w: usize) -> Vec<String> {
    let mut rows: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match rows.last_mut() {
            Some(row) if row.width() + 1 + word.width() <= w => {
                row.push(' ');
                row.push_str(word);
            }
            _ => rows.push(word.to_string()),
        }
    }
    rows
}

pub fn draw(vw: &Viewer, f: &mut Frame, area: Rect, cx: &Ctx) {
    let t = cx.theme;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.get("ui.border"))
        .title(Span::styled(" Inspector ", t.get("ui.title")));
    match lines(vw, area, cx) {
        Some((lines, _)) => f.render_widget(Paragraph::new(lines).block(block), area),
        None => f.render_widget(Paragraph::new("no token").block(block), area),
    }
}

/// The alternative (index into the cursor token's top-k) drawn on row `y` of the inspector
/// drawn in `area` (a click on it opens the fork dialog with it).
pub fn alternative_at(vw: &Viewer, area: Rect, cx: &Ctx, y: u16) -> Option<usize> {
    let (lines, first) = lines(vw, area, cx)?;
    let row = usize::from(y.checked_sub(area.y + 1)?);
    (first..lines.len()).contains(&row).then(|| row - first)
}

/// The inspector's lines for the cursor's token in `area`, and the index of the first
/// alternative's line.
fn lines(vw: &Viewer, area: Rect, cx: &Ctx) -> Option<(Vec<Line<'static>>, usize)> {
    let t = cx.theme;
    let s = vw.view.as_ref().and_then(|v| v.steps.get(vw.cursor))?;
    let inner_w = usize::from(area.width.saturating_sub(2));
    let dim = t.get("ui.dim");
    let text = t.get("ui.text");
    let rank = match RunView::rank(s) {
        Some(r) => r.to_string(),
        None if s.top.is_empty() => "?".into(),
        None => format!(">{}", s.top.len()),
    };
    let id = if s.token_id == UNKNOWN_TOKEN { "?".to_string() } else { s.token_id.to_string() };
    let logp = if s.logprob.is_nan() {
        vec![Span::styled("no logprobs from server", t.get("ui.warning"))]
    } else {
        vec![
            Span::styled(format!("{:.3}", s.logprob), t.get(logprob_key(s.logprob))),
            Span::styled(format!("  p {:.1}%", f64::from(s.logprob).exp() * 100.0), text),
        ]
    };
    let entropy = if s.entropy.is_nan() {
        Span::styled("unknown (top-k only)", dim)
    } else {
        Span::styled(format!("{:.3} nats", s.entropy), t.get(entropy_key(s.entropy)))
    };
    let mut lines = vec![
        Line::from(vec![
            Span::styled("token  ", dim),
            Span::styled(fit(&shown_token(&s.text), inner_w.saturating_sub(7)), t.get("ui.cursor")),
        ]),
        Line::from(vec![
            Span::styled("step   ", dim),
            Span::styled(format!("{}  id {id}  {}", s.index, s.phase.as_str()), text),
        ]),
        if s.logprob.is_nan() {
            Line::from(logp)
        } else {
            Line::from([vec![Span::styled("logp   ", dim)], logp].concat())
        },
        Line::from(vec![
            Span::styled("H      ", dim),
            entropy,
            Span::styled(format!("  rank {rank}"), text),
        ]),
        Line::from(vec![
            Span::styled("time   ", dim),
            Span::styled(format!("{:.1} ms", s.t_us as f64 / 1000.0), text),
        ]),
    ];
    if let Some(v) = vw.view.as_ref() {
        let d = &v.dynamics;
        let fork = d.is_fork(vw.cursor) && vw.colour != ColourBy::Logprob;
        if fork || vw.colour == ColourBy::Confidence {
            let c = d.conf.get(vw.cursor).copied().flatten();
            // The group whose window ends here (a run shorter than the window: its only one).
            let g = d
                .groups
                .binary_search_by_key(&vw.cursor, |(i, _)| *i)
                .ok()
                .map(|j| d.groups[j].1)
                .or_else(|| (d.groups.len() == 1).then(|| d.groups[0].1));
            let f = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |x| format!("{x:.2}"));
            let mut spans = vec![
                Span::styled("conf   ", dim),
                Span::styled(format!("C {} · group {}", f(c), f(g)), text),
            ];
            if fork {
                spans.push(Span::styled("  ◇ fork", t.get("ui.warning")));
            }
            lines.push(Line::from(spans));
        }
    }
    // A fork's forced token: how likely the model found it.
    if vw.view.as_ref().and_then(|v| v.run.forced_step()) == Some(s.index) {
        lines.push(Line::from(vec![
            Span::styled("fork   ", dim),
            Span::styled(
                fit(&crate::compare::forced_label(s), inner_w.saturating_sub(7)),
                t.get("ui.warning"),
            ),
        ]));
    }
    if let Some(n) = vw.note_at_cursor().and_then(|i| vw.view.as_ref()?.notes.get(i)) {
        let first = n.text.lines().next().unwrap_or("");
        lines.push(Line::from(vec![
            Span::styled("note   ", t.get("note.marker")),
            Span::styled(
                fit(&crate::tui::text::shown(first), inner_w.saturating_sub(7)),
                t.get("note.span"),
            ),
        ]));
    }
    // The flags the cursor is in: kind, then severity and span, then the detail on up to two
    // rows.
    for fl in vw.flags_at_cursor() {
        let w = inner_w.saturating_sub(7).max(1);
        let style = t.get(flag_key(&fl.kind));
        lines.push(Line::from(vec![
            Span::styled("flag   ", dim),
            Span::styled(fit(&format!("▲ {}", shown(&fl.kind.label())), w), style),
        ]));
        let span =
            format!("{} · steps {}", flags::severity(fl.severity), span_text(fl.start, fl.end));
        lines.push(Line::from(vec![
            Span::styled("       ", dim),
            Span::styled(fit(&span, w), text),
        ]));
        let mut rows = words(&shown(&fl.detail), w);
        if rows.len() > 2 {
            rows.truncate(2);
            if let Some(last) = rows.last_mut() {
                *last = format!("{last} …");
            }
        }
        for row in rows.into_iter().filter(|r| !r.is_empty()) {
            lines.push(Line::from(vec![
                Span::styled("       ", dim),
                Span::styled(fit(&row, w), text),
            ]));
        }
    }
    if let Some(run) = vw.view.as_ref().map(|v| &v.run).filter(|r| provenance::is_remote(r)) {
        // The short form; the sessions screen's run header has all of it.
        for (k, v) in provenance::rows(run) {
            let key = match k {
                "endpoint" => "from   ",
                "server" => "server ",
                "logprobs" => "logp.  ",
                "missing" => "absent ",
                _ => continue,
            };
            // What the server left out, on up to three rows.
            let rows = if k == "missing" { 3 } else { 1 };
            let w = inner_w.saturating_sub(7).max(1);
            let mut pieces = words(&v, w);
            if pieces.len() > rows {
                pieces.truncate(rows);
                if let Some(last) = pieces.last_mut() {
                    *last = fit(&format!("{last} …"), w);
                }
            }
            for (j, piece) in pieces.into_iter().enumerate() {
                let key = if j == 0 { key } else { "       " };
                lines.push(Line::from(vec![
                    Span::styled(key, dim),
                    Span::styled(fit(&piece, w), text),
                ]));
            }
        }
    }
    if vw.lens.open {
        if let Some(run) = vw.view.as_ref().map(|v| v.run.id) {
            let first = lines.len();
            let rows = super::super::lens::lines(&vw.lens, run, vw.cursor, inner_w, cx);
            lines.extend(rows);
            // No alternatives are drawn: a click lands on none (`first` past the end).
            let end = lines.len();
            return Some((lines, end.max(first)));
        }
    }
    let title = if s.top.is_empty() {
        "no alternatives recorded".to_string()
    } else {
        format!("top {} alternatives", s.top.len())
    };
    lines.push(Line::from(Span::styled(title, t.get("ui.title"))));
    let first = lines.len();
    let room = usize::from(area.height.saturating_sub(2)).saturating_sub(lines.len());
    let tok_w = 12.min(inner_w / 3).max(4);
    let bar_w = inner_w.saturating_sub(tok_w + 10);
    for alt in s.top.iter().take(room) {
        let p = f64::from(alt.logprob).exp();
        let chosen = RunView::is_chosen(s, alt);
        let filled = (p * bar_w as f64).round() as usize;
        let marker = if chosen { "▸" } else { " " };
        let style = if chosen { t.get("ui.selection") } else { text };
        lines.push(Line::from(vec![
            Span::styled(marker.to_string(), t.get("ui.help.key")),
            Span::styled(fit(&shown_token(&alt.text), tok_w), style),
            if p.is_nan() {
                Span::styled("     ?  ", dim)
            } else {
                Span::styled(format!(" {:>5.1}% ", p * 100.0), t.get(logprob_key(alt.logprob)))
            },
            Span::styled(
                "█".repeat(if p.is_nan() { 0 } else { filled.min(bar_w) }),
                t.get("ui.bar"),
            ),
        ]));
    }
    Some((lines, first))
}
