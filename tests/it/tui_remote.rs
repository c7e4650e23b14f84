//! Runs recorded from a server in the terminal UI, on ratatui's TestBackend and a real store:
//! the run dialog switched to a server endpoint (snapshots, validation, prefill from a remote
//! run's provenance, a multi-line message), a remote run's provenance in the inspector and the
//! run header, steps without logprobs shown as such, ids-only routing without made-up weights,
//! and a refused connection reported in the UI without a crash.

use std::sync::Arc;
use std::time::Duration;

use thinkdbg::remote::loopback;
use thinkdbg::store::Store;
use thinkdbg::trace::{
    LayerRoute, LogprobKind, Message, Phase, RemoteInfo, Routing, Run, RunId, RunSource, RunStatus,
    SamplerSpec, Session, SessionId, Step, TopToken, UNKNOWN_TOKEN,
};
use thinkdbg::tui::action::Caret;
use thinkdbg::tui::components::editor::{ENDPOINT, KEY_ENV, MODEL, SOURCE, USER};
use thinkdbg::tui::components::{Overlay, Screen};
use thinkdbg::tui::{Action, App};

use crate::common::tui::{app_with, editor, pump, render, screen_cells, snap, type_text, BIG};

const WORDS: &[&str] = &[
    "<think>",
    "\nOkay",
    ",",
    " two",
    " plus",
    " two",
    ".",
    "\n</think>",
    "\n\n",
    "The",
    " answer",
    " is",
    " 4",
    ".",
];

/// A run as `record --endpoint` stores it from an SGLang server with the reasoning-chunk
/// logprob bug: the first three thinking steps have no logprob, none has a token id or an
/// entropy, and routing has expert ids without weights.
fn put_remote(store: &Store, s: SessionId, id: u64) {
    let mut r = Run::new_recording(RunId(id), s, SamplerSpec::default());
    r.created_at = 1_795_000_000_000 + id;
    r.model.name = "deepseek-ai/DeepSeek-R1".into();
    r.label = Some("R1 on sglang".into());
    r.messages = vec![Message::new("user", "What is 2 + 2?")];
    r.source = RunSource::Remote {
        endpoint: "http://gpu-node-7:30000/v1".into(),
        server: RemoteInfo {
            model: "deepseek-ai/DeepSeek-R1".into(),
            reasoning_from: "reasoning_content".into(),
            routing_format: "sglang base64 int32 [20, 3, 2]".into(),
            missing: vec![
                "token ids".into(),
                "entropy".into(),
                "rendered prompt".into(),
                "logprobs on 3 of 14 steps".into(),
            ],
            notes: vec!["reasoning chunks came with 'logprobs: null' (SGLang #26778)".into()],
        },
    };
    r.logprob_kind = LogprobKind::Raw;
    r.status = RunStatus::Complete;
    store.put_run(&r).unwrap();
    let steps: Vec<_> = WORDS
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let lp = if i < 3 { f32::NAN } else { -0.05 - (i % 3) as f32 * 0.6 };
            let top = if i < 3 {
                Vec::new()
            } else {
                vec![
                    TopToken { id: UNKNOWN_TOKEN, text: (*w).into(), logprob: lp },
                    TopToken { id: UNKNOWN_TOKEN, text: format!(" alt{i}"), logprob: lp - 1.0 },
                ]
            };
            let step = Step {
                index: i as u32,
                token_id: UNKNOWN_TOKEN,
                text: (*w).into(),
                logprob: lp,
                entropy: f32::NAN,
                phase: if i < 8 { Phase::Think } else { Phase::Answer },
                t_us: i as u64 * 30_000,
                top,
            };
            let layers = (0..3)
                .map(|l| LayerRoute {
                    layer: l,
                    experts: vec![(i as u16 * 3 + l) % 64, (i as u16 * 7 + l + 1) % 64],
                    weights: None,
                    router: None,
                })
                .collect();
            (step, Some(Routing { layers }))
        })
        .collect();
    store.put_steps(r.id, &steps).unwrap();
}

fn put_embedded(store: &Store, s: SessionId, id: u64) {
    let mut r = Run::new_recording(RunId(id), s, SamplerSpec::default());
    r.created_at = 1_795_000_000_000 + id;
    r.model.name = "tiny-test".into();
    r.messages = vec![Message::new("system", "Be brief."), Message::new("user", "What is 2 + 2?")];
    r.status = RunStatus::Complete;
    store.put_run(&r).unwrap();
    let step = Step {
        index: 0,
        token_id: 7,
        text: "4".into(),
        logprob: -0.1,
        entropy: 0.3,
        phase: Phase::Answer,
        t_us: 0,
        top: vec![TopToken { id: 7, text: "4".into(), logprob: -0.1 }],
    };
    store.put_steps(r.id, &[(step, None)]).unwrap();
}

fn app() -> (tempfile::TempDir, App) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let sid = SessionId(1);
    put_remote(&store, sid, 20);
    put_embedded(&store, sid, 21);
    store
        .put_session(&Session {
            id: sid,
            title: "two plus two".into(),
            created_at: 1_795_000_000_000,
            tags: vec![],
            runs: vec![RunId(20), RunId(21)],
        })
        .unwrap();
    (dir, app_with(Some(Arc::new(store))))
}

#[test]
fn a_remote_runs_inspector_shows_provenance_and_says_when_logprobs_are_missing() {
    let (_d, mut app) = app();
    assert_eq!(app.viewer.view.as_ref().unwrap().run.id, RunId(20));
    app.update(Action::ScreenTrace);
    app.update(Action::NextToken);
    let text = screen_cells(&mut app, BIG);
    assert!(text.contains("no logprobs from server"), "{text}");
    assert!(!text.contains("NaN"), "{text}");
    assert!(text.contains("http://gpu-node-7:30000/v1"), "{text}");
    assert!(text.contains("id ?"), "{text}");
    snap!(&mut app, "remote_inspector_no_logprobs");
    for _ in 0..3 {
        app.update(Action::NextToken);
    }
    let text = screen_cells(&mut app, BIG);
    assert!(text.contains("rank 1"), "chosen by text when ids are unknown:\n{text}");
    assert!(!text.contains("NaN"), "{text}");
    snap!(&mut app, "remote_inspector");
}

#[test]
fn the_run_header_lists_what_the_server_did_not_supply() {
    let (_d, mut app) = app();
    let text = screen_cells(&mut app, BIG);
    for want in [
        "endpoint http://gpu-node-7:30000/v1",
        "logprobs raw (before sampling)",
        "logprobs on 3 of 14 steps",
        "unknown (the source gave top-k only)",
    ] {
        assert!(text.contains(want), "'{want}' missing:\n{text}");
    }
    snap!(&mut app, "remote_run_header");
}

#[test]
fn ids_only_routing_shows_no_weights() {
    let (_d, mut app) = app();
    app.update(Action::ScreenRouting);
    app.update(Action::NextToken);
    let text = screen_cells(&mut app, BIG);
    assert!(text.contains("weights unknown"), "{text}");
    assert!(!text.contains(":0."), "no made-up weights:\n{text}");
    snap!(&mut app, "remote_routing_ids_only");
}

#[test]
fn the_run_dialog_switches_to_an_endpoint_and_takes_multi_line_messages() {
    let (_d, mut app) = app();
    app.update(Action::Down);
    assert_eq!(app.viewer.view.as_ref().unwrap().run.id, RunId(21));
    app.update(Action::ScreenTrace);
    app.update(Action::EditRerun);
    assert!(!editor(&app).remote());
    // A second line in the user message (alt-enter / ctrl-j insert '\n').
    app.update(Action::Input('\n'));
    type_text(&mut app, "Answer with one digit.");
    app.update(Action::Caret(Caret::Up));
    app.update(Action::Caret(Caret::End));
    type_text(&mut app, " Really?");
    assert_eq!(editor(&app).values[USER], "What is 2 + 2? Really?\nAnswer with one digit.");
    // Up leaves the message from its first line: system, then source.
    app.update(Action::Caret(Caret::Up));
    app.update(Action::Caret(Caret::Up));
    assert_eq!(editor(&app).focus, SOURCE);
    app.update(Action::Input(' '));
    assert!(editor(&app).remote());
    // Submitting with an empty endpoint says which field is wrong and keeps the dialog.
    app.update(Action::InputSubmit);
    assert!(app.message.contains("'endpoint'"), "{}", app.message);
    assert!(matches!(app.overlay, Some(Overlay::Editor(_))));
    app.update(Action::FieldNext);
    assert_eq!(editor(&app).focus, ENDPOINT);
    type_text(&mut app, "http://127.0.0.1:8080/v1");
    app.update(Action::FieldNext);
    assert_eq!(editor(&app).focus, MODEL);
    type_text(&mut app, "deepseek-r1");
    app.update(Action::FieldNext);
    assert_eq!(editor(&app).focus, KEY_ENV);
    type_text(&mut app, "OPENAI_API_KEY");
    snap!(&mut app, "run_dialog_endpoint");
    // The key's variable is read when the run starts: an unset one is reported by name.
    app.update(Action::Back);
    app.update(Action::EditRerun);
    app.update(Action::FieldPrev);
    app.update(Action::FieldPrev);
    app.update(Action::Input(' '));
    app.update(Action::FieldNext);
    type_text(&mut app, "http://127.0.0.1:9/v1");
    app.update(Action::FieldNext);
    type_text(&mut app, "m");
    app.update(Action::FieldNext);
    type_text(&mut app, "THINKDBG_TEST_UNSET_KEY_VAR");
    app.update(Action::InputSubmit);
    assert!(app.message.contains("'THINKDBG_TEST_UNSET_KEY_VAR'"), "{}", app.message);
    assert!(app.jobs.running.is_empty(), "no run was started");
}

#[test]
fn editing_a_remote_run_prefills_its_endpoint() {
    let (_d, mut app) = app();
    app.update(Action::ScreenTrace);
    app.update(Action::EditRerun);
    let e = editor(&app);
    assert!(e.remote());
    assert_eq!(e.values[ENDPOINT], "http://gpu-node-7:30000/v1");
    assert_eq!(e.values[MODEL], "deepseek-ai/DeepSeek-R1");
    assert_eq!(e.values[KEY_ENV], "", "the key variable is not recorded");
}

#[test]
fn a_refused_connection_is_reported_in_the_ui() {
    let (_d, mut app) = app();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    app.update(Action::ScreenTrace);
    app.update(Action::EditRerun);
    for _ in 0..5 {
        app.update(Action::FieldPrev);
    }
    assert_eq!(editor(&app).focus, ENDPOINT);
    for _ in 0..editor(&app).values[ENDPOINT].len() {
        app.update(Action::InputBackspace);
    }
    type_text(&mut app, &format!("http://127.0.0.1:{port}/v1"));
    app.update(Action::InputSubmit);
    assert!(app.overlay.is_none(), "{}", app.message);
    let child = app.viewer.live.expect("the run is followed");
    pump(&mut app, Duration::from_secs(60));
    assert!(app.message.contains("cannot connect"), "{}", app.message);
    let store = app.store.clone().unwrap();
    let run = store.run(child).unwrap().unwrap();
    assert!(matches!(run.status, RunStatus::Failed(_)), "{:?}", run.status);
    assert_eq!(run.parent, Some((RunId(20), 0)));
    assert_eq!(app.screen, Screen::Trace);
    let text = screen_cells(&mut app, BIG);
    assert!(text.contains("failed before its first token"), "{text}");
    assert!(text.contains("cannot connect"), "{text}");
}

/// Serves one streamed chat completion without logprobs (a server that ignores `logprobs`),
/// with reasoning in `reasoning_content`; returns the base URL.
fn serve_without_logprobs() -> String {
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        let c = serde_json::json!({"model": "plain-server",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {c}\r\n\r\n")
    };
    let mut out = loopback::SSE_HEAD.to_vec();
    for (d, f) in [
        (serde_json::json!({"reasoning_content": "Two and two"}), None),
        (serde_json::json!({"reasoning_content": " make four."}), None),
        (serde_json::json!({"content": "4"}), None),
        (serde_json::json!({}), Some("stop")),
    ] {
        out.extend_from_slice(chunk(d, f).as_bytes());
    }
    out.extend_from_slice(b"data: [DONE]\r\n\r\n");
    loopback::serve(vec![out]).unwrap()
}

#[test]
fn a_server_without_logprobs_is_recorded_and_says_so() {
    let (_d, mut app) = app();
    let url = serve_without_logprobs();
    app.update(Action::ScreenTrace);
    app.update(Action::EditRerun);
    for _ in 0..5 {
        app.update(Action::FieldPrev);
    }
    for _ in 0..editor(&app).values[ENDPOINT].len() {
        app.update(Action::InputBackspace);
    }
    type_text(&mut app, &url);
    app.update(Action::InputSubmit);
    let child = app.viewer.live.expect("the run is followed");
    pump(&mut app, Duration::from_secs(60));
    assert!(app.message.contains("the server sent no logprobs"), "{}", app.message);
    let store = app.store.clone().unwrap();
    let run = store.run(child).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Complete);
    let steps = store.steps(child).unwrap().steps;
    assert_eq!(steps.len(), 3, "one step per chunk");
    assert!(steps.iter().all(|s| s.logprob.is_nan()));
    assert_eq!((steps[0].phase, steps[2].phase), (Phase::Think, Phase::Answer));
    let v = app.viewer.view.as_ref().unwrap();
    assert_eq!(v.run.id, child);
    let RunSource::Remote { server, .. } = &v.run.source else { panic!("{:?}", v.run.source) };
    assert_eq!(server.model, "plain-server");
    assert!(server.missing.iter().any(|m| m == "logprobs on 3 of 3 steps"), "{server:?}");
    let text = screen_cells(&mut app, BIG);
    assert!(text.contains("no logprobs from server"), "{text}");
    assert!(!text.contains("NaN"), "{text}");
    // No confidence colour on a step without a logprob: 'Two' is drawn in the thinking colour.
    let term = render(&mut app, BIG);
    let buf = term.backend().buffer();
    let cell = (0..BIG.0)
        .map(|x| &buf[(x, 2)])
        .find(|c| c.symbol() == "T")
        .expect("'Two' on the first trace row");
    for key in
        ["token.logprob.high", "token.logprob.mid", "token.logprob.low", "token.logprob.verylow"]
    {
        let fg = app.theme.get(key).fg;
        assert!(fg.is_some() && cell.fg != fg.unwrap(), "'{key}' colours a step without a logprob");
    }
}
