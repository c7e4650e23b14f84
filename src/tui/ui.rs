//! Drawing the whole UI from `&App`: the tabs, the current screen's component, the status
//! line, the open dialog and the help overlay, or a short message when the terminal is too
//! small. Never mutates, never does I/O. May import `app`, `components` and `theme`.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use super::app::{cx, App};
use super::components::ctx::Ctx;
use super::components::viewer::draw::flags;
use super::components::{compare, Overlay, Screen};
use crate::tui::text::shown;

/// The smallest terminal the layout works in.
pub const MIN_SIZE: (u16, u16) = (60, 16);

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
        fill_background(f, t.get("ui.background"));
        return;
    }
    let [tabs, body, status] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(1)])
            .areas(area);
    draw_tabs(app, f, tabs);
    let cx: Ctx = cx!(app);
    let view = app.viewer.view.as_ref();
    match app.screen {
        Screen::Sessions => app.sessions.draw(f, body, &cx, view),
        Screen::Trace => app.viewer.draw_trace(f, body, &cx),
        Screen::Flags => app.viewer.draw_flags(f, body, &cx),
        Screen::Compare => match &app.compare {
            Some(c) => c.draw(f, body, &cx),
            None => compare::draw_empty(f, body, &cx),
        },
        Screen::Routing => app.viewer.draw_routing(f, body, &cx),
        Screen::Experiments => app.experiments.draw(f, body, &cx),
    }
    draw_status(app, f, status);
    match &app.overlay {
        Some(Overlay::Editor(e)) => e.draw(f, body, &cx),
        Some(Overlay::Fork(p)) => p.draw(f, body, &cx),
        Some(Overlay::Export(d)) => d.draw(f, body, &cx),
        Some(Overlay::Import(d)) => d.draw(f, body, &cx),
        Some(Overlay::Experiment(d)) => d.draw(f, body, &cx),
        Some(Overlay::Note(e)) => e.draw(f, body, &cx, view),
        Some(Overlay::UserFlag(e)) => e.draw(f, body, &cx, view),
        Some(Overlay::Resample(r)) => r.draw(f, body, &cx),
        Some(Overlay::ResamplePanel) => {
            if let Some(r) = &app.resample {
                r.draw(f, body, &cx);
            }
        }
        None => {}
    }
    if app.help.open {
        app.help.draw(f, area, &cx, app.screen);
    }
    fill_background(f, t.get("ui.background"));
}

/// Gives every cell that has no colour of its own the theme's background and foreground
/// (`ui.background`; a theme without it keeps the terminal's), so that a light theme stays
/// light in a dark terminal, dialogs and cleared areas included.
fn fill_background(f: &mut Frame, bg: ratatui::style::Style) {
    use ratatui::style::Color;
    let (fg, bg) = (bg.fg.unwrap_or(Color::Reset), bg.bg.unwrap_or(Color::Reset));
    if fg == Color::Reset && bg == Color::Reset {
        return;
    }
    for cell in f.buffer_mut().content.iter_mut() {
        if cell.bg == Color::Reset {
            cell.bg = bg;
        }
        if cell.fg == Color::Reset {
            cell.fg = fg;
        }
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
    if app.screen == Screen::Experiments {
        let s = Screen::Experiments;
        spans.push(Span::styled(format!(" {} ", s.title()), t.get("ui.tab.active")));
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
    } else if let Some(e) = &app.jobs.experiment {
        let what = if e.cancelled() { "stopping" } else { "X cancels" };
        spans.push(Span::styled(format!("  ● {} ({what}) ", e.status()), t.get("job.running")));
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
            Span::styled(format!("{}▏", shown(input)), st),
        ]);
        f.render_widget(Paragraph::new(line).style(st), area);
        return;
    }
    let mut left = String::new();
    let vw = &app.viewer;
    if let Some(v) = &vw.view {
        left.push_str(&format!(" {} ", v.run.id));
        if matches!(app.screen, Screen::Trace | Screen::Routing) && !v.is_empty() {
            let s = &v.steps[vw.cursor.min(v.len() - 1)];
            left.push_str(&format!("· step {} · {} ", vw.cursor, s.phase.as_str()));
            if let Some(fl) = vw.flags_at_cursor().first() {
                left.push_str(&format!("· {} ", flags::summary(fl)));
            }
        }
        if !vw.search.is_empty() && matches!(app.screen, Screen::Trace | Screen::Routing) {
            left.push_str(&format!("· /{} ({}) ", shown(&vw.search), vw.matches.len()));
        }
    }
    let ss = &app.sessions;
    if app.screen == Screen::Sessions && !ss.filter.is_empty() {
        left.push_str(&format!(
            "· filter '{}' ({} of {}) ",
            shown(&ss.filter),
            ss.visible.len(),
            ss.runs.len()
        ));
    }
    left.push_str(&format!("· theme {} ", app.theme.name));
    let right = if app.message.is_empty() {
        "? help  q quit ".to_string()
    } else {
        // Messages carry names, paths and server errors: shown like any untrusted text.
        format!("{} ", shown(&app.message))
    };
    let pad = usize::from(area.width).saturating_sub(left.width() + right.width());
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
