//! The debugging loop end to end on a tiny model: a real engine on its worker thread, a real
//! store, the App driven only through Actions (no terminal): edit the prompt and re-run,
//! compare with the parent, fork at a token (an alternative, then typed text), export the
//! fork in all three formats from the export dialog; annotate (a note edited, user flags added
//! and deleted) and export again; resample from a reasoning step.

use std::sync::Arc;
use std::time::Duration;

use thinkdbg::runs::resample::FinalAnswer;
use thinkdbg::store::Store;
use thinkdbg::trace::{FlagKind, Origin, RunStatus};
use thinkdbg::tui::components::{Overlay, Screen};
use thinkdbg::tui::jobs::ModelChoice;
use thinkdbg::tui::{Action, App, FlagRow};

use crate::common::tui::{self, type_text};
use crate::common::{record, thinkdbg, write_tiny, Tiny};

/// Feeds the engine's events to the app until no run is in flight (loading a tiny model and
/// recording take seconds; 300 s leaves room for a loaded machine).
fn pump(app: &mut App) -> usize {
    tui::pump(app, Duration::from_secs(300))
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
    let args = ["-n", "40", "--ignore-eos", "-t", "0.8", "--seed", "3", "--top-logprobs", "5"];
    record(dir.path(), &model, &args, "what is two and two?");
    let store = Arc::new(Store::open(&dir.path().join("store")).unwrap());
    let mut app = tui::app_with(Some(store.clone()));
    app.jobs.model = ModelChoice { spec: Some(model.to_str().unwrap().into()), offline: true };
    let parent = app.viewer.view.as_ref().unwrap().run.clone();
    let parent_steps = store.steps(parent.id).unwrap().steps;
    assert_eq!(parent_steps.len(), 40);

    // Edit the prompt and re-run: a new run of the same session, parent = the edited run.
    app.update(Action::ScreenTrace);
    app.update(Action::EditRerun);
    type_text(&mut app, " Think first.");
    app.update(Action::InputSubmit);
    assert!(app.overlay.is_none(), "{}", app.message);
    let edited = app.viewer.live.expect("the re-run is followed");
    assert_ne!(edited, parent.id);
    let events = pump(&mut app);
    assert!(events > 10, "steps streamed into the UI ({events} events)");
    let run = store.run(edited).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Complete);
    assert_eq!(run.parent, Some((parent.id, 0)));
    assert_eq!(run.session, parent.session);
    assert_eq!(run.messages.last().unwrap().content, "what is two and two? Think first.");
    assert_eq!(store.steps(edited).unwrap().steps.len(), 40);
    assert_eq!(app.viewer.view.as_ref().unwrap().len(), 40, "the view followed the run");
    assert!(app.message.contains("finished"), "{}", app.message);
    // Analysed when it ended, as `record` does: the analysis is stored and the flags shown.
    let analysis: Option<thinkdbg::analysis::StoredAnalysis> = store.analysis(edited).unwrap();
    assert_eq!(analysis.expect("analysed when the run ended").steps, 40);
    assert_eq!(app.viewer.view.as_ref().unwrap().flags, store.flags(edited).unwrap());

    // One key compares the re-run with its parent.
    app.update(Action::Compare);
    assert_eq!(app.screen, Screen::Compare, "{}", app.message);
    let c = app.compare.as_ref().unwrap();
    assert_eq!((c.a.run.id, c.b.run.id), (parent.id, edited));

    // Fork the parent at step 4 with its second alternative.
    app.update(Action::ScreenSessions);
    app.update(Action::Start);
    assert_eq!(app.viewer.view.as_ref().unwrap().run.id, parent.id);
    app.update(Action::Open);
    for _ in 0..4 {
        app.update(Action::NextToken);
    }
    app.update(Action::Fork);
    app.update(Action::FieldNext);
    let Some(Overlay::Fork(p)) = &app.overlay else { panic!("no fork picker: {}", app.message) };
    let chosen = p.options[1].id;
    app.update(Action::InputSubmit);
    let fork = app.viewer.live.unwrap();
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
    let typed = app.viewer.live.unwrap();
    pump(&mut app);
    let text: String = store.steps(typed).unwrap().steps.iter().map(|s| s.text.clone()).collect();
    assert!(text.contains("<script>"), "the payload was forced: {text:?}");
    app.update(Action::ScreenTrace);
    assert_eq!(app.viewer.view.as_ref().unwrap().run.id, typed);
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
    assert!(md.contains("### Statistics") && md.contains("| mean logprob |"), "{md}");
    assert!(html.contains("mean logprob"), "the HTML export has the statistics table");
    assert!(!md.chars().any(|c| c.is_control() && c != '\n' && c != '\t'), "control bytes");
    let lower = html.to_lowercase();
    for live in ["<script", "</textarea", "javascript:", "\u{1b}"] {
        assert!(!lower.contains(live), "'{live}' is live in the HTML export");
    }
    assert!(lower.contains("content-security-policy"));
    let back = thinkdbg::export::jsonl::parse(jsonl).unwrap();
    assert_eq!(back[0].runs[0].steps.len(), store.steps(typed).unwrap().steps.len());
}

fn d_ext_is(app: &App, ext: &str) -> bool {
    matches!(&app.overlay, Some(Overlay::Export(d)) if d.kind.extension() == ext)
}

/// Moves the trace cursor to step `i` (from the start).
fn cursor_to(app: &mut App, i: usize) {
    app.update(Action::Start);
    for _ in 0..i {
        app.update(Action::NextToken);
    }
    assert_eq!(app.viewer.cursor, i);
}

#[test]
fn annotate_export_and_resample_through_actions() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::qwen2());
    let args = ["-n", "24", "--ignore-eos", "-t", "0.8", "--seed", "5", "--top-logprobs", "5"];
    record(dir.path(), &model, &args, "what is two and two?");
    let store = Arc::new(Store::open(&dir.path().join("store")).unwrap());
    let mut app = tui::app_with(Some(store.clone()));
    app.jobs.model = ModelChoice { spec: Some(model.to_str().unwrap().into()), offline: true };
    let parent = app.viewer.view.as_ref().unwrap().run.clone();
    let parent_steps = store.steps(parent.id).unwrap().steps;
    app.update(Action::ScreenTrace);

    // A note over steps 3..=6, then edited from the cursor inside it.
    cursor_to(&mut app, 3);
    app.update(Action::Mark);
    cursor_to(&mut app, 6);
    app.update(Action::Note);
    type_text(&mut app, "looks suspicious");
    app.update(Action::Input('\n'));
    type_text(&mut app, "second line");
    app.update(Action::InputSubmit);
    assert!(app.overlay.is_none(), "{}", app.message);
    app.update(Action::Note);
    let Some(Overlay::Note(e)) = &app.overlay else { panic!("no note editor: {}", app.message) };
    assert!(e.editing.is_some(), "the cursor lies in the note: it is edited");
    type_text(&mut app, " (edited)");
    app.update(Action::InputSubmit);
    let notes = store.notes(parent.id).unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!((notes[0].start, notes[0].end), (3, 7));
    assert_eq!(notes[0].text, "looks suspicious\nsecond line (edited)");

    // Two user flags; the first is deleted from the Flags list.
    for (at, label) in [(10, "drop-me"), (14, "kept-label")] {
        cursor_to(&mut app, at);
        app.update(Action::Mark);
        app.update(Action::NextToken);
        app.update(Action::UserFlag);
        type_text(&mut app, label);
        app.update(Action::FieldNext);
        type_text(&mut app, "why");
        app.update(Action::InputSubmit);
        assert!(app.overlay.is_none(), "{}", app.message);
    }
    let user = |store: &Store| {
        let flags = store.flags(parent.id).unwrap();
        flags
            .into_iter()
            .filter(|f| f.origin == Origin::User)
            .map(|f| (f.start, f.end, f.kind))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        user(&store),
        vec![
            (10, 12, FlagKind::User("drop-me".into())),
            (14, 16, FlagKind::User("kept-label".into()))
        ]
    );
    app.update(Action::ScreenFlags);
    let v = app.viewer.view.as_ref().unwrap();
    let row = app
        .viewer
        .flag_rows()
        .iter()
        .position(|r| matches!(r, FlagRow::Flag(i) if v.flags[*i].kind == FlagKind::User("drop-me".into())))
        .unwrap();
    while app.viewer.flag_sel < row {
        app.update(Action::Down);
    }
    app.update(Action::DeleteAnnotation);
    assert_eq!(
        user(&store),
        vec![(14, 16, FlagKind::User("kept-label".into()))],
        "{}",
        app.message
    );

    // All three exports carry the note and the user flag.
    app.update(Action::ScreenTrace);
    let mut files = Vec::new();
    for ext in ["md", "html", "jsonl"] {
        app.update(Action::ExportDialog);
        while !d_ext_is(&app, ext) {
            app.update(Action::FieldNext);
        }
        let path = dir.path().join(format!("notes.{ext}"));
        set_export_path(&mut app, &path);
        app.update(Action::InputSubmit);
        assert!(app.overlay.is_none(), "{}", app.message);
        files.push(std::fs::read_to_string(&path).unwrap());
    }
    for (ext, text) in ["md", "html"].iter().zip(&files) {
        assert!(text.contains("looks suspicious"), "{ext} has the note");
        assert!(text.contains("second line (edited)"), "{ext} has the edited note");
        assert!(text.contains("kept-label"), "{ext} has the user flag");
        assert!(!text.contains("drop-me"), "{ext} lost the deleted flag");
    }
    let back = thinkdbg::export::jsonl::parse(&files[2]).unwrap();
    let rec = &back[0].runs[0];
    assert_eq!(rec.notes, notes, "the JSONL export keeps the note");
    assert!(rec.flags.iter().any(|f| f.kind == FlagKind::User("kept-label".into())));

    // Resample two continuations from the reasoning step at step 18.
    cursor_to(&mut app, 18);
    app.update(Action::Resample);
    let Some(Overlay::Resample(f)) = &app.overlay else { panic!("no form: {}", app.message) };
    let at = f.at;
    assert!(at <= 18);
    app.update(Action::InputBackspace);
    app.update(Action::Input('2'));
    app.update(Action::InputSubmit);
    assert!(matches!(app.overlay, Some(Overlay::ResamplePanel)), "{}", app.message);
    app.viewer.mark = Some(16);
    pump(&mut app);
    assert_eq!(
        (app.viewer.mark, app.viewer.cursor),
        (Some(16), 18),
        "runs ending keep the selection"
    );
    let r = app.resample.as_ref().unwrap();
    assert!(r.finished());
    assert_eq!(r.runs.len(), 2);
    let s = r.summary.as_ref().expect("a summary once both ended");
    assert_eq!(s.total, 2, "both continuations reached an answer");
    assert_eq!(s.groups.iter().map(|g| g.runs.len()).sum::<usize>(), s.total);
    let original = FinalAnswer::of(&parent_steps);
    let mut changed = 0;
    for (i, id) in r.runs.iter().enumerate() {
        let run = store.run(*id).unwrap().unwrap();
        assert_eq!(run.parent, Some((parent.id, at)));
        assert_eq!(run.session, parent.session);
        assert_eq!(run.status, RunStatus::Complete);
        assert_eq!(run.label.as_deref(), Some(format!("resample@{at}/{}", i + 1).as_str()));
        let steps = store.steps(*id).unwrap().steps;
        assert_eq!(steps.len(), 24);
        let ids = |s: &[thinkdbg::trace::Step]| s.iter().map(|x| x.token_id).collect::<Vec<_>>();
        assert_eq!(ids(&steps[..at as usize]), ids(&parent_steps[..at as usize]));
        changed += usize::from(original.changed(&FinalAnswer::of(&steps)));
    }
    assert_eq!(s.changed, changed);
    // Enter compares the selected continuation with the parent at the resample point.
    let first = r.runs[0];
    app.update(Action::InputSubmit);
    let c = app.compare.as_ref().expect("compare opened");
    assert_eq!((c.a.run.id, c.b.run.id), (parent.id, first));

    // `thinkdbg flags` (another process, once this one lets go of the store) shows the user flag.
    drop(app);
    drop(store);
    let out = thinkdbg(dir.path()).args(["flags", &parent.id.to_string()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("kept-label") && !text.contains("drop-me"), "{text}");
}
