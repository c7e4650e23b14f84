//! The import dialog in the terminal UI: `i` on the sessions screen, a typed path whose
//! format is detected and whose first row is previewed, the dataset field mapping, a bad
//! file's error keeping the dialog open, and the imported runs in the list with their source.

use std::sync::Arc;

use serde_json::json;
use thinkdbg::store::Store;
use thinkdbg::tui::components::Overlay;
use thinkdbg::tui::{Action, App};

use crate::common::tui::{app_with, screen_text, snap, type_text};

fn dialog_app(dir: &std::path::Path) -> App {
    let store = Arc::new(Store::open(&dir.join("store")).unwrap());
    let mut app = app_with(Some(store));
    app.update(Action::ImportDialog);
    let Some(Overlay::Import(d)) = &mut app.overlay else { panic!("no import dialog") };
    // Relative paths start here (the UI's working directory in real use).
    d.cwd = dir.to_path_buf();
    app
}

fn dataset(dir: &std::path::Path) {
    let rows = [
        json!({"problem": "What is 2+2?", "source": "amc", "generations": ["<think>2+2=4</think>\n**4**", "<think>5?</think>\n5"], "correct": [true, false]}),
        json!({"problem": "Solve x+1=3.", "source": "aime", "generations": ["<think>x=2</think>\nx = 2"], "correct": [true]}),
    ];
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(dir.join("openr1.jsonl"), text).unwrap();
}

#[test]
fn the_import_dialog_previews_a_dataset_and_imports_it() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path());
    let mut app = dialog_app(dir.path());
    snap!(&mut app, "import_dialog_empty");
    type_text(&mut app, "openr1.jsonl");
    // The format field: detected as a dataset, its mapping fields shown.
    app.update(Action::FieldNext);
    app.update(Action::FieldNext);
    type_text(&mut app, "problem");
    app.update(Action::FieldNext);
    type_text(&mut app, "generations");
    app.update(Action::FieldNext);
    app.update(Action::FieldNext);
    app.update(Action::FieldNext);
    type_text(&mut app, "correct");
    snap!(&mut app, "import_dialog_dataset");
    app.update(Action::InputSubmit);
    assert!(app.overlay.is_none(), "{}", app.message);
    assert!(app.message.contains("imported 2 session(s), 3 run(s) (dataset)"), "{}", app.message);
    let labels: Vec<_> = app.sessions.runs.iter().filter_map(|e| e.run.label.clone()).collect();
    assert_eq!(labels, vec!["g0 true", "g1 false", "true"]);
    let screen = screen_text(&mut app, crate::common::tui::BIG);
    assert!(screen.contains("⇣ r1"), "{screen}");
    let screen = screen_text(&mut app, (160, 48));
    assert!(screen.contains("⇣dataset"), "{screen}");
    assert!(screen.contains("imported dataset file"), "{screen}");
}

#[test]
fn a_bad_file_keeps_the_dialog_open_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.jsonl"), "{\"problem\": \"p\", \"solution\": \"s\"}\n")
        .unwrap();
    let mut app = dialog_app(dir.path());
    type_text(&mut app, "bad.jsonl");
    app.update(Action::InputSubmit);
    assert!(matches!(app.overlay, Some(Overlay::Import(_))));
    assert!(app.message.contains("row 1: no response"), "{}", app.message);
    assert!(app.sessions.runs.is_empty());
    // A path that is not there says so before importing.
    let Some(Overlay::Import(d)) = &mut app.overlay else { panic!() };
    d.values[0] = "missing.jsonl".into();
    d.refresh();
    app.update(Action::InputSubmit);
    assert!(app.message.contains("missing.jsonl"), "{}", app.message);
    // The format can be picked: text, with a prompt.
    std::fs::write(dir.path().join("out.md"), "<think>hmm</think>ok").unwrap();
    let Some(Overlay::Import(d)) = &mut app.overlay else { panic!() };
    d.values[0] = "out.md".into();
    d.refresh();
    app.update(Action::FieldNext);
    type_text(&mut app, "t");
    app.update(Action::FieldNext);
    type_text(&mut app, "Say ok");
    app.update(Action::InputSubmit);
    assert!(app.message.contains("(text)"), "{}", app.message);
    assert_eq!(app.sessions.runs.len(), 1);
    assert_eq!(app.sessions.runs[0].run.messages[0].content, "Say ok");
}
