//! The debugging loop end to end on a tiny model: a real engine on its worker thread, a real
//! store, the App driven only through Actions (no terminal): edit the prompt and re-run,
//! compare with the parent, fork at a token (an alternative, then typed text), export the
//! fork in all three formats from the export dialog.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{thinkdbg, write_tiny, Tiny};
use thinkdbg::store::Store;
use thinkdbg::trace::RunStatus;
use thinkdbg::tui::app::{Overlay, Screen};
use thinkdbg::tui::jobs::ModelChoice;
use thinkdbg::tui::keymap::Keymap;
use thinkdbg::tui::theme::ThemeSet;
use thinkdbg::tui::{Action, App};

/// Feeds the engine's events to the app until no run is in flight.
fn pump(app: &mut App) -> usize {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut events = 0;
    loop {
        while let Some(ev) = app.jobs.poll() {
            app.update(Action::Job(Box::new(ev)));
            events += 1;
        }
        if !app.jobs.busy() && app.jobs.loading.is_none() {
            return events;
        }
        assert!(Instant::now() < deadline, "the run did not end");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        app.update(Action::Input(c));
    }
}

fn set_export_path(app: &mut App, path: &std::path::Path) {
    let Some(Overlay::Export(d)) = &app.overlay else { panic!("no export dialog") };
    for _ in 0..d.path.chars().count() {
        app.update(Action::InputBackspace);
    }
    type_text(app, path.to_str().unwrap());
}

#[test]
fn edit_rerun_compare_fork_and_export_through_actions() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::qwen2());
    let out = thinkdbg(dir.path())
        .args(["record", "-n", "40", "--ignore-eos", "-t", "0.8", "--seed", "3"])
        .args(["--top-logprobs", "5", "--model"])
        .arg(&model)
        .arg("what is two and two?")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let store = Arc::new(Store::open(&dir.path().join("store")).unwrap());
    let themes = ThemeSet::builtin();
    let theme = themes.load("dark", false).unwrap();
    let mut app = App::new(Some(store.clone()), Keymap::merged(None).unwrap(), themes, theme);
    app.jobs.model = ModelChoice { spec: Some(model.to_str().unwrap().into()), offline: true };
    app.reload().unwrap();
    let parent = app.view.as_ref().unwrap().run.clone();
    let parent_steps = store.steps(parent.id).unwrap().steps;
    assert_eq!(parent_steps.len(), 40);

    // Edit the prompt and re-run: a new run of the same session, parent = the edited run.
    app.update(Action::ScreenTrace);
    app.update(Action::EditRerun);
    type_text(&mut app, " Think first.");
    app.update(Action::InputSubmit);
    assert!(app.overlay.is_none(), "{}", app.message);
    let edited = app.live.expect("the re-run is followed");
    assert_ne!(edited, parent.id);
    let events = pump(&mut app);
    assert!(events > 10, "steps streamed into the UI ({events} events)");
    let run = store.run(edited).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Complete);
    assert_eq!(run.parent, Some((parent.id, 0)));
    assert_eq!(run.session, parent.session);
    assert_eq!(run.messages.last().unwrap().content, "what is two and two? Think first.");
    assert_eq!(store.steps(edited).unwrap().steps.len(), 40);
    assert_eq!(app.view.as_ref().unwrap().len(), 40, "the view followed the run");
    assert!(app.message.contains("finished"), "{}", app.message);

    // One key compares the re-run with its parent.
    app.update(Action::Compare);
    assert_eq!(app.screen, Screen::Compare, "{}", app.message);
    let c = app.compare.as_ref().unwrap();
    assert_eq!((c.a.run.id, c.b.run.id), (parent.id, edited));

    // Fork the parent at step 4 with its second alternative.
    app.update(Action::ScreenSessions);
    app.update(Action::Start);
    assert_eq!(app.view.as_ref().unwrap().run.id, parent.id);
    app.update(Action::Open);
    for _ in 0..4 {
        app.update(Action::NextToken);
    }
    app.update(Action::Fork);
    app.update(Action::FieldNext);
    let Some(Overlay::Fork(p)) = &app.overlay else { panic!("no fork picker: {}", app.message) };
    let chosen = p.options[1].id;
    app.update(Action::InputSubmit);
    let fork = app.live.unwrap();
    pump(&mut app);
    let fork_steps = store.steps(fork).unwrap().steps;
    let ids = |s: &[thinkdbg::trace::Step]| s.iter().map(|x| x.token_id).collect::<Vec<_>>();
    assert_eq!(ids(&fork_steps[..4]), ids(&parent_steps[..4]), "the prefix is replayed");
    assert_eq!(fork_steps[4].token_id, chosen, "the chosen alternative is forced");
    assert_eq!(store.run(fork).unwrap().unwrap().parent, Some((parent.id, 4)));
    // Compare opens at the fork.
    assert_eq!(app.screen, Screen::Compare);
    let c = app.compare.as_ref().unwrap();
    assert_eq!((c.a.run.id, c.b.run.id, c.cursor), (parent.id, fork, 4));

    // Fork with typed text full of payloads, then export that run in all three formats.
    let payload = "</textarea><script>alert(1)</script><a href=\"javascript:x\">\u{1b}[31m";
    app.update(Action::ScreenSessions);
    app.update(Action::Start);
    app.update(Action::Open);
    app.update(Action::NextToken);
    app.update(Action::NextToken);
    app.update(Action::Fork);
    type_text(&mut app, payload);
    app.update(Action::InputSubmit);
    let typed = app.live.unwrap();
    pump(&mut app);
    let text: String = store.steps(typed).unwrap().steps.iter().map(|s| s.text.clone()).collect();
    assert!(text.contains("<script>"), "the payload was forced: {text:?}");
    app.update(Action::ScreenTrace);
    assert_eq!(app.view.as_ref().unwrap().run.id, typed);
    let mut files = Vec::new();
    for ext in ["md", "html", "jsonl"] {
        app.update(Action::ExportDialog);
        let Some(Overlay::Export(d)) = &app.overlay else { panic!("no export dialog") };
        assert_eq!(d.run, typed);
        let mut guard = 0;
        while !d_ext_is(&app, ext) {
            app.update(Action::FieldNext);
            guard += 1;
            assert!(guard < 4);
        }
        let path = dir.path().join(format!("out.{ext}"));
        set_export_path(&mut app, &path);
        app.update(Action::InputSubmit);
        assert!(app.overlay.is_none(), "{}", app.message);
        files.push(std::fs::read_to_string(&path).unwrap());
    }
    let (md, html, jsonl) = (&files[0], &files[1], &files[2]);
    assert!(md.contains("what is two and two?"));
    assert!(!md.chars().any(|c| c.is_control() && c != '\n' && c != '\t'), "control bytes");
    let lower = html.to_lowercase();
    for live in ["<script", "</textarea", "javascript:", "\u{1b}"] {
        assert!(!lower.contains(live), "'{live}' is live in the HTML export");
    }
    assert!(lower.contains("content-security-policy"));
    let back = thinkdbg::store::import::parse(jsonl).unwrap();
    assert_eq!(back[0].runs[0].steps.len(), store.steps(typed).unwrap().steps.len());
}

fn d_ext_is(app: &App, ext: &str) -> bool {
    matches!(&app.overlay, Some(Overlay::Export(d)) if d.kind.extension() == ext)
}
