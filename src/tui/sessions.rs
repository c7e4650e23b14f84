//! The sessions component: sessions and their runs (label, model, tokens, status, flags,
//! date) and a summary of the selected run with an entropy sparkline. Depends on `app`,
//! `theme` and `trace`.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Sparkline, Wrap};
use ratatui::Frame;

use super::app::App;
use super::inspector::fit;
use super::timeline::buckets;
use super::ui::date;
use crate::sanitize::for_terminal;
use crate::trace::RunStatus;

fn status(s: &RunStatus) -> &'static str {
    match s {
        RunStatus::Recording => "recording",
        RunStatus::Complete => "complete",
        RunStatus::Interrupted => "interrupted",
        RunStatus::Failed(_) => "failed",
    }
}

pub fn draw(app: &App, f: &mut Frame, area: Rect) {
    let [list, summary] =
        Layout::horizontal([Constraint::Percentage(58), Constraint::Percentage(42)]).areas(area);
    draw_list(app, f, list);
    draw_summary(app, f, summary);
}

fn draw_list(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let title = if app.filter.is_empty() {
        format!(" Sessions · {} runs ", app.runs.len())
    } else {
        format!(
            " Sessions · {} of {} runs match '{}' ",
            app.visible.len(),
            app.runs.len(),
            for_terminal(&app.filter, false)
        )
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.get("ui.border.focus"))
        .title(Span::styled(title, t.get("ui.title")));
    let inner = block.inner(area);
    let w = usize::from(inner.width);
    let mut lines: Vec<Line> = Vec::new();
    let mut sel_row = 0;
    let mut last_session = None;
    for (row, &i) in app.visible.iter().enumerate() {
        let e = &app.runs[i];
        if last_session != Some(e.run.session) {
            last_session = Some(e.run.session);
            let title = app.session_of(&e.run).map_or("", |s| s.title.as_str());
            let head = format!("{} {}", e.run.session, for_terminal(title, false));
            lines.push(Line::from(Span::styled(fit(&head, w), t.get("ui.title"))));
        }
        if row == app.selected {
            sel_row = lines.len();
        }
        let label = e.run.label.as_deref().unwrap_or("-");
        let when = date(e.run.created_at);
        let label = fit(&for_terminal(label, false), 12);
        // Narrow lists drop the model and the date before the counts.
        let text = if w >= 72 {
            format!(
                "  {:<5} {label} {} {:>6} tok {:<11} {:>3} flags  {}",
                e.run.id.to_string(),
                fit(&for_terminal(&e.run.model.name, false), 12),
                e.steps,
                status(&e.run.status),
                e.flags,
                when.get(5..).unwrap_or(&when)
            )
        } else {
            format!(
                "  {:<5} {label} {:>6} {:<9} {:>3}▲",
                e.run.id.to_string(),
                e.steps,
                status(&e.run.status),
                e.flags
            )
        };
        let style = if row == app.selected { t.get("ui.selection") } else { t.get("ui.text") };
        lines.push(Line::from(Span::styled(fit(&text, w), style)));
    }
    if lines.is_empty() {
        let msg = if app.filter.is_empty() {
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

fn draw_summary(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.get("ui.border"))
        .title(Span::styled(" Run ", t.get("ui.title")));
    let (Some(e), Some(v)) = (app.selected_run(), app.view.as_ref()) else {
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
        kv("run", format!("{} {}", r.id, for_terminal(r.label.as_deref().unwrap_or(""), false))),
        kv(
            "model",
            if r.model.arch.is_empty() {
                for_terminal(&r.model.name, false).into_owned()
            } else {
                format!(
                    "{} ({}, {})",
                    for_terminal(&r.model.name, false),
                    r.model.arch,
                    r.model.quant
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
                    format!("failed: {}", for_terminal(msg, false))
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
    lines.extend(super::provenance::rows(r).into_iter().map(|(k, val)| kv(k, val)));
    lines.extend([
        kv("entropy", mean_h),
        kv("flags", e.flags.to_string()),
        kv("date", date(r.created_at)),
        Line::from(Span::styled("prompt", dim)),
    ]);
    for l in for_terminal(prompt, true).lines() {
        lines.push(Line::from(Span::styled(l.to_string(), txt)));
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
