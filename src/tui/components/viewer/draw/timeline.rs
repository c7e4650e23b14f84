//! The timeline pane: the whole run's entropy (or surprise, -logprob, or DeepConf token
//! confidence with the early-stop marker) as a sparkline, forking-token and flag markers under
//! it and the cursor's position. May import the viewer, `components::widgets`
//! and `theme`.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use crate::analysis::confidence::RunConfidence;
use crate::trace::FlagKind;
use crate::tui::components::ctx::Ctx;
use crate::tui::components::viewer::{ColourBy, Viewer};
use crate::tui::components::widgets::buckets;

const BARS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The theme key of a flag kind.
pub fn flag_key(kind: &FlagKind) -> &'static str {
    match kind {
        FlagKind::LanguageSwitch => "flag.language",
        FlagKind::LowConfidence => "flag.low_confidence",
        FlagKind::EntropySpike => "flag.entropy_spike",
        FlagKind::Repetition => "flag.repetition",
        FlagKind::Backtrack => "flag.backtrack",
        FlagKind::ThinkIntegrity => "flag.integrity",
        FlagKind::AnswerMismatch => "flag.mismatch",
        FlagKind::User(_) => "flag.user",
    }
}

/// The confidence mode's title: the run's DeepConf summary.
fn confidence_title(c: &RunConfidence) -> String {
    let f = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |x| format!("{x:.2}"));
    let stop = match c.stop_step {
        Some(s) if c.stop_threshold > 0.0 => format!(" · ✂ stop at {s}"),
        _ => String::new(),
    };
    format!(
        " Timeline · confidence (tall = sure) · lowest group {} · bottom 10% {} · tail {}{stop} ",
        f(c.lowest_group),
        f(c.bottom10_group),
        f(c.tail_confidence)
    )
}

pub fn draw(vw: &Viewer, f: &mut Frame, area: Rect, cx: &Ctx) {
    let t = cx.theme;
    let confidence = vw.colour == ColourBy::Confidence;
    let entropy = vw.colour != ColourBy::Logprob && !confidence;
    let title = match (&vw.view, confidence) {
        (Some(v), true) => confidence_title(&v.dynamics.summary),
        _ if entropy => " Timeline · entropy · ◇ forking tokens (. ,) ".to_string(),
        _ => " Timeline · surprise (−logprob) ".to_string(),
    };
    let title = match vw.view.as_ref().and_then(|v| v.dynamics.probe.as_ref()) {
        Some(_) => format!("{title}· probe: ◉ settled ● final answer ○ another "),
        None => title,
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.get("ui.border"))
        .title(Span::styled(title, t.get("ui.title")));
    let inner = block.inner(area);
    let w = usize::from(inner.width);
    let Some(v) = vw.view.as_ref().filter(|v| !v.is_empty() && w > 0) else {
        f.render_widget(Paragraph::new("").block(block), area);
        return;
    };
    let n = v.len();
    let col_of = |step: usize| if n <= w { step } else { step * w / n };
    let value = |i: usize| -> f32 {
        let s = &v.steps[i];
        if confidence {
            v.dynamics.conf.get(i).copied().flatten().map_or(f32::NAN, |c| c as f32)
        } else if entropy {
            s.entropy
        } else {
            -s.logprob
        }
    };
    let vals: Vec<f32> = if n <= w {
        (0..n).map(value).collect()
    } else if confidence {
        // The least confident token of each column: dips are what the mode is for.
        let mut out = vec![f32::NAN; w];
        for i in 0..n {
            let c = &mut out[(i * w / n).min(w - 1)];
            *c = c.min(value(i));
        }
        out
    } else {
        buckets((0..n).map(value), w)
    };
    let max = vals.iter().copied().fold(0f32, f32::max).max(1e-6);
    // The probe's row (answer-now answers) takes a row from the sparkline when there is room.
    let probe = v.dynamics.probe.as_ref().filter(|_| inner.height >= 3);
    let rows = usize::from(inner.height.saturating_sub(1 + u16::from(probe.is_some()))).max(1);
    let key = if entropy || confidence { "spark.entropy" } else { "spark.logprob" };
    let cursor_col = col_of(vw.cursor);
    let mut lines = Vec::new();
    for r in (0..rows).rev() {
        let mut s = String::with_capacity(w * 3);
        for x in vals.iter() {
            let level = (x / max * (rows * 8) as f32).round() as usize;
            let here = level.saturating_sub(r * 8).min(8);
            s.push(BARS[here]);
        }
        let mut spans = vec![Span::styled(s, t.get(key))];
        // Draw the cursor column over the bars.
        if let Some(Span { content, .. }) = spans.first() {
            let chars: Vec<char> = content.chars().collect();
            if cursor_col < chars.len() {
                let before: String = chars[..cursor_col].iter().collect();
                let at: String = chars[cursor_col].to_string();
                let at = if at == " " { "│".to_string() } else { at };
                let after: String = chars[cursor_col + 1..].iter().collect();
                spans = vec![
                    Span::styled(before, t.get(key)),
                    Span::styled(at, t.get("timeline.cursor").patch(t.get("ui.cursor"))),
                    Span::styled(after, t.get(key)),
                ];
            }
        }
        lines.push(Line::from(spans));
    }
    if let Some(p) = probe {
        let mut row: Vec<(char, &'static str)> = vec![(' ', "ui.dim"); w];
        for (j, pt) in p.points.iter().enumerate() {
            let c = col_of(pt.at).min(w - 1);
            row[c] = if p.settled == Some(j) {
                ('◉', "ui.title")
            } else if pt.matches {
                ('●', "ui.text")
            } else {
                ('○', "ui.warning")
            };
        }
        lines.push(Line::from(
            row.into_iter().map(|(c, k)| Span::styled(c.to_string(), t.get(k))).collect::<Vec<_>>(),
        ));
    }
    // Marker row: forking tokens, flags, the early stop, the mark and the cursor.
    let mut marks: Vec<Span> = Vec::new();
    let mut row: Vec<(char, &'static str)> = vec![(' ', "ui.dim"); w];
    // Forking tokens are entropy's: marked in the entropy and confidence modes.
    if entropy || confidence {
        for &i in &v.dynamics.forks {
            row[col_of(i).min(w - 1)] = ('◇', "ui.dim");
        }
    }
    for fl in &v.flags {
        let c = col_of(fl.start as usize).min(w - 1);
        row[c] = ('▲', flag_key(&fl.kind));
    }
    if let Some(stop) = v.dynamics.summary.stop_step.filter(|_| confidence) {
        row[col_of(stop).min(w - 1)] = ('✂', "ui.warning");
    }
    if let Some(m) = vw.mark {
        row[col_of(m).min(w - 1)] = ('◆', "ui.mark");
    }
    row[cursor_col.min(w - 1)] = ('┃', "timeline.cursor");
    for (c, k) in row {
        marks.push(Span::styled(c.to_string(), t.get(k)));
    }
    lines.push(Line::from(marks));
    f.render_widget(Paragraph::new(lines).block(block), area);
}
