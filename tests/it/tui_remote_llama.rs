//! The TUI's run dialog against a REAL llama.cpp server (see `common::llama_server`): the App,
//! driven only through Actions on a real store, switches the dialog to the endpoint, runs, and
//! the new run (steps, provenance, parent) is in the store; a long run cancelled with the cancel
//! key is kept `Interrupted` with the steps received; an HTTP error shows the server's message.
//!
//! The dialog names an environment variable for the API key, which the App's recording thread
//! reads. Setting a variable in this process would race the other modules' tests, which run in
//! its other threads (C code's `getenv` against `setenv`), so the test runs itself again in a
//! child process of this test binary that has the variable from its start (`rerun_with_key`).

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use thinkdbg::store::Store;
use thinkdbg::trace::{
    LogprobKind, Message, Phase, Run, RunId, RunSource, RunStatus, SamplerSpec, Session, SessionId,
    Step, StopReason, TopToken,
};
use thinkdbg::tui::components::editor::{ENDPOINT, KEY_ENV, MODEL, SOURCE};
use thinkdbg::tui::{Action, App};

use crate::common::heavy;
use crate::common::llama_server::Server;
use crate::common::tui::{self, app_with, editor, type_text};

const PROMPT: &str = "Count from 1 to 500, separated by commas.";

/// The variable the dialog is told to read the API key from, and the (fake) key in it.
const KEY_VAR: &str = "THINKDBG_TEST_LLAMA_KEY";
const KEY: &str = "sk-not-a-real-key-1234";

/// Outside the child process (`KEY_VAR` is not `KEY`): runs this module's test `name` alone in
/// a new process of this test binary with `KEY_VAR` set to `KEY`, fails if it failed or did not
/// run, and returns true. Inside the child: returns false, and the test goes on.
fn rerun_with_key(name: &str) -> bool {
    if std::env::var(KEY_VAR).as_deref() == Ok(KEY) {
        return false;
    }
    // The test's name as the harness knows it: the module path without the crate.
    let module = module_path!().split_once("::").map_or(module_path!(), |(_, m)| m);
    let test = format!("{module}::{name}");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test.as_str(), "--exact", "--nocapture", "--test-threads", "1"])
        .env(KEY_VAR, KEY)
        .output()
        .unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "'{test}' failed in its process:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("test result: ok. 1 passed;"),
        "'{test}' did not run in its process:\n{stdout}\n{stderr}"
    );
    true
}

/// Feeds the run's events to the app until `done` holds or no run is in flight.
fn pump_until(app: &mut App, done: impl Fn(&App) -> bool) {
    tui::pump_until(app, Duration::from_secs(120), done);
}

fn focus(app: &mut App, field: usize) {
    for _ in 0..20 {
        if editor(app).focus == field {
            return;
        }
        app.update(Action::FieldNext);
    }
    panic!("field {field} not shown");
}

/// Replaces the focused field's text.
fn set(app: &mut App, field: usize, text: &str) {
    focus(app, field);
    for _ in 0..editor(app).values[field].chars().count() {
        app.update(Action::InputBackspace);
    }
    type_text(app, text);
}

/// An embedded run with the prompt, as the parent to edit.
fn parent_store(dir: &std::path::Path) -> Arc<Store> {
    let store = Store::open(&dir.join("store")).unwrap();
    let sid = SessionId(1);
    let sampler = SamplerSpec { max_tokens: 12, seed: 7, ..SamplerSpec::default() };
    let mut r = Run::new_recording(RunId(1000), sid, sampler);
    r.model.name = "SmolLM2-135M-Instruct".into();
    r.messages = vec![Message::new("user", PROMPT)];
    r.status = RunStatus::Complete;
    store.put_run(&r).unwrap();
    let top = |t: &str| TopToken { id: 1, text: t.into(), logprob: -0.1 };
    let step = Step {
        index: 0,
        token_id: 1,
        text: "1".into(),
        logprob: -0.1,
        entropy: 0.2,
        phase: Phase::Answer,
        t_us: 0,
        top: vec![top("1"), top("2"), top("3"), top("4"), top("5")],
    };
    store.put_steps(r.id, &[(step, None)]).unwrap();
    store
        .put_session(&Session {
            id: sid,
            title: "counting".into(),
            created_at: 1,
            tags: vec![],
            runs: vec![r.id],
        })
        .unwrap();
    Arc::new(store)
}

#[test]
fn the_run_dialog_records_from_a_real_llama_cpp_server() {
    // Held in this process while the child runs the test (and again, uselessly, in the child).
    let _heavy = heavy();
    if rerun_with_key("the_run_dialog_records_from_a_real_llama_cpp_server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let store = parent_store(dir.path());
    let mut app = app_with(Some(store.clone()));
    app.update(Action::ScreenTrace);

    // 1. Edit, switch the source to the server, run: a child of the edited run.
    app.update(Action::EditRerun);
    focus(&mut app, SOURCE);
    app.update(Action::Input(' '));
    set(&mut app, ENDPOINT, &format!("{}/v1", server.url));
    set(&mut app, MODEL, "demo");
    set(&mut app, KEY_ENV, KEY_VAR);
    app.update(Action::InputSubmit);
    assert!(app.overlay.is_none(), "{}", app.message);
    let id = app.viewer.live.expect("the run is followed");
    pump_until(&mut app, |_| false);
    assert!(app.message.contains("finished"), "{}", app.message);
    let run = store.run(id).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Complete);
    assert_eq!(run.parent, Some((RunId(1000), 0)));
    assert_eq!(run.messages, vec![Message::new("user", PROMPT)]);
    assert_eq!(run.logprob_kind, LogprobKind::Raw);
    assert!(store.session(run.session).unwrap().unwrap().runs.contains(&id));
    let RunSource::Remote { endpoint, server: info } = &run.source else {
        panic!("{:?}", run.source)
    };
    assert_eq!(endpoint, &format!("{}/v1", server.url));
    assert_eq!(info.model, "demo");
    assert!(info.missing.iter().any(|m| m == "token ids"), "{info:?}");
    let steps = store.steps(id).unwrap().steps;
    assert_eq!(steps.len(), 12, "max_tokens from the dialog");
    assert!(steps.iter().all(|s| s.logprob.is_finite() && s.top.len() == 5), "{steps:?}");
    // The view was re-read with the provenance and shows every step.
    let v = app.viewer.view.as_ref().unwrap();
    assert_eq!((v.run.id, v.len()), (id, 12));
    assert_eq!(v.run.source, run.source);
    // The key went nowhere: not in the store's export, not in the log.
    let dump = format!("{run:?}{steps:?}");
    assert!(!dump.contains("sk-not-a-real-key"), "{dump}");

    // 2. A long run, cancelled with the cancel key once steps arrive: Interrupted, kept.
    app.update(Action::EditRerun);
    assert!(editor(&app).remote(), "a remote run re-runs on its endpoint");
    assert_eq!(editor(&app).values[KEY_ENV], KEY_VAR);
    set(&mut app, 6, "1500");
    app.update(Action::InputSubmit);
    let long = app.viewer.live.unwrap();
    assert_ne!(long, id);
    pump_until(&mut app, |a| {
        a.viewer.view.as_ref().is_some_and(|v| v.run.id == long && v.len() >= 5)
    });
    assert!(
        app.jobs.busy(),
        "the run ended before it was cancelled: {} (long {long}, view {:?} with {} steps)",
        app.message,
        app.viewer.view.as_ref().map(|v| v.run.id),
        app.viewer.view.as_ref().map_or(0, |v| v.len())
    );
    app.update(Action::CancelRun);
    pump_until(&mut app, |_| false);
    assert!(app.message.contains("cancelled"), "{}", app.message);
    let run = store.run(long).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Cancelled, "stopped by the user: cancelled, not interrupted");
    assert_eq!(run.stop, Some(StopReason::User));
    let kept = store.steps(long).unwrap().steps;
    assert!(kept.len() >= 5 && kept.len() < 1500, "{} steps", kept.len());
    assert_eq!(app.viewer.view.as_ref().unwrap().len(), kept.len(), "the view shows what was kept");
    assert_eq!(run.parent, Some((id, 0)));

    // 3. An HTTP error: the server's own message is shown, the run is failed.
    app.update(Action::EditRerun);
    set(&mut app, ENDPOINT, &format!("{}/no/such/path", server.url));
    app.update(Action::InputSubmit);
    let bad = app.viewer.live.unwrap();
    pump_until(&mut app, |_| false);
    assert!(app.message.contains("HTTP 404"), "{}", app.message);
    assert!(app.message.to_lowercase().contains("not found"), "{}", app.message);
    assert!(matches!(store.run(bad).unwrap().unwrap().status, RunStatus::Failed(_)));
}
