//! The inspector's layers view (logit lens, `L` on the trace screen) on a tiny F32 model: the
//! job runs on the UI's engine thread while the view says it is computing, the last layer's
//! top token is the one the run recorded as most likely, a neighbouring step is one more job
//! and a step seen before is none, and a UI whose model is not the run's says so. Its drawing
//! is snapshot-tested on a hand-built view.

use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::quantized::GgmlDType;
use thinkdbg::engine::lens::LensLayer;
use thinkdbg::store::Store;
use thinkdbg::trace::{Phase, Run, RunId, SamplerSpec, SessionId, Step, TopToken};
use thinkdbg::tui::components::viewer::lens::{first_rank_one, settled_rank_one};
use thinkdbg::tui::jobs::ModelChoice;
use thinkdbg::tui::run_view::RunView;
use thinkdbg::tui::{Action, App};

use crate::common::tui::{app_with, screen_text, snap, BIG, SMALL};
use crate::common::{record, run_id, write_tiny, Tiny};

/// Feeds the job channel to the app until the layers of `step` are in the view's cache.
fn pump_lens(app: &mut App, step: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut n = 0;
    loop {
        while let Some(a) = app.jobs.poll() {
            app.update(a);
            n += 1;
        }
        if app.viewer.lens.cache.contains_key(&step) {
            return n;
        }
        if let Some(e) = &app.viewer.lens.error {
            panic!("the lens failed: {e}");
        }
        assert!(Instant::now() < deadline, "no lens for step {step}: {}", app.message);
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn tiny(dir: &std::path::Path, t: Tiny) -> std::path::PathBuf {
    let sub = dir.join(t.arch);
    std::fs::create_dir_all(&sub).unwrap();
    write_tiny(&sub, &Tiny { dtype: GgmlDType::F32, ..t })
}

#[test]
fn layers_view_computes_the_lens_on_the_uis_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = tiny(d, Tiny::qwen3());
    let rec = record(d, &model, &["-n", "10", "--ignore-eos"], "hi");
    let store = Arc::new(Store::open(&d.join("store")).unwrap());
    let mut app = app_with(Some(store.clone()));
    app.jobs.model = ModelChoice { spec: Some(model.to_str().unwrap().into()), offline: true };
    let id = run_id(&rec.id);
    assert_eq!(app.viewer.view.as_ref().unwrap().run.id, id);
    let steps = store.steps(id).unwrap().steps;
    let layers = store.run(id).unwrap().unwrap().model.layers as usize;
    app.update(Action::ScreenTrace);
    for _ in 0..3 {
        app.update(Action::NextToken);
    }
    app.update(Action::ToggleLens);
    assert!(app.viewer.lens.open);
    assert_eq!(app.viewer.lens.computing, Some(3), "{}", app.message);
    let text = screen_text(&mut app, BIG);
    assert!(text.contains("computing…"), "{text}");
    pump_lens(&mut app, 3);
    let check = |app: &App, i: usize| {
        let got = &app.viewer.lens.cache[&i];
        assert_eq!(got.len(), layers, "one row per layer");
        let last = got.last().unwrap();
        assert_eq!(last.top[0].0, steps[i].top[0].id, "step {i}: the last layer's top token");
        assert!((last.top[0].2 - steps[i].top[0].logprob).abs() < 1e-3, "step {i}");
        let chosen_top = steps[i].top[0].id == steps[i].token_id;
        assert_eq!(last.chosen_rank == 1, chosen_top, "step {i}: the chosen token's rank");
    };
    check(&app, 3);
    let text = screen_text(&mut app, BIG);
    assert!(text.contains("layers · logit lens"), "{text}");
    assert!(!text.contains("computing…"), "{text}");
    let first = first_rank_one(&app.viewer.lens.cache[&3]);
    let settled = settled_rank_one(&app.viewer.lens.cache[&3]);
    let said = match (first, settled) {
        (Some(l), Some(k)) if k != l => format!("chosen #1 at L{l}, from L{k} on"),
        (Some(l), _) => format!("chosen #1 from L{l}"),
        (None, _) => "chosen never #1".into(),
    };
    assert!(text.contains(&said), "{text}");
    // The neighbour: one more job (the replay kept); back again: nothing to compute.
    app.update(Action::NextToken);
    assert_eq!(app.viewer.lens.computing, Some(4));
    pump_lens(&mut app, 4);
    check(&app, 4);
    app.update(Action::PrevToken);
    assert!(!app.jobs.lens_busy() && app.viewer.lens.computing.is_none());
    // Going back past the cached steps cuts the replay back.
    app.update(Action::Start);
    pump_lens(&mut app, 0);
    check(&app, 0);
    app.update(Action::End);
    pump_lens(&mut app, steps.len() - 1);
    check(&app, steps.len() - 1);
    // L again closes the view: the alternatives are back.
    app.update(Action::ToggleLens);
    let text = screen_text(&mut app, BIG);
    assert!(text.contains("alternatives") && !text.contains("layers · logit lens"), "{text}");

    // A UI whose model is not the run's says so and computes nothing.
    let other = tiny(d, Tiny::llama());
    let mut app = app_with(Some(store));
    app.jobs.model = ModelChoice { spec: Some(other.to_str().unwrap().into()), offline: true };
    app.update(Action::ScreenTrace);
    app.update(Action::ToggleLens);
    assert!(!app.jobs.lens_busy());
    let e = app.viewer.lens.error.clone().unwrap_or_default();
    assert!(e.contains("not this run's") && e.contains(&format!("'{id}'")), "{e}");
    let text = screen_text(&mut app, BIG);
    assert!(text.contains("not this run's"), "{text}");
}

fn step(i: u32, text: &str, logprob: f32) -> Step {
    Step {
        index: i,
        token_id: 100 + i,
        text: text.into(),
        logprob,
        entropy: 0.8,
        phase: Phase::Answer,
        t_us: u64::from(i) * 20_000,
        top: vec![
            TopToken { id: 100 + i, text: text.into(), logprob },
            TopToken { id: 7, text: " other".into(), logprob: logprob - 1.0 },
        ],
    }
}

fn layer(layer: usize, rank: usize, lp: f32, top: &[(&str, f32)]) -> LensLayer {
    LensLayer {
        layer,
        top: top.iter().enumerate().map(|(j, (t, l))| (j as u32, t.to_string(), *l)).collect(),
        chosen_rank: rank,
        chosen_logprob: lp,
    }
}

#[test]
fn layers_view_draws_each_layer_and_marks_where_the_token_wins() {
    let mut run = Run::new_recording(RunId(4), SessionId(1), SamplerSpec::default());
    run.model.name = "tiny".into();
    run.created_at = 1_795_000_000_000;
    let steps = vec![step(0, "The", -0.3), step(1, " answer", -0.2), step(2, " is", -0.9)];
    let mut app = app_with(None);
    app.set_view(RunView::new(run, steps, Vec::new(), Vec::new()));
    app.update(Action::ScreenTrace);
    app.update(Action::NextToken);
    let lens = &mut app.viewer.lens;
    lens.open = true;
    lens.run = Some(RunId(4));
    lens.cache.insert(
        1,
        vec![
            layer(0, 812, -9.1, &[(" the", -2.1), ("\n", -2.4), (" a", -2.9)]),
            layer(1, 3, -2.2, &[(" question", -1.0), (" result", -1.7), (" answer", -2.2)]),
            layer(2, 1, -0.6, &[(" answer", -0.6), (" question", -1.4), (" \u{1b}[31m", -3.0)]),
            layer(3, 2, -1.1, &[(" result", -0.9), (" answer", -1.1), (" end", -3.3)]),
            layer(4, 1, -0.2, &[(" answer", -0.2), (" other", -1.2), (" the", -4.0)]),
        ],
    );
    let text = screen_text(&mut app, BIG);
    assert!(text.contains("chosen #1 at L2, from L4 on"), "{text}");
    assert!(text.contains("▸L2"), "the first layer at rank 1 is marked: {text}");
    assert!(!text.contains("▸L4"), "{text}");
    assert!(!text.contains('\u{1b}'), "tokens are shown sanitized");
    snap!(&mut app, "lens_layers");
    // A step not computed yet, without a store: the view says why there is no lens.
    app.update(Action::NextToken);
    let text = screen_text(&mut app, SMALL);
    assert!(text.contains("no store"), "{text}");
}

/// `A` runs the answer-now probe of the run shown on the UI's engine; when it ends the probe
/// is stored beside the run and the timeline shows its row.
#[test]
fn probe_key_runs_the_answer_now_probe_and_shows_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = tiny(d, Tiny::qwen3());
    let rec = record(d, &model, &["-n", "24", "--ignore-eos"], "hi");
    let store = Arc::new(Store::open(&d.join("store")).unwrap());
    let mut app = app_with(Some(store.clone()));
    app.jobs.model = ModelChoice { spec: Some(model.to_str().unwrap().into()), offline: true };
    let id = run_id(&rec.id);
    app.update(Action::ScreenTrace);
    assert!(app.viewer.view.as_ref().unwrap().dynamics.probe.is_none());
    assert!(!screen_text(&mut app, BIG).contains("probe:"));
    app.update(Action::Probe);
    assert!(app.message.contains(&format!("probing run '{id}'")), "{}", app.message);
    assert_eq!(app.jobs.probing(), Some(id));
    // A second ask while it runs says so.
    app.update(Action::Probe);
    assert!(app.message.contains("still running"), "{}", app.message);
    let deadline = Instant::now() + Duration::from_secs(120);
    while app.jobs.probing().is_some() {
        while let Some(a) = app.jobs.poll() {
            app.update(a);
        }
        assert!(Instant::now() < deadline, "the probe did not end: {}", app.message);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(app.message.contains(&format!("probe of run '{id}'")), "{}", app.message);
    let stored = thinkdbg::runs::probe::stored(&store, id).unwrap().expect("the probe is stored");
    assert!(!stored.points.is_empty());
    assert_eq!(app.viewer.view.as_ref().unwrap().dynamics.probe.as_ref(), Some(&stored));
    let text = screen_text(&mut app, BIG);
    assert!(text.contains("probe:"), "the timeline has the probe's row: {text}");
}
