//! The debugging loop in the terminal UI on ratatui's TestBackend: snapshots of the compare
//! screen, the prompt editor, the fork picker, the note editor, the user-flag prompt, a note in
//! the trace and the flags list, the export dialog and the resample form and panel on hand-made runs in a real store, and the
//! actions behind them (alignment-following cursor, divergence jump, editor validation).

use std::sync::Arc;

use thinkdbg::runs::resample::{FinalAnswer, Summary};
use thinkdbg::store::Store;
use thinkdbg::trace::{
    FlagKind, Message, Origin, Phase, Run, RunId, RunStatus, SamplerSpec, Session, SessionId, Step,
    TopToken,
};
use thinkdbg::tui::components::resample::{Outcome, ResampleJob};
use thinkdbg::tui::components::{Overlay, Screen};
use thinkdbg::tui::{Action, App, FlagRow};

use crate::common::tui::{app_with, snap, type_text};

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
    (dir, app_with(Some(Arc::new(store))))
}

/// Opens the fork (second run) and compares it with its parent.
fn compared() -> (tempfile::TempDir, App) {
    let (d, mut app) = loop_app();
    app.update(Action::Down);
    app.update(Action::Open);
    assert_eq!(app.viewer.view.as_ref().unwrap().run.id, RunId(11));
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
    snap!(&mut app, "compare");
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
    snap!(&mut app, "prompt_editor");
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
    snap!(&mut app, "fork_picker");
    app.update(Action::FieldNext);
    let Some(Overlay::Fork(p)) = &app.overlay else { panic!() };
    assert_eq!(p.sel, 1);
    for c in " minus".chars() {
        app.update(Action::Input(c));
    }
    snap!(&mut app, "fork_picker_typed");
}

/// The trace of the first run with steps `from..=to` selected in visual mode.
fn selected(from: usize, to: usize) -> (tempfile::TempDir, App) {
    let (d, mut app) = loop_app();
    app.update(Action::ScreenTrace);
    for _ in 0..from {
        app.update(Action::NextToken);
    }
    app.update(Action::Mark);
    for _ in from..to {
        app.update(Action::NextToken);
    }
    assert_eq!(app.viewer.selection(), Some((from as u32, to as u32 + 1)));
    (d, app)
}

#[test]
fn note_editor_writes_edits_and_deletes_a_multi_line_note() {
    let (_d, mut app) = selected(2, 4);
    let store = app.store.clone().unwrap();
    app.update(Action::Note);
    let Some(Overlay::Note(e)) = &app.overlay else { panic!("no note editor: {}", app.message) };
    assert_eq!((e.start, e.end), (2, 5));
    app.update(Action::InputSubmit);
    assert!(app.message.contains("empty"), "an empty note is refused: {}", app.message);
    assert!(matches!(app.overlay, Some(Overlay::Note(_))));
    type_text(&mut app, "adds 2 and 2");
    app.update(Action::Input('\n'));
    type_text(&mut app, "check \u{1b}[31mthis\u{7}");
    snap!(&mut app, "note_editor");
    app.update(Action::InputSubmit);
    assert!(app.overlay.is_none(), "{}", app.message);
    assert_eq!(app.viewer.mark, None, "saving ends visual mode");
    let notes = store.notes(RunId(10)).unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!((notes[0].start, notes[0].end), (2, 5));
    // Typed controls are not kept in a note (issue 16): what is stored is what was shown.
    assert_eq!(notes[0].text, "adds 2 and 2\ncheck [31mthis");
    // The trace shows it (cursor inside: the inspector shows the note's first line).
    assert_eq!(app.viewer.note_at_cursor(), Some(0));
    snap!(&mut app, "trace_note");

    // No selection and the cursor in the note: `a` edits it.
    app.update(Action::Note);
    let Some(Overlay::Note(e)) = &app.overlay else { panic!("no note editor") };
    assert!(e.editing.is_some());
    for _ in 0.."check [31mthis".chars().count() {
        app.update(Action::InputBackspace);
    }
    type_text(&mut app, "checked");
    app.update(Action::InputSubmit);
    let notes = store.notes(RunId(10)).unwrap();
    assert_eq!(notes.len(), 1, "edited in place");
    assert_eq!(notes[0].text, "adds 2 and 2\nchecked");

    // The Flags list has a notes section; d deletes the selected note.
    app.update(Action::ScreenFlags);
    let rows = app.viewer.flag_rows();
    let at = rows.iter().position(|r| matches!(r, FlagRow::Note(0))).unwrap();
    while app.viewer.flag_sel < at {
        app.update(Action::Down);
    }
    snap!(&mut app, "flags_note");
    app.update(Action::DeleteAnnotation);
    assert!(store.notes(RunId(10)).unwrap().is_empty(), "{}", app.message);
    assert!(app.viewer.view.as_ref().unwrap().notes.is_empty());
}

#[test]
fn user_flag_prompt_adds_edits_and_deletes_a_user_flag() {
    let (_d, mut app) = selected(5, 6);
    let store = app.store.clone().unwrap();
    app.update(Action::UserFlag);
    let Some(Overlay::UserFlag(e)) = &app.overlay else { panic!("no prompt: {}", app.message) };
    assert_eq!((e.start, e.end), (5, 7));
    app.update(Action::InputSubmit);
    assert!(app.message.contains("label"), "{}", app.message);
    type_text(&mut app, "wrong sum");
    app.update(Action::FieldNext);
    type_text(&mut app, "2 + 2 is not 5");
    snap!(&mut app, "user_flag_prompt");
    app.update(Action::InputSubmit);
    assert!(app.overlay.is_none(), "{}", app.message);
    let flags = store.flags(RunId(10)).unwrap();
    assert_eq!(flags.len(), 1);
    assert_eq!(flags[0].kind, FlagKind::User("wrong sum".into()));
    assert_eq!((flags[0].start, flags[0].end, flags[0].origin), (5, 7, Origin::User));
    assert_eq!(flags[0].detail, "2 + 2 is not 5");

    // Edit it from the Flags list.
    app.update(Action::ScreenFlags);
    app.update(Action::EditAnnotation);
    let Some(Overlay::UserFlag(e)) = &app.overlay else { panic!("no prompt: {}", app.message) };
    assert!(e.editing.is_some());
    type_text(&mut app, "!");
    app.update(Action::InputSubmit);
    let flags = store.flags(RunId(10)).unwrap();
    assert_eq!(flags.len(), 1);
    assert_eq!(flags[0].kind, FlagKind::User("wrong sum!".into()));

    // A re-analysis keeps it.
    let merged = thinkdbg::analysis::merge_flags(&flags, &[]);
    assert_eq!(merged, flags);

    // Delete it from the trace, the cursor inside it.
    app.update(Action::Open);
    assert_eq!(app.viewer.cursor, 5);
    app.update(Action::DeleteAnnotation);
    assert!(store.flags(RunId(10)).unwrap().is_empty(), "{}", app.message);
    app.update(Action::DeleteAnnotation);
    assert!(app.message.contains("no note or user flag"), "{}", app.message);
}

#[test]
fn escape_ends_visual_mode_before_leaving_the_trace() {
    let (_d, mut app) = selected(1, 3);
    app.update(Action::Back);
    assert_eq!((app.viewer.mark, app.screen), (None, Screen::Trace));
    app.update(Action::Back);
    assert_eq!(app.screen, Screen::Sessions);
}

#[test]
fn export_dialog_offers_the_three_formats() {
    let (_d, mut app) = loop_app();
    app.update(Action::ScreenTrace);
    app.update(Action::ExportDialog);
    let Some(Overlay::Export(d)) = &app.overlay else { panic!("no export dialog") };
    assert_eq!(d.path, "thinkdbg-r10.md");
    app.update(Action::FieldNext);
    snap!(&mut app, "export_dialog");
}

/// A finished continuation of run 10 from step 8 with the answer `words`.
fn put_continuation(store: &Store, id: u64, words: &[&str]) {
    put_run(store, SessionId(1), id, words, Some((10, 8)));
    let mut r = store.run(RunId(id)).unwrap().unwrap();
    r.label = Some(format!("resample@8/{}", id - 19));
    store.put_run(&r).unwrap();
}

#[test]
fn resample_form_and_panel_with_a_finished_summary() {
    let (_d, mut app) = loop_app();
    let store = app.store.clone().unwrap();
    app.update(Action::ScreenTrace);
    for _ in 0..10 {
        app.update(Action::NextToken);
    }
    app.update(Action::Resample);
    let Some(Overlay::Resample(f)) = &app.overlay else { panic!("no form: {}", app.message) };
    assert_eq!((f.reasoning_step, f.at), (1, 8), "the step after the line break");
    assert_eq!(f.samples, "8");
    app.update(Action::InputBackspace);
    app.update(Action::Input('x'));
    app.update(Action::Input('3'));
    let Some(Overlay::Resample(f)) = &app.overlay else { panic!() };
    assert_eq!(f.samples, "3", "only digits");
    snap!(&mut app, "resample_form");
    app.update(Action::Back);

    // The panel once three continuations have ended: two changed the answer to 5.
    let five = [&A[..8], &[" The", " answer", " is", " 5", "."]].concat();
    let four = [&A[..8], &[" So", " the", " answer", " is", " 4"]].concat();
    put_continuation(&store, 20, &five);
    put_continuation(&store, 21, &four);
    put_continuation(&store, 22, &five);
    let parent = store.steps(RunId(10)).unwrap().steps;
    let runs = vec![RunId(20), RunId(21), RunId(22)];
    let outcomes: Vec<Outcome> = runs
        .iter()
        .map(|r| {
            let steps = store.steps(*r).unwrap().steps;
            let differs = thinkdbg::runs::resample::first_difference(&parent, &steps, 8, 6);
            Outcome::Done(FinalAnswer::of(&steps), differs)
        })
        .collect();
    let mut job = ResampleJob {
        parent: RunId(10),
        reasoning_step: 1,
        at: 8,
        max_tokens: 13,
        temperature: 0.7,
        tokens: vec![13, 13, 13],
        outcomes,
        runs,
        original: FinalAnswer::of(&parent),
        summary: None,
        sel: 0,
    };
    let summary = Summary::new(&job.original, &job.answers());
    assert_eq!((summary.changed, summary.total), (2, 3));
    assert_eq!(summary.groups.iter().map(|g| g.runs.len()).collect::<Vec<_>>(), vec![2, 1]);
    job.summary = Some(summary);
    app.resample = Some(job);
    app.update(Action::ResamplePanel);
    assert!(matches!(app.overlay, Some(Overlay::ResamplePanel)));
    app.update(Action::FieldNext);
    snap!(&mut app, "resample_panel");
    // Enter compares the selected continuation with the parent, at the resample point.
    app.update(Action::InputSubmit);
    assert!(app.overlay.is_none(), "{}", app.message);
    let c = app.compare.as_ref().unwrap();
    assert_eq!((c.a.run.id, c.b.run.id, c.cursor), (RunId(10), RunId(21), 8));
}

/// `q` while a run records asks first: the first `q` says what quitting does, another key
/// stays, a second `q` quits; without a run in flight one `q` quits.
#[test]
fn quitting_while_a_run_records_asks_first() {
    let (_d, mut app) = loop_app();
    let store = app.store.clone().unwrap();
    let mut run = store.run(RunId(10)).unwrap().unwrap();
    run.id = RunId(store.new_id().unwrap());
    run.status = thinkdbg::trace::RunStatus::Recording;
    let (writer, handle) = thinkdbg::store::writer::start(store.clone(), run.clone()).unwrap();
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    app.jobs.adopt(run.id, cancel.clone(), handle);
    app.update(Action::Quit);
    assert!(!app.quit && app.message.contains("a run is recording"), "{}", app.message);
    app.update(Action::Down);
    app.update(Action::Quit);
    assert!(!app.quit, "another key in between asks again");
    app.update(Action::Quit);
    assert!(app.quit);
    drop(writer);
    app.jobs.shutdown();
    assert!(cancel.load(std::sync::atomic::Ordering::Relaxed), "quitting cancels the run");
    let (_d, mut idle) = loop_app();
    idle.update(Action::Quit);
    assert!(idle.quit);
}
