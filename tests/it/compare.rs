//! Comparing two runs as a user does: `thinkdbg diff` (text, `--steps`, `--json`) on runs
//! recorded from a tiny model (a fork, two prompts), and the compare screen on hand-made runs
//! in a real store (a fork whose forced token a token diff would hide, the step view),
//! snapshotted at both sizes.

use std::sync::Arc;

use thinkdbg::store::Store;
use thinkdbg::trace::{
    Message, Phase, Run, RunId, RunStatus, SamplerSpec, Session, SessionId, Step, TopToken,
};
use thinkdbg::tui::components::Screen;
use thinkdbg::tui::{Action, App};

use crate::common::tui::{app_with, screen_text, snap};
use crate::common::{last_line, record, run_id, stdout, thinkdbg, write_tiny, Tiny};

fn json(dir: &std::path::Path, a: &str, b: &str) -> serde_json::Value {
    let out = stdout(thinkdbg(dir).args(["diff", a, b, "--json"]));
    assert_eq!(out.lines().count(), 1, "one JSON object: {out}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn diff_of_a_fork_diverges_at_the_fork_step_with_the_forced_token() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::qwen2());
    let args = ["-n", "24", "--ignore-eos", "-t", "0.8", "--seed", "5", "--top-logprobs", "8"];
    let parent = record(dir.path(), &model, &args, "where do we fork?").id;
    let k = 6;
    // The first of the 2nd to 5th alternatives that is not the parent's own token.
    let ps = Store::open(&dir.path().join("store")).unwrap().steps(run_id(&parent)).unwrap().steps;
    let alt = (2..=5).find(|j| ps[k as usize].top[j - 1].id != ps[k as usize].token_id).unwrap();
    let child = last_line(
        thinkdbg(dir.path())
            .args(["fork", &parent, "--at", &k.to_string(), "--alt", &alt.to_string(), "--model"])
            .arg(&model),
    );
    let cs = Store::open(&dir.path().join("store")).unwrap().steps(run_id(&child)).unwrap().steps;
    let v = json(dir.path(), &parent, &child);
    let d = &v["first_divergence"];
    assert_eq!((d["a_step"].as_u64(), d["b_step"].as_u64()), (Some(k), Some(k)), "{v}");
    assert_eq!(d["forced"], serde_json::json!(true));
    assert_eq!(d["a_token"].as_str(), Some(ps[k as usize].text.as_str()));
    assert_eq!(d["b_token"].as_str(), Some(cs[k as usize].text.as_str()));
    assert_eq!(d["b_rank"].as_u64(), Some(alt as u64), "alternative {alt} was chosen: {d}");
    assert_eq!(v["relation"], "fork");
    assert_eq!(v["prompt_differs"], serde_json::json!(false));
    assert!(v["settings_differ"].as_array().unwrap().iter().all(|s| s != "source"));
    for key in ["a", "b", "agree"] {
        assert!(v["answers"].get(key).is_some(), "answers.{key}: {v}");
    }
    assert_eq!(v["stats"]["a"]["tokens"].as_u64(), Some(24));
    assert!(v["steps"].is_array());
    // Step map rows cover each run's reasoning steps in order, spans inside the run.
    for row in v["steps"].as_array().unwrap() {
        for side in ["a", "b"] {
            if let Some(span) = row[side].as_array() {
                let (s, e) = (span[0].as_u64().unwrap(), span[1].as_u64().unwrap());
                assert!(s < e && e <= 24, "{row}");
            }
        }
        assert!(row["similarity"].as_f64().is_some());
    }
    // The same comparison as text: the relation, the forced token's label.
    let text = stdout(thinkdbg(dir.path()).args(["diff", &parent, &child]));
    assert!(text.contains(&format!("B forks A at step {k}")), "{text}");
    assert!(text.contains(&format!("first divergence ▶ at a step {k}, b step {k}")), "{text}");
    assert!(text.contains(&format!("(forced · rank {alt} · p ")), "{text}");
    assert!(text.contains("same prompt") || text.contains("prompt: same"), "{text}");
    let steps = stdout(thinkdbg(dir.path()).args(["diff", &parent, &child, "--steps"]));
    assert!(steps.contains("step map: "), "{steps}");
    // Flags that cannot go together are refused.
    thinkdbg(dir.path())
        .args(["diff", &parent, &child, "--json", "--stat"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("--stat"));
    thinkdbg(dir.path())
        .args(["diff", &parent, "r99999", "--json"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("r99999"));
}

#[test]
fn diff_of_an_edited_prompt_says_the_prompts_differ_as_a_word_diff() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::qwen2());
    let a = record(dir.path(), &model, &["-n", "8", "-t", "0.8"], "what is two and two?").id;
    let b = record(dir.path(), &model, &["-n", "8", "-t", "0.5"], "what is two and three?").id;
    let v = json(dir.path(), &a, &b);
    assert_eq!(v["prompt_differs"], serde_json::json!(true), "{v}");
    assert_eq!(v["settings_differ"], serde_json::json!(["temperature"]), "{v}");
    let pieces: Vec<(String, String)> = v["prompt_diff"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["change"].as_str().unwrap().into(), p["text"].as_str().unwrap().into()))
        .collect();
    let of = |kind: &str| -> String {
        pieces.iter().filter(|p| p.0 == kind).map(|p| p.1.as_str()).collect()
    };
    assert_eq!((of("removed").as_str(), of("added").as_str()), ("two?", "three?"), "{pieces:?}");
    assert_eq!(of("same"), "what is two and ");
    let text = stdout(thinkdbg(dir.path()).args(["diff", &a, &b]));
    assert!(text.contains("prompt differs: what is two and [-two?-]{+three?+}"), "{text}");
    assert!(text.contains("temperature: 0.8 → 0.5"), "{text}");
}

fn step(i: usize, text: &str, lp: f32, top: Vec<TopToken>) -> Step {
    Step {
        index: i as u32,
        token_id: word_id(text),
        text: text.into(),
        logprob: lp,
        entropy: 0.4,
        phase: if i < 12 { Phase::Think } else { Phase::Answer },
        t_us: i as u64 * 20_000,
        top,
    }
}

fn word_id(w: &str) -> u32 {
    w.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))) % 800
}

/// The parent's words: a short chain of thought and its answer.
const PARENT: &[&str] = &[
    " Let", " me", " add", " 2", " and", " 2", ".", "\n\n", "That", " makes", " 4", ".", "\n",
    "The", " answer", " is", " 4", ".",
];

/// The parent's alternatives at each step: its own word first, then three others.
fn alts(w: &str, i: usize) -> Vec<TopToken> {
    let mut out = vec![TopToken { id: word_id(w), text: w.into(), logprob: -0.2 }];
    for (r, alt) in [" more", " plus", " then"].iter().enumerate() {
        out.push(TopToken {
            id: word_id(alt) + 1000 * (i as u32 + 1),
            text: (*alt).into(),
            logprob: -1.6 - r as f32,
        });
    }
    out
}

fn put(
    store: &Store,
    id: u64,
    parent: Option<(u64, u32)>,
    label: &str,
    steps: &[Step],
    user: &str,
) {
    let mut r = Run::new_recording(RunId(id), SessionId(1), SamplerSpec::default());
    r.created_at = 1_795_000_000_000 + id;
    r.model.name = "tiny-test".into();
    r.label = Some(label.into());
    r.parent = parent.map(|(p, at)| (RunId(p), at));
    r.messages = vec![Message::new("system", "Be brief."), Message::new("user", user)];
    r.status = RunStatus::Complete;
    store.put_run(&r).unwrap();
    let s: Vec<_> = steps.iter().map(|s| (s.clone(), None)).collect();
    store.put_steps(r.id, &s).unwrap();
}

/// A parent, a fork at step 4 that took the parent's third alternative there and then went
/// on as the parent did from step 4 (so a token diff would pair the forced token with
/// nothing and hide it), and an edit of the parent's prompt.
fn fork_app() -> (tempfile::TempDir, App) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let parent: Vec<Step> =
        PARENT.iter().enumerate().map(|(i, w)| step(i, w, -0.2, alts(w, i))).collect();
    let mut fork: Vec<Step> = parent[..4].to_vec();
    let forced = parent[4].top[2].clone();
    fork.push(Step {
        token_id: forced.id,
        text: forced.text.clone(),
        logprob: forced.logprob,
        ..parent[4].clone()
    });
    fork.extend(parent[4..].iter().cloned());
    for (i, s) in fork.iter_mut().enumerate() {
        s.index = i as u32;
        s.phase = if i < 13 { Phase::Think } else { Phase::Answer };
    }
    let mut edited = parent.clone();
    edited[16].text = " 5".into();
    edited[16].token_id = word_id(" 5");
    edited[10].text = " 5".into();
    edited[10].token_id = word_id(" 5");
    put(&store, 10, None, "R1", &parent, "What is 2 + 2?");
    put(&store, 11, Some((10, 4)), "fork@4", &fork, "What is 2 + 2?");
    put(&store, 12, Some((10, 0)), "edit", &edited, "What is 2 + 3? Be careful.");
    store
        .put_session(&Session {
            id: SessionId(1),
            title: "two plus two".into(),
            created_at: 1_795_000_000_000,
            tags: vec![],
            runs: vec![RunId(10), RunId(11), RunId(12)],
        })
        .unwrap();
    (dir, app_with(Some(Arc::new(store))))
}

/// Opens run number `n` (0-based on the sessions list) and compares it with its parent.
fn compare_child(app: &mut App, n: usize) {
    for _ in 0..n {
        app.update(Action::Down);
    }
    app.update(Action::Open);
    app.update(Action::Compare);
    assert_eq!(app.screen, Screen::Compare, "{}", app.message);
}

#[test]
fn the_forced_token_of_a_fork_is_the_first_divergence_and_on_screen() {
    let (_d, mut app) = fork_app();
    compare_child(&mut app, 1);
    let c = app.compare.as_ref().unwrap();
    assert_eq!((c.a.run.id, c.b.run.id), (RunId(10), RunId(11)));
    let d = c.cmp.first_divergence.clone().unwrap();
    assert_eq!((d.a_step, d.b_step, d.forced), (4, 4, true));
    // It opens on the fork step: A's token there beside B's forced one.
    let row = c.row();
    assert_eq!((row.a, row.b), (Some(4), Some(4)));
    assert_eq!(c.b.steps[4].text, " plus");
    let screen = screen_text(&mut app, (160, 48));
    assert!(screen.contains("forced · rank 3 · p 7.4%"), "{screen}");
    snap!(&mut app, "fork");
    // Every token of both runs is reachable by stepping, in order.
    app.update(Action::Start);
    let (mut seen_a, mut seen_b) = (Vec::new(), Vec::new());
    loop {
        let c = app.compare.as_ref().unwrap();
        seen_a.extend(c.row().a);
        seen_b.extend(c.row().b);
        if c.cursor + 1 == c.len() {
            break;
        }
        app.update(Action::NextToken);
    }
    let c = app.compare.as_ref().unwrap();
    assert_eq!(seen_a, (0..c.a.len()).collect::<Vec<_>>());
    assert_eq!(seen_b, (0..c.b.len()).collect::<Vec<_>>());
    // n / N go from one divergence to the next and back.
    app.update(Action::Start);
    app.update(Action::NextDivergence);
    let first = app.compare.as_ref().unwrap().cursor;
    assert_eq!(app.compare.as_ref().unwrap().row().a, Some(4));
    app.update(Action::NextDivergence);
    let second = app.compare.as_ref().unwrap().cursor;
    assert!(second > first, "{first} {second}");
    assert_eq!(app.compare.as_ref().unwrap().row().b, Some(5), "B's own token after the fork");
    app.update(Action::PrevDivergence);
    assert_eq!(app.compare.as_ref().unwrap().cursor, first);
}

#[test]
fn the_step_view_shows_the_step_map() {
    let (_d, mut app) = fork_app();
    compare_child(&mut app, 1);
    app.update(Action::ToggleStepView);
    let c = app.compare.as_ref().unwrap();
    assert!(c.cmp.steps.len() >= 3, "{:?}", c.cmp.steps);
    let screen = screen_text(&mut app, (160, 48));
    assert!(screen.contains("step map:"), "{screen}");
    snap!(&mut app, "steps");
    // Enter shows the selected step's tokens.
    app.update(Action::End);
    app.update(Action::Open);
    let c = app.compare.as_ref().unwrap();
    assert_eq!(c.view, thinkdbg::tui::components::compare::View::Tokens);
    let last = c.cmp.step_info.0.last().unwrap().span.start;
    assert_eq!(c.row().a, Some(last));
}

#[test]
fn an_edited_prompt_shows_in_the_compare_header() {
    let (_d, mut app) = fork_app();
    compare_child(&mut app, 2);
    let c = app.compare.as_ref().unwrap();
    assert!(c.cmp.setup.prompt_differs);
    assert_eq!(c.cmp.answers_agree, Some(false));
    let screen = screen_text(&mut app, (160, 48));
    assert!(screen.contains("prompt: What is 2 + 2?→3? Be careful."), "{screen}");
    assert!(screen.contains("answers A '4' · B '5': differ"), "{screen}");
    assert!(screen.contains("B re-runs A with an edited prompt"), "{screen}");
    snap!(&mut app, "edit");
}

#[test]
fn the_forced_token_is_labelled_in_the_trace_and_the_inspector() {
    let (_d, mut app) = fork_app();
    app.update(Action::Down);
    app.update(Action::Open);
    app.update(Action::ScreenTrace);
    assert_eq!(app.viewer.view.as_ref().unwrap().run.id, RunId(11));
    let screen = screen_text(&mut app, (160, 48));
    assert!(screen.contains("· forced step 4 ·"), "{screen}");
    for _ in 0..4 {
        app.update(Action::NextToken);
    }
    let screen = screen_text(&mut app, (160, 48));
    assert!(screen.contains("· forced · rank 3 · p 7.4% ·"), "the title: {screen}");
    assert!(screen.contains("fork   forced · rank 3 · p 7.4%"), "the inspector: {screen}");
    // The parent has no forced token.
    app.update(Action::ScreenSessions);
    app.update(Action::Up);
    app.update(Action::Open);
    app.update(Action::ScreenTrace);
    assert!(!screen_text(&mut app, (160, 48)).contains("forced"));
}
