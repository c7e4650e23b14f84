//! The debugging loop in the terminal UI on ratatui's TestBackend: snapshots of the compare
//! screen, the prompt editor and the fork picker on hand-made runs in a real store, and the
//! actions behind them (alignment-following cursor, divergence jump, editor validation).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use ratatui::backend::TestBackend;
use ratatui::Terminal;
use thinkdbg::store::Store;
use thinkdbg::trace::{
    Message, Phase, Run, RunId, RunStatus, SamplerSpec, Session, SessionId, Step, TopToken,
};
use thinkdbg::tui::app::{Overlay, Screen};
use thinkdbg::tui::keymap::Keymap;
use thinkdbg::tui::theme::ThemeSet;
use thinkdbg::tui::{ui, Action, App};

const BIG: (u16, u16) = (120, 40);
const SMALL: (u16, u16) = (80, 24);

fn step(i: u32, id: u32, text: &str, lp: f32) -> Step {
    let phase = if i < 8 { Phase::Think } else { Phase::Answer };
    Step {
        index: i,
        token_id: id,
        text: text.into(),
        logprob: lp,
        entropy: -lp * 1.5,
        phase,
        t_us: u64::from(i) * 20_000,
        top: vec![
            TopToken { id, text: text.into(), logprob: lp },
            TopToken { id: 900 + i, text: format!(" alt{i}"), logprob: lp - 0.7 },
            TopToken { id: 950 + i, text: "</script>".into(), logprob: lp - 1.9 },
        ],
    }
}

const A: &[&str] =
    &[" Let", " me", " add", " 2", " and", " 2", ".", "\n", "The", " answer", " is", " 4", "."];
const B: &[&str] =
    &[" Let", " me", " add", " 2", " plus", " 3", ".", "\n", "The", " answer", " is", " 5", "."];

fn put_run(store: &Store, s: SessionId, id: u64, words: &[&str], parent: Option<(u64, u32)>) {
    let mut r = Run::new_recording(RunId(id), s, SamplerSpec::default());
    r.created_at = 1_795_000_000_000 + id;
    r.model.name = "tiny-test".into();
    r.label = Some(if parent.is_some() { "fork@4".into() } else { "R1".into() });
    r.parent = parent.map(|(p, at)| (RunId(p), at));
    r.messages = vec![Message::new("system", "Be brief."), Message::new("user", "What is 2 + 2?")];
    r.status = RunStatus::Complete;
    store.put_run(&r).unwrap();
    let steps: Vec<_> = words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let id = words_id(w);
            (step(i as u32, id, w, -0.1 - (i % 4) as f32 * 0.5), None)
        })
        .collect();
    store.put_steps(r.id, &steps).unwrap();
}

fn words_id(w: &str) -> u32 {
    w.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))) % 800
}

fn loop_app() -> (tempfile::TempDir, App) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let sid = SessionId(1);
    put_run(&store, sid, 10, A, None);
    put_run(&store, sid, 11, B, Some((10, 4)));
    store
        .put_session(&Session {
            id: sid,
            title: "two plus two".into(),
            created_at: 1_795_000_000_000,
            tags: vec![],
            runs: vec![RunId(10), RunId(11)],
        })
        .unwrap();
    let themes = ThemeSet::builtin();
    let theme = themes.load("dark", false).unwrap();
    let mut app = App::new(Some(Arc::new(store)), Keymap::merged(None).unwrap(), themes, theme);
    app.reload().unwrap();
    (dir, app)
}

fn render(app: &mut App, size: (u16, u16)) -> Terminal<TestBackend> {
    app.update(Action::Resize(size.0, size.1));
    let mut term = Terminal::new(TestBackend::new(size.0, size.1)).unwrap();
    term.draw(|f| ui::draw(app, f)).unwrap();
    term
}

fn snap(app: &mut App, name: &str) {
    for (label, size) in [("big", BIG), ("small", SMALL)] {
        let term = render(app, size);
        insta::assert_snapshot!(format!("{name}_{label}"), term.backend());
    }
}

/// Opens the fork (second run) and compares it with its parent.
fn compared() -> (tempfile::TempDir, App) {
    let (d, mut app) = loop_app();
    app.update(Action::Down);
    app.update(Action::Open);
    assert_eq!(app.view.as_ref().unwrap().run.id, RunId(11));
    app.update(Action::Compare);
    assert_eq!(app.screen, Screen::Compare, "{}", app.message);
    (d, app)
}

#[test]
fn compare_screen_opens_at_the_fork_and_marks_the_divergence() {
    let (_d, mut app) = compared();
    let c = app.compare.as_ref().unwrap();
    assert_eq!((c.a.run.id, c.b.run.id), (RunId(10), RunId(11)));
    assert_eq!(c.cursor, 4, "opens at the fork step");
    assert_eq!(c.divergence(), Some(4));
    assert_eq!(c.cmp.answers_agree, Some(false));
    assert!(c.diff_a[4] && !c.diff_a[3] && !c.diff_a[8]);
    snap(&mut app, "compare");
}

#[test]
fn compare_cursor_moves_both_runs_and_jumps_to_the_divergence() {
    let (_d, mut app) = compared();
    app.update(Action::Start);
    assert_eq!(app.compare.as_ref().unwrap().cursor, 0);
    for _ in 0..9 {
        app.update(Action::NextToken);
    }
    let c = app.compare.as_ref().unwrap();
    assert_eq!((c.cursor, c.cursor_b()), (9, 9));
    assert_eq!(c.b.steps[c.cursor_b()].text, " answer");
    app.update(Action::JumpDivergence);
    assert_eq!(app.compare.as_ref().unwrap().cursor, 4);
    app.update(Action::End);
    assert_eq!(app.compare.as_ref().unwrap().cursor, A.len() - 1);
}

#[test]
fn compare_any_two_runs_by_marking_one() {
    let (_d, mut app) = loop_app();
    app.update(Action::Down);
    app.update(Action::CompareMark);
    app.update(Action::Up);
    app.update(Action::Compare);
    let c = app.compare.as_ref().expect("compare opened");
    assert_eq!((c.a.run.id, c.b.run.id), (RunId(11), RunId(10)));
}

#[test]
fn compare_without_a_parent_or_mark_says_so() {
    let (_d, mut app) = loop_app();
    app.update(Action::Compare);
    assert!(app.compare.is_none());
    assert!(app.message.contains("no parent"), "{}", app.message);
}

#[test]
fn prompt_editor_is_prefilled_and_edits_fields() {
    let (_d, mut app) = loop_app();
    app.update(Action::ScreenTrace);
    app.update(Action::EditRerun);
    let Some(Overlay::Editor(e)) = &app.overlay else { panic!("no editor") };
    assert_eq!(e.values[0], "Be brief.");
    assert_eq!(e.values[1], "What is 2 + 2?");
    assert_eq!(e.focus, 1);
    for _ in 0.."What is 2 + 2?".len() {
        app.update(Action::InputBackspace);
    }
    for c in "What is 3 + 3?".chars() {
        app.update(Action::Input(c));
    }
    snap(&mut app, "prompt_editor");
    // max_tokens: typing a letter makes it invalid; submit reports the field and stays open.
    for _ in 0..5 {
        app.update(Action::FieldNext);
    }
    app.update(Action::Input('x'));
    app.update(Action::InputSubmit);
    assert!(app.message.contains("max_tokens"), "{}", app.message);
    assert!(matches!(app.overlay, Some(Overlay::Editor(_))));
    let Some(Overlay::Editor(e)) = &app.overlay else { panic!() };
    assert_eq!(e.values[1], "What is 3 + 3?");
    app.update(Action::Back);
    assert!(app.overlay.is_none());
}

#[test]
fn fork_picker_lists_the_alternatives_and_typed_text() {
    let (_d, mut app) = loop_app();
    app.update(Action::ScreenTrace);
    for _ in 0..4 {
        app.update(Action::NextToken);
    }
    app.update(Action::Fork);
    let Some(Overlay::Fork(p)) = &app.overlay else { panic!("no picker") };
    assert_eq!(p.at, 4);
    assert_eq!(p.options.len(), 2, "the chosen token is not offered");
    snap(&mut app, "fork_picker");
    app.update(Action::FieldNext);
    let Some(Overlay::Fork(p)) = &app.overlay else { panic!() };
    assert_eq!(p.sel, 1);
    for c in " minus".chars() {
        app.update(Action::Input(c));
    }
    snap(&mut app, "fork_picker_typed");
}
