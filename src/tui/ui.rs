//! Drawing the whole UI from `&App`: tabs, the current screen, the status line, overlays,
//! and a short message when the terminal is too small. Never does I/O. Depends on the
//! component files of the tui.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::app::Overlay;
use super::app::{App, Screen};
use super::{
    annotate, compare, editor, export_dialog, flags, fork_picker, help, inspector, resample_panel,
    routing, sessions, timeline, trace,
};
use crate::sanitize::for_terminal;

/// The smallest terminal the layout works in.
pub const MIN_SIZE: (u16, u16) = (60, 16);

/// `YYYY-MM-DD HH:MM` (UTC) for milliseconds since the epoch.
pub fn date(ms: u64) -> String {
    let secs = ms / 1000;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let (y, mo, d) = crate::trace::civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}")
}

pub fn draw(app: &App, f: &mut Frame) {
    let area = f.area();
    let t = &app.theme;
    if area.width < MIN_SIZE.0 || area.height < MIN_SIZE.1 {
        let msg = format!(
            "Terminal too small: {}×{}.\nthinkdbg needs at least {}×{}.\nEnlarge the window, or press q to quit.",
            area.width, area.height, MIN_SIZE.0, MIN_SIZE.1
        );
        f.render_widget(
            Paragraph::new(msg).style(t.get("ui.warning")).wrap(Wrap { trim: true }),
            area,
        );
        return;
    }
    let [tabs, body, status] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(1)])
            .areas(area);
    draw_tabs(app, f, tabs);
    match app.screen {
        Screen::Sessions => sessions::draw(app, f, body),
        Screen::Trace => {
            let [top, tl] =
                Layout::vertical([Constraint::Min(5), Constraint::Length(5)]).areas(body);
            let insp_w = (top.width / 3).clamp(30, 48);
            let [text, insp] =
                Layout::horizontal([Constraint::Min(20), Constraint::Length(insp_w)]).areas(top);
            trace::draw(app, f, text);
            inspector::draw(app, f, insp);
            timeline::draw(app, f, tl);
        }
        Screen::Flags => flags::draw(app, f, body),
        Screen::Compare => compare::draw(app, f, body),
        Screen::Routing => {
            let [top, tl] =
                Layout::vertical([Constraint::Min(5), Constraint::Length(5)]).areas(body);
            routing::draw(app, f, top);
            timeline::draw(app, f, tl);
        }
    }
    draw_status(app, f, status);
    match &app.overlay {
        Some(Overlay::Editor(e)) => editor::draw(app, e, f, body),
        Some(Overlay::Fork(p)) => fork_picker::draw(app, p, f, body),
        Some(Overlay::Export(d)) => export_dialog::draw(app, d, f, body),
        Some(Overlay::Note(e)) => annotate::draw_note(app, e, f, body),
        Some(Overlay::UserFlag(e)) => annotate::draw_flag(app, e, f, body),
        Some(Overlay::Resample(r)) => resample_panel::draw_form(app, r, f, body),
        Some(Overlay::ResamplePanel) => resample_panel::draw_panel(app, f, body),
        None => {}
    }
    if app.help {
        help::draw(app, f, area);
    }
}

fn draw_tabs(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let mut spans = vec![Span::styled(" thinkdbg ", t.get("ui.title"))];
    for s in Screen::ALL {
        let st = if s == app.screen { t.get("ui.tab.active") } else { t.get("ui.tab") };
        spans.push(Span::styled(format!(" {} ", s.title()), st));
    }
    if app.compare.is_some() || app.screen == Screen::Compare {
        let s = Screen::Compare;
        let st = if s == app.screen { t.get("ui.tab.active") } else { t.get("ui.tab") };
        spans.push(Span::styled(format!(" {} ", s.title()), st));
    }
    if let Some((done, total)) = app.jobs.loading {
        let pct = (done * 100).checked_div(total).unwrap_or(0);
        spans.push(Span::styled(format!("  loading model {pct}% "), t.get("ui.warning")));
    } else if let Some(r) = app.resample.as_ref().filter(|r| !r.finished()) {
        spans.push(Span::styled(
            format!(
                "  ● resampling {}/{} (P panel, X cancels) ",
                r.runs.len() - r.running(),
                r.runs.len()
            ),
            t.get("job.running"),
        ));
    } else if let Some(r) = app.jobs.running.first() {
        spans.push(Span::styled(
            format!("  ● recording {} (X cancels) ", r.run),
            t.get("job.running"),
        ));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_status(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let st = t.get("ui.status");
    if let Some(input) = &app.input {
        let prompt = if app.screen == Screen::Sessions { "filter: " } else { "/" };
        let line = Line::from(vec![
            Span::styled(prompt, st.patch(t.get("ui.help.key"))),
            Span::styled(format!("{}▏", for_terminal(input, false)), st),
        ]);
        f.render_widget(Paragraph::new(line).style(st), area);
        return;
    }
    let mut left = String::new();
    if let Some(v) = &app.view {
        left.push_str(&format!(" {} ", v.run.id));
        if matches!(app.screen, Screen::Trace | Screen::Routing) && !v.is_empty() {
            let s = &v.steps[app.cursor.min(v.len() - 1)];
            left.push_str(&format!("· tok {}/{} · {} ", app.cursor + 1, v.len(), s.phase.as_str()));
        }
        if !app.search.is_empty() {
            left.push_str(&format!(
                "· /{} ({}) ",
                for_terminal(&app.search, false),
                app.matches.len()
            ));
        }
    }
    left.push_str(&format!("· theme {} ", app.theme.name));
    let right = if app.message.is_empty() {
        "? help  q quit ".to_string()
    } else {
        format!("{} ", app.message)
    };
    let pad = usize::from(area.width).saturating_sub(left.chars().count() + right.chars().count());
    let line = Line::from(vec![
        Span::styled(left, st),
        Span::styled(" ".repeat(pad), st),
        Span::styled(
            right,
            if app.message.is_empty() { st } else { st.patch(t.get("ui.warning")) },
        ),
    ]);
    f.render_widget(Paragraph::new(line).style(st), area);
}
