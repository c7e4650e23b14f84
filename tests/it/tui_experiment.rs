//! Experiments started from the terminal UI: `n` on the experiments screen opens the spec
//! dialog (a bad spec is refused in the dialog, naming the key; a spec for another model than
//! the UI's is refused), enter runs it on the UI's engine worker through the job channel while
//! the screen's table follows the samples, and `r` resumes it; esc stops a running one keeping
//! the samples that completed, which the resume does not redo.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use thinkdbg::runs::experiment::runner::is_complete;
use thinkdbg::store::Store;
use thinkdbg::tui::components::{Overlay, Screen};
use thinkdbg::tui::jobs::ModelChoice;
use thinkdbg::tui::{Action, App};

use crate::common::tui::{app_with, pump, pump_until, render, screen_text, type_text, SMALL};
use crate::common::{write_tiny, Tiny};

fn spec(model: &Path, samples: usize, max_tokens: usize) -> String {
    format!(
        r#"name = "tui check"
model = "{}"
samples = {samples}
seed = 11
max_tokens = {max_tokens}

[sampler]
temperature = 0.9

[[variant]]
name = "plain"
prompt = "What is 6 times 7?"

[[variant]]
name = "steps"
prompt = "What is 6 times 7? Think step by step."
"#,
        model.display()
    )
}

/// An app on a new store in `dir` whose runs use `model`.
fn app_in(dir: &Path, model: &Path) -> (App, Arc<Store>) {
    let store = Arc::new(Store::open(&dir.join("store")).unwrap());
    let mut app = app_with(Some(store.clone()));
    app.jobs.model = ModelChoice { spec: Some(model.to_str().unwrap().into()), offline: true };
    app.update(Action::ScreenExperiments);
    (app, store)
}

/// Opens the dialog with `key`, its paths relative to `dir`, and types `path` (after clearing
/// what was there).
fn dialog(app: &mut App, key: Action, dir: &Path, path: &str) {
    app.update(key);
    match &mut app.overlay {
        Some(Overlay::Experiment(d)) => {
            d.cwd = dir.to_path_buf();
            d.path.clear();
        }
        _ => panic!("no experiment dialog: {}", app.message),
    }
    type_text(app, path);
}

fn dialog_error(app: &App) -> String {
    match &app.overlay {
        Some(Overlay::Experiment(d)) => match &d.preview {
            Some(Err(e)) => e.clone(),
            other => panic!("no error in the dialog: {other:?}"),
        },
        _ => panic!("the dialog closed: {}", app.message),
    }
}

#[test]
fn an_experiment_runs_from_the_screen_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = write_tiny(d, &Tiny::qwen2());
    std::fs::write(d.join("spec.toml"), spec(&model, 3, 8)).unwrap();
    let (mut app, store) = app_in(d, &model);
    dialog(&mut app, Action::ExperimentNew, d, "spec.toml");
    match &app.overlay {
        Some(Overlay::Experiment(dlg)) => {
            let said = dlg.preview.clone().unwrap().unwrap();
            assert!(said.contains("'tui check': 2 variants (plain, steps) × 3 samples"), "{said}");
        }
        _ => unreachable!(),
    }
    app.update(Action::InputSubmit);
    assert!(app.overlay.is_none(), "{}", app.message);
    assert_eq!(app.screen, Screen::Experiments);
    assert!(app.message.contains("6 samples to run"), "{}", app.message);
    assert!(app.jobs.experiment.is_some() && app.jobs.busy());
    // The status line says how far it got while it runs.
    let text = screen_text(&mut app, SMALL);
    assert!(text.contains("experiment e"), "{text}");
    let events = pump(&mut app, Duration::from_secs(300));
    assert!(events >= 6, "one event per sample and one at the end: {events}");
    assert!(app.jobs.experiment.is_none());
    assert!(app.message.contains("finished: 6/6 samples"), "{}", app.message);
    // Every sample is a complete stored run with its paired seed.
    let e = store.experiments().unwrap();
    assert_eq!(e.len(), 1);
    let e = &e[0];
    assert_eq!(e.spec_path, d.join("spec.toml").display().to_string());
    for v in 0..2 {
        for i in 0..3 {
            let run = store.run(e.run_of(v, i).unwrap()).unwrap().unwrap();
            assert!(is_complete(&run), "variant {v} sample {i}: {:?}", run.status);
            assert_eq!(run.sampler.seed, 11 + i as u64);
            assert!(!store.steps(run.id).unwrap().steps.is_empty());
        }
    }
    // The screen shows the experiment's report, built from those runs.
    let report = app.experiments.report.as_ref().expect("a report");
    assert_eq!(report.id, e.id);
    assert!(report.variants.iter().all(|v| v.n() == 3));
    let text = screen_text(&mut app, SMALL);
    assert!(text.contains(&format!("Experiment e{} tui check", e.id)), "{text}");
    assert!(text.contains("plain") && text.contains("3/3"), "{text}");
    // `r` resumes it from its stored spec path: nothing is left to run.
    app.update(Action::ExperimentResume);
    match &app.overlay {
        Some(Overlay::Experiment(dlg)) => {
            assert!(dlg.resume);
            assert_eq!(dlg.path, e.spec_path);
        }
        _ => panic!("no dialog: {}", app.message),
    }
    app.update(Action::InputSubmit);
    assert!(app.message.contains("every sample is complete"), "{}", app.message);
    pump(&mut app, Duration::from_secs(60));
    assert!(app.message.contains("finished: 6/6"), "{}", app.message);
    assert_eq!(store.experiments().unwrap().len(), 1);
}

#[test]
fn esc_stops_an_experiment_keeping_what_completed_and_r_redoes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = write_tiny(d, &Tiny::qwen2());
    std::fs::write(d.join("spec.toml"), spec(&model, 4, 400)).unwrap();
    let (mut app, store) = app_in(d, &model);
    dialog(&mut app, Action::ExperimentNew, d, "spec.toml");
    app.update(Action::InputSubmit);
    assert!(app.jobs.experiment.is_some(), "{}", app.message);
    // Stop once the first variant's batch has ended.
    pump_until(&mut app, Duration::from_secs(300), |a| {
        a.jobs.experiment.as_ref().is_some_and(|e| e.progress.samples().0 >= 1)
    });
    // Quitting asks first.
    app.update(Action::Quit);
    assert!(!app.quit && app.message.contains("an experiment is running"), "{}", app.message);
    app.update(Action::Back);
    assert!(app.message.contains("stopping the experiment"), "{}", app.message);
    assert_eq!(app.screen, Screen::Experiments, "esc stops before it leaves the screen");
    pump(&mut app, Duration::from_secs(300));
    let e = store.experiments().unwrap().remove(0);
    let kept: Vec<_> = (0..2)
        .flat_map(|v| (0..4).map(move |i| (v, i)))
        .filter_map(|(v, i)| {
            let id = e.run_of(v, i)?;
            store.run(id).unwrap().filter(is_complete).map(|_| ((v, i), id))
        })
        .collect();
    assert!(!kept.is_empty());
    let msg = app.message.clone();
    if kept.len() < 8 {
        assert!(msg.contains(&format!("stopped: {}/8 samples kept", kept.len())), "{msg}");
    }
    // The table shows what completed.
    let report = app.experiments.report.as_ref().expect("a report");
    assert_eq!(report.variants.iter().map(|v| v.n()).sum::<usize>(), kept.len());
    // `r` redoes only the samples that did not complete.
    app.update(Action::ExperimentResume);
    app.update(Action::InputSubmit);
    assert!(
        app.message.contains(&format!("{} samples to run", 8 - kept.len())) || kept.len() == 8,
        "{}",
        app.message
    );
    pump(&mut app, Duration::from_secs(300));
    assert!(app.message.contains("finished: 8/8"), "{}", app.message);
    let e = store.experiments().unwrap().remove(0);
    for ((v, i), id) in &kept {
        assert_eq!(e.run_of(*v, *i), Some(*id), "a completed sample was redone");
    }
    for v in 0..2 {
        for i in 0..4 {
            let run = store.run(e.run_of(v, i).unwrap()).unwrap().unwrap();
            assert!(is_complete(&run));
        }
    }
    assert_eq!(app.experiments.report.as_ref().unwrap().variants[1].n(), 4);
}

#[test]
fn bad_specs_are_refused_in_the_dialog_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = write_tiny(d, &Tiny::qwen2());
    let good = spec(&model, 2, 4);
    std::fs::write(d.join("bad.toml"), good.replace("seed = 11", "sead = 11")).unwrap();
    let other_dir = d.join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = write_tiny(&other_dir, &Tiny::llama());
    std::fs::write(d.join("other.toml"), spec(&other, 2, 4)).unwrap();
    let (mut app, store) = app_in(d, &model);
    let term = render(&mut app, SMALL);
    insta::assert_snapshot!("experiment_screen_empty_small", term.backend());
    dialog(&mut app, Action::ExperimentNew, d, "bad.toml");
    // The dialog says what is wrong as the path is typed, and again on enter.
    assert!(dialog_error(&app).contains("unknown key 'sead'"), "{}", dialog_error(&app));
    app.update(Action::InputSubmit);
    let err = dialog_error(&app);
    assert!(err.contains("'bad.toml'") && err.contains("unknown key 'sead'"), "{err}");
    let term = render(&mut app, SMALL);
    insta::assert_snapshot!("experiment_dialog_bad_spec_small", term.backend());
    // A spec for another model than the UI's.
    app.update(Action::Back);
    dialog(&mut app, Action::ExperimentNew, d, "other.toml");
    app.update(Action::InputSubmit);
    let err = dialog_error(&app);
    assert!(err.contains("is not the model this UI runs"), "{err}");
    // A file that is not there.
    app.update(Action::Back);
    dialog(&mut app, Action::ExperimentNew, d, "nowhere.toml");
    app.update(Action::InputSubmit);
    assert!(dialog_error(&app).contains("reading 'nowhere.toml'"), "{}", dialog_error(&app));
    app.update(Action::Back);
    assert!(app.overlay.is_none());
    assert!(store.experiments().unwrap().is_empty(), "nothing stored for a refused spec");
    assert!(app.jobs.experiment.is_none());
}

/// A spec naming an endpoint runs from the UI too, its requests on their own thread (the
/// fake server of the CLI's experiment test), every sample a stored remote run.
#[test]
fn an_endpoint_experiment_runs_from_the_screen() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = crate::experiment::fake_server(Duration::from_millis(50));
    let text = format!(
        r#"name = "remote"
endpoint = "{}/v1"
remote_model = "fake"
samples = 3
seed = 100
max_tokens = 32
expect = "42"

[[variant]]
name = "a"
prompt = "6*7?"

[[variant]]
name = "b"
prompt = "6*7? Think step by step."
"#,
        server.url
    );
    std::fs::write(d.join("remote.toml"), text).unwrap();
    let store = Arc::new(Store::open(&d.join("store")).unwrap());
    let mut app = app_with(Some(store.clone()));
    app.update(Action::ScreenExperiments);
    dialog(&mut app, Action::ExperimentNew, d, "remote.toml");
    app.update(Action::InputSubmit);
    assert!(app.overlay.is_none(), "{}", app.message);
    pump(&mut app, Duration::from_secs(60));
    assert!(app.message.contains("finished: 6/6"), "{}", app.message);
    assert_eq!(server.bodies.lock().unwrap().len(), 6);
    let e = &store.experiments().unwrap()[0];
    for v in 0..2 {
        for i in 0..3 {
            let run = store.run(e.run_of(v, i).unwrap()).unwrap().unwrap();
            assert!(is_complete(&run));
            assert_eq!(run.sampler.seed, 100 + i as u64);
            assert!(thinkdbg::runs::remote::provenance(&run).is_some());
        }
    }
    let report = app.experiments.report.as_ref().expect("a report");
    for v in &report.variants {
        assert_eq!(v.n(), 3);
        assert_eq!(v.rate("accuracy").unwrap().p(), Some(1.0));
    }
}
