//! Issue 17 (usability) in the terminal UI: one step numbering (the JSONL `index`, ranges
//! `a–b` inclusive) on every screen, flags that explain themselves (inspector, status line,
//! legend, distinct styles), the marked run's badge, undo of a deleted annotation, the
//! export's overwrite question and absolute path, enter saving in every dialog, esc clearing
//! the sessions filter, the light theme's background and the remembered theme, and the list's
//! flag counts following analysis.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::{Color, Modifier};
use thinkdbg::trace::{FlagKind, Note};
use thinkdbg::tui::components::export_dialog::ExportDialog;
use thinkdbg::tui::components::{Overlay, Screen};
use thinkdbg::tui::theme::{self, ThemeSet};
use thinkdbg::tui::{Action, App, Dispatcher};

use crate::common::tui::{auto_flag, render, samples_app, screen_text, type_text, BIG, SMALL};

/// The samples with two flags and a note on the first run (kept as its current analysis).
fn app() -> (tempfile::TempDir, App) {
    samples_app(
        &[
            auto_flag(40, 41, FlagKind::LowConfidence, "p 0.21 at this token"),
            auto_flag(90, 92, FlagKind::EntropySpike, "H 3.1 nats"),
        ],
        &[Note { start: 10, end: 13, text: "look here".into() }],
    )
}

fn to_step(app: &mut App, i: usize) {
    app.update(Action::ScreenTrace);
    app.update(Action::Start);
    for _ in 0..i {
        app.update(Action::NextToken);
    }
    assert_eq!(app.viewer.cursor, i);
}

#[test]
fn every_screen_names_a_step_by_its_index_and_a_range_one_way() {
    let (_d, mut app) = app();
    to_step(&mut app, 40);
    let n = app.viewer.len();
    let text = screen_text(&mut app, BIG);
    assert!(text.contains(&format!("step 40 of 0–{}", n - 1)), "title:\n{text}");
    assert!(text.contains("· step 40 ·"), "status line:\n{text}");
    assert!(text.contains("step   40  id"), "inspector:\n{text}");
    assert!(!text.contains("41/") && !text.contains("tok "), "no 1-based position:\n{text}");
    // Visual selection 40..=42 in the title, as the toasts and the Flags list write ranges.
    app.update(Action::Mark);
    app.update(Action::NextToken);
    app.update(Action::NextToken);
    let text = screen_text(&mut app, BIG);
    assert!(text.contains("VISUAL 40–42"), "{text}");
    app.update(Action::Back);
    app.update(Action::ScreenFlags);
    let text = screen_text(&mut app, BIG);
    assert!(text.contains("steps 40 "), "a one-step flag:\n{text}");
    assert!(text.contains("steps 90–91 "), "an inclusive range:\n{text}");
    assert!(text.contains("steps 10–12 "), "the note's range:\n{text}");
    // The fork dialog names the same step.
    to_step(&mut app, 40);
    app.update(Action::Fork);
    assert!(screen_text(&mut app, BIG).contains("at step 40 "));
}

#[test]
fn the_flag_under_the_cursor_is_named_in_the_inspector_and_status_line() {
    let (_d, mut app) = app();
    to_step(&mut app, 30);
    app.update(Action::NextFlag);
    assert_eq!(app.viewer.cursor, 40);
    let text = screen_text(&mut app, BIG);
    let status = text.lines().nth(39).unwrap();
    assert!(status.contains("▲ low confidence (warn) steps 40"), "{status}");
    assert!(text.contains("flag   ▲ low confidence "), "inspector:\n{text}");
    assert!(text.contains("       warn · steps 40 "), "inspector:\n{text}");
    assert!(text.contains("p 0.21 at this token"), "the flag's detail:\n{text}");
    app.update(Action::NextToken);
    let text = screen_text(&mut app, BIG);
    assert!(!text.contains("low confidence (warn)"), "out of the span:\n{text}");
    // The legend under the trace, in both sizes.
    for size in [BIG, SMALL] {
        let text = screen_text(&mut app, size);
        assert!(text.contains("p≥.9") && text.contains("flag match selection"), "{text}");
    }
    app.update(Action::CycleColour);
    assert!(screen_text(&mut app, BIG).contains("H<.5"));
}

#[test]
fn flags_matches_and_the_selection_look_different_in_every_theme() {
    let set = ThemeSet::builtin();
    for name in set.names() {
        for no_color in [false, true] {
            let t = set.load(&name, no_color).unwrap();
            let flag = t.get("flag.low_confidence").add_modifier(Modifier::UNDERLINED);
            let (m, mark) = (t.get("ui.match"), t.get("ui.mark"));
            let note = t.get("note.span");
            let all = [flag, m, mark, note];
            for (i, a) in all.iter().enumerate() {
                for b in &all[i + 1..] {
                    assert_ne!(a, b, "{name} (no colour: {no_color}): {all:?}");
                }
            }
        }
    }
}

#[test]
fn the_marked_run_has_a_badge_and_hints_name_the_right_key() {
    let (_d, mut app) = app();
    let id = app.viewer.run_id().unwrap();
    app.update(Action::CompareMark);
    assert!(app.message.contains("press C "), "{}", app.message);
    let text = screen_text(&mut app, BIG);
    assert!(text.contains(&format!("│A {id} ")), "{text}");
    assert!(text.contains(&format!("A = {id}, marked")), "{text}");
    app.update(Action::ScreenCompare);
    let text = screen_text(&mut app, BIG);
    assert!(!text.contains("press c"), "{text}");
}

#[test]
fn a_deleted_note_comes_back_with_u() {
    let (_d, mut app) = app();
    let store = app.store.clone().unwrap();
    let id = app.viewer.run_id().unwrap();
    to_step(&mut app, 11);
    app.update(Action::DeleteAnnotation);
    assert!(app.message.contains("steps 10–12 · u undoes"), "{}", app.message);
    assert!(store.notes(id).unwrap().is_empty());
    app.update(Action::Undo);
    assert!(app.message.contains("restored the note on steps 10–12"), "{}", app.message);
    assert_eq!(store.notes(id).unwrap().len(), 1);
    assert_eq!(app.viewer.note_at_cursor(), Some(0));
    app.update(Action::Undo);
    assert_eq!(app.message, "nothing to undo");
    // The key is bound on the trace and Flags screens.
    let mut keys = Dispatcher::default();
    let u = KeyEvent::new(KeyCode::Char('u'), KeyModifiers::NONE);
    assert_eq!(keys.key(&app, u), Some(Action::Undo));
}

#[test]
fn export_asks_before_overwriting_and_names_the_absolute_path() {
    let (d, mut app) = app();
    let path = d.path().join("out.md");
    std::fs::write(&path, "keep me").unwrap();
    app.update(Action::ExportDialog);
    let Some(Overlay::Export(e)) = &mut app.overlay else { panic!("no export dialog") };
    e.path = path.display().to_string();
    app.update(Action::InputSubmit);
    assert!(matches!(app.overlay, Some(Overlay::Export(_))), "still asking");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
    assert!(app.message.contains("exists"), "{}", app.message);
    assert!(screen_text(&mut app, BIG).contains("the file exists: enter overwrites it"));
    app.update(Action::InputSubmit);
    assert!(app.overlay.is_none(), "{}", app.message);
    assert_ne!(std::fs::read_to_string(&path).unwrap(), "keep me");
    assert_eq!(app.message, format!("wrote '{}'", path.display()));
    // A relative path is reported as the absolute one it is written to.
    let rel = ExportDialog::new(thinkdbg::trace::RunId(1));
    assert!(rel.target().is_absolute() && rel.target().ends_with(&rel.path));
}

#[test]
fn enter_saves_a_note_and_alt_enter_or_ctrl_j_is_a_new_line() {
    let (_d, mut app) = app();
    to_step(&mut app, 50);
    app.update(Action::Note);
    assert!(matches!(app.overlay, Some(Overlay::Note(_))));
    let mut keys = Dispatcher::default();
    let key = |c, m| KeyEvent::new(c, m);
    assert_eq!(keys.key(&app, key(KeyCode::Enter, KeyModifiers::NONE)), Some(Action::InputSubmit));
    assert_eq!(keys.key(&app, key(KeyCode::Enter, KeyModifiers::ALT)), Some(Action::Input('\n')));
    assert_eq!(
        keys.key(&app, key(KeyCode::Char('j'), KeyModifiers::CONTROL)),
        Some(Action::Input('\n'))
    );
    assert!(screen_text(&mut app, BIG).contains("enter save · alt-enter or ctrl-j new line"));
}

#[test]
fn esc_clears_the_sessions_filter_and_the_status_line_shows_this_screens_search() {
    let (_d, mut app) = app();
    let all = app.sessions.visible.len();
    app.update(Action::Search);
    type_text(&mut app, "def ");
    app.update(Action::InputSubmit);
    assert!(app.sessions.visible.len() < all);
    let status = screen_text(&mut app, BIG).lines().nth(39).unwrap().to_string();
    assert!(status.contains("filter 'def '"), "{status}");
    app.update(Action::Back);
    assert_eq!((app.sessions.filter.as_str(), app.sessions.visible.len()), ("", all));
    assert_eq!(app.screen, Screen::Sessions);
    // While typing, esc drops the filter too.
    app.update(Action::Search);
    type_text(&mut app, "zzzz");
    assert_eq!(app.sessions.visible.len(), 0);
    app.update(Action::Back);
    assert_eq!((app.input.as_deref(), app.sessions.visible.len()), (None, all));
    // A trace search is not shown on the sessions screen.
    app.update(Action::ScreenTrace);
    app.update(Action::Search);
    type_text(&mut app, "the");
    app.update(Action::InputSubmit);
    let status = |app: &mut App| screen_text(app, BIG).lines().nth(39).unwrap().to_string();
    assert!(status(&mut app).contains("/the ("));
    app.update(Action::ScreenSessions);
    assert!(!status(&mut app).contains("/the"));
}

#[test]
fn the_light_theme_paints_its_background_and_the_theme_is_remembered() {
    let (d, mut app) = app();
    let cfg = d.path().join("config");
    app.config_dir = Some(cfg.clone());
    app.update(Action::CycleTheme);
    assert_eq!(app.theme.name, "light");
    assert_eq!(theme::remembered(&cfg).as_deref(), Some("light"));
    app.update(Action::ExportDialog);
    let term = render(&mut app, BIG);
    let buf = term.backend().buffer();
    let bg = Color::Rgb(0xfb, 0xfb, 0xfb);
    // Every cell has a background: the blank ones the theme's, a dialog's cleared ones too.
    assert!(buf.content.iter().all(|c| c.bg != Color::Reset), "a cell keeps the terminal's");
    assert_eq!(buf[(BIG.0 - 1, 0)].bg, bg, "a blank cell of the tab row");
    // A new UI on the same config starts with it.
    let app2 = thinkdbg::tui::build_app_in(None, None, Some(cfg)).unwrap();
    assert_eq!(app2.theme.name, "light");
}

#[test]
fn the_sessions_list_counts_the_flags_analysis_found_on_opening() {
    let (_d, mut app) = app();
    let store = app.store.clone().unwrap();
    // Every run but the first: its stored flags dropped, as before analysis.
    for e in app.sessions.runs.clone().iter().skip(1) {
        store.put_flags(e.run.id, &[]).unwrap();
    }
    app.reload().unwrap();
    let mut seen = 0;
    for row in 1..app.sessions.visible.len() {
        app.update(Action::Down);
        let id = app.viewer.run_id().unwrap();
        let e = app.sessions.runs.iter().find(|e| e.run.id == id).unwrap();
        let stored = store.flags(id).unwrap().len();
        assert_eq!(e.flags, stored, "row {row}");
        seen += stored;
    }
    assert!(seen > 0, "analysis found flags in some sample");
}

#[test]
fn a_click_moves_the_cursor_and_a_click_on_an_alternative_opens_the_fork_with_it() {
    let (_d, mut app) = app();
    to_step(&mut app, 7);
    // Where step 7 is drawn: the reversed cells of the trace pane.
    let term = render(&mut app, BIG);
    let buf = term.backend().buffer().clone();
    let (x, y) = (0..BIG.1)
        .flat_map(|y| (1..60).map(move |x| (x, y)))
        .find(|&(x, y)| buf[(x, y)].modifier.contains(Modifier::REVERSED))
        .expect("the cursor is drawn");
    app.update(Action::Start);
    app.update(Action::Click(x, y));
    assert_eq!(app.viewer.cursor, 7, "clicked at ({x}, {y})");
    // The wheel moves three lines; on the sessions list three rows.
    let line = app.viewer.view.as_ref().unwrap().line_of(7);
    app.update(Action::Scroll(true));
    assert_eq!(app.viewer.view.as_ref().unwrap().line_of(app.viewer.cursor), line + 3);
    // An alternative of a token with some: its row under the inspector's title.
    let v = app.viewer.view.clone().unwrap();
    let i = (0..v.len()).find(|&i| v.steps[i].top.len() >= 3).expect("a token with top-k");
    to_step(&mut app, i);
    let text = screen_text(&mut app, BIG);
    let title = text.lines().position(|l| l.contains("alternatives")).unwrap() as u16;
    let k = (0..3).find(|&k| v.steps[i].top[k].id != v.steps[i].token_id).unwrap();
    app.update(Action::Click(BIG.0 - 10, title + 1 + k as u16));
    let Some(Overlay::Fork(p)) = &app.overlay else { panic!("no fork dialog: {}", app.message) };
    assert_eq!(p.options[p.sel], v.steps[i].top[k]);
    assert_eq!(p.at as usize, i);
    app.update(Action::Back);
    app.update(Action::ScreenSessions);
    app.update(Action::Scroll(true));
    assert_eq!(app.sessions.selected, 3);
    // M turns capture off and on.
    assert!(app.mouse);
    app.update(Action::ToggleMouse);
    assert!(!app.mouse && app.message.contains("selects text"));
}
