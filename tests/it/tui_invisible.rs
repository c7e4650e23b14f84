//! Zero-width, format and control characters in model text and imported metadata (issue 16,
//! item 6) on TestBackend: stepping over a run whose tokens are U+200D, U+200B, U+FEFF, a lone
//! U+0301, ESC and U+202E, imported from a model whose arch and quant carry an OSC title
//! sequence (`tests/fixtures/invisible/invisible.jsonl`). No cell may hold a control, an
//! invisible character or a zero-width symbol (the terminal would print it in no column and
//! shift the rest of the row), the borders stay in their columns, the inspector shows the
//! step under the cursor, and a label typed into the flag dialog keeps no bidi control.

use std::sync::Arc;

use ratatui::buffer::Buffer;

use thinkdbg::store::{import, Store};
use thinkdbg::trace::{FlagKind, RunId};
use thinkdbg::tui::components::{Overlay, Screen};
use thinkdbg::tui::{Action, App};
use unicode_width::UnicodeWidthStr;

use crate::common::tui::{app_with, cells, render, snap, type_text, BIG, SMALL};

const FIXTURE: &str = include_str!("../fixtures/invisible/invisible.jsonl");

/// An app on a store holding the fixture's one run, and that run's id.
fn invisible_app() -> (tempfile::TempDir, App, RunId) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let records = thinkdbg::export::jsonl::parse(FIXTURE).unwrap();
    let runs = import::import(&store, records).unwrap().runs;
    assert_eq!(runs.len(), 1);
    (dir, app_with(Some(Arc::new(store))), runs[0])
}

/// Characters that draw nothing (or that terminals disagree on): the ones the fixture holds
/// and their neighbours.
fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}')
        || c == '\u{FEFF}'
}

/// Every cell is safe and takes a column.
fn assert_cells(buf: &Buffer, what: &str) {
    let (w, h) = (buf.area.width, buf.area.height);
    for y in 0..h {
        for x in 0..w {
            let s = buf[(x, y)].symbol();
            assert!(!s.chars().any(invisible), "{what}: {s:?} at ({x},{y})");
            assert!(s.width() >= 1, "{what}: zero-width {s:?} at ({x},{y})");
        }
    }
}

/// `assert_cells`, and every vertical border seen on a pane's top row (`┌`, `┐`) continues
/// straight down to its bottom corner (on a screen without a dialog over the panes).
fn assert_sound(buf: &Buffer, what: &str) {
    assert_cells(buf, what);
    let (w, h) = (buf.area.width, buf.area.height);
    for y in 0..h {
        for x in 0..w {
            if !matches!(buf[(x, y)].symbol(), "┌" | "┐") {
                continue;
            }
            let mut yy = y + 1;
            while yy < h && !matches!(buf[(x, yy)].symbol(), "└" | "┘") {
                let s = buf[(x, yy)].symbol();
                assert!(matches!(s, "│" | "├" | "┤"), "{what}: border broken at ({x},{yy}): {s:?}");
                yy += 1;
            }
            assert!(yy < h, "{what}: the border from ({x},{y}) has no bottom corner");
        }
    }
}

#[test]
fn the_run_header_shows_imported_controls_as_symbols() {
    let (_d, mut app, _) = invisible_app();
    for size in [BIG, SMALL] {
        let term = render(&mut app, size);
        assert_sound(term.backend().buffer(), "sessions");
    }
    let text = cells(render(&mut app, BIG).backend().buffer());
    assert!(text.contains("llama␛]0;pwned␇"), "{text}");
    assert!(text.contains("Q4_1␛]0;pwned␇"), "{text}");
    assert!(text.contains("tiny⟨U+200D⟩model"), "{text}");
    snap!(&mut app, "invisible_sessions");
}

#[test]
fn stepping_over_invisible_tokens_keeps_every_pane_in_its_columns() {
    let (_d, mut app, _) = invisible_app();
    app.update(Action::Open);
    assert_eq!(app.screen, Screen::Trace);
    let n = app.viewer.view.as_ref().unwrap().len();
    for i in 0..n {
        assert_eq!(app.viewer.cursor, i);
        for size in [BIG, SMALL] {
            let term = render(&mut app, size);
            let buf = term.backend().buffer();
            assert_sound(buf, &format!("step {i} at {size:?}"));
            // The inspector shows this step, not a previous one.
            let want = format!("step   {i}  id {}", 3200 + 7 * i);
            assert!(cells(buf).contains(&want), "step {i}: no '{want}':\n{}", cells(buf));
        }
        match i {
            2 => snap!(&mut app, "invisible_zwj"),
            8 => snap!(&mut app, "invisible_lone_mark"),
            _ => {}
        }
        app.update(Action::NextToken);
    }
    let text = cells(render(&mut app, BIG).backend().buffer());
    for shown in ["Zero⟨U+200D⟩ width⟨U+200B⟩ space⟨U+FEFF⟩ e◌\u{301}", "esc:␛[2J", "⟨U+202E⟩txt"]
    {
        assert!(text.contains(shown), "no '{shown}':\n{text}");
    }
}

#[test]
fn a_flag_label_keeps_no_bidi_or_invisible_character() {
    let (_d, mut app, run) = invisible_app();
    app.update(Action::Open);
    app.update(Action::NextToken);
    app.update(Action::UserFlag);
    assert!(matches!(app.overlay, Some(Overlay::UserFlag(_))), "{}", app.message);
    type_text(&mut app, "ok\u{202e}gpj.exe\u{200b}\u{1b}[2J");
    app.update(Action::FieldNext);
    type_text(&mut app, "see\u{2066} \u{feff}this");
    assert_cells(render(&mut app, BIG).backend().buffer(), "flag dialog");
    app.update(Action::InputSubmit);
    assert!(app.overlay.is_none(), "{}", app.message);
    let flags = app.store.as_ref().unwrap().flags(run).unwrap();
    let user: Vec<_> = flags.iter().filter(|f| matches!(f.kind, FlagKind::User(_))).collect();
    assert_eq!(user.len(), 1, "{flags:?}");
    assert_eq!(user[0].kind, FlagKind::User("okgpj.exe[2J".into()));
    assert_eq!(user[0].detail, "see this");
}
