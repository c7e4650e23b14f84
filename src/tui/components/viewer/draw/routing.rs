//! The routing screen for MoE runs: a layer × selected-experts grid for the token under
//! the cursor with gate weights as heat, and expert usage (chosen layer) over the marked span
//! or the whole run; with a marker chosen (`c`), the experts most associated with it (nPMI,
//! `analysis::experts`) are underlined and listed per layer. May import the viewer, `run_view`, `components::widgets` and `theme`.

use std::collections::HashMap;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use crate::export::annotate::span_text;
use crate::tui::components::ctx::Ctx;
use crate::tui::components::viewer::Viewer;
use crate::tui::text::shown_token;

/// Heat bucket 0..=4 of a gate weight.
pub fn heat(w: f32) -> usize {
    ((w.clamp(0.0, 1.0) * 5.0) as usize).min(4)
}

pub fn draw(vw: &Viewer, f: &mut Frame, area: Rect, cx: &Ctx) {
    let t = cx.theme;
    let Some(v) = vw.view.as_ref().filter(|v| v.is_moe()) else {
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(t.get("ui.border"))
            .title(Span::styled(" Routing ", t.get("ui.title")));
        f.render_widget(
            Paragraph::new(Span::styled(
                "This run has no expert routing (a dense model). MoE runs show a layer × expert grid here.",
                t.get("ui.dim"),
            ))
            .block(block),
            area,
        );
        return;
    };
    let [grid_area, usage_area] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(area);
    let tok = v.steps.get(vw.cursor).map(|s| shown_token(&s.text)).unwrap_or_default();
    let route = v.routing_at(vw.cursor);
    // Servers return expert ids only: no weights are made up for them.
    let ids_only = route.is_some_and(|r| r.layers.iter().all(|l| l.weights.is_none()));
    let note = if ids_only { "· expert ids only, weights unknown " } else { "" };
    let note = match vw.marker {
        Some(m) => format!("{note}· ★ nPMI with '{}' (c) ", m.as_str()),
        None => note.to_string(),
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.get("ui.border.focus"))
        .title(Span::styled(
            format!(" Routing · step {} «{}» {note}", vw.cursor, tok),
            t.get("ui.title"),
        ));
    let inner = block.inner(grid_area);
    let h = usize::from(inner.height);
    let mut lines = Vec::new();
    let first = vw.layer.saturating_sub(h / 2).min(v.layers.saturating_sub(h));
    for li in first..(first + h).min(v.layers) {
        let mut spans = vec![Span::styled(
            format!("{}L{li:<3} ", if li == vw.layer { "▸" } else { " " }),
            if li == vw.layer { t.get("ui.help.key") } else { t.get("ui.dim") },
        )];
        let cognitive = vw.cognitive_of(li);
        match route.and_then(|r| r.layers.iter().find(|l| usize::from(l.layer) == li)) {
            Some(l) => {
                for (k, e) in l.experts.iter().enumerate() {
                    let hot = cognitive.iter().any(|(x, _)| x == e);
                    let w = l.weights.as_ref().and_then(|w| w.get(k)).copied();
                    let st = match w {
                        Some(w) => t.get(&format!("expert.heat.{}", heat(w))),
                        None => t.get("ui.text"),
                    };
                    let cell = match w {
                        Some(w) => format!("{e:>3}:{w:.2} "),
                        None => format!("{e:>3}      "),
                    };
                    let mut st = st
                        .patch(t.get("ui.cursor"))
                        .remove_modifier(ratatui::style::Modifier::BOLD);
                    if hot {
                        // A cognitive expert of the chosen marker.
                        st = st.add_modifier(
                            ratatui::style::Modifier::UNDERLINED | ratatui::style::Modifier::BOLD,
                        );
                    }
                    spans.push(Span::styled(cell, st));
                }
                if !cognitive.is_empty() {
                    let list: Vec<String> =
                        cognitive.iter().map(|(e, n)| format!("e{e} {n:.2}")).collect();
                    spans.push(Span::styled(format!(" ★ {}", list.join(" ")), t.get("ui.dim")));
                }
            }
            None => spans.push(Span::styled("—", t.get("ui.dim"))),
        }
        lines.push(Line::from(spans));
    }
    f.render_widget(Paragraph::new(lines).block(block), grid_area);

    // Usage of the chosen layer's experts over the span.
    let (a, b) = match vw.mark {
        Some(m) => (m.min(vw.cursor), m.max(vw.cursor) + 1),
        None => (0, v.len()),
    };
    let mut counts: HashMap<u16, usize> = HashMap::new();
    for i in a..b {
        if let Some(l) =
            v.routing_at(i).and_then(|r| r.layers.iter().find(|l| usize::from(l.layer) == vw.layer))
        {
            for e in &l.experts {
                *counts.entry(*e).or_default() += 1;
            }
        }
    }
    let mut top: Vec<(u16, usize)> = counts.into_iter().collect();
    top.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    let span = if vw.mark.is_some() {
        format!("steps {}", span_text(a as u32, b as u32))
    } else {
        "whole run".into()
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.get("ui.border"))
        .title(Span::styled(format!(" Expert usage · L{} · {span} ", vw.layer), t.get("ui.title")));
    let inner = block.inner(usage_area);
    let bar_w = usize::from(inner.width).saturating_sub(14);
    let max = top.first().map_or(1, |x| x.1).max(1);
    let tokens = (b - a).max(1);
    let lines: Vec<Line> = top
        .iter()
        .take(usize::from(inner.height))
        .map(|(e, c)| {
            Line::from(vec![
                Span::styled(
                    format!("e{e:<4}{:>5.1}% ", *c as f64 * 100.0 / tokens as f64),
                    t.get("ui.text"),
                ),
                Span::styled("█".repeat(c * bar_w / max), t.get(&format!("expert.id.{}", e % 8))),
            ])
        })
        .collect();
    f.render_widget(Paragraph::new(lines).block(block), usage_area);
}
