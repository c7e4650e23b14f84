//! Reasoning dynamics (issue 21) end to end on tiny models: the logit lens's last layer is the
//! run's recorded distribution; the answer-now probe's branches (one replay, cache cut back
//! after each) equal fresh runs forced to the same prefix; `stats --json` carries DeepConf
//! confidence and the probe's settle point; `forks` lists the highest-entropy tokens;
//! `experts` on a recorded qwen3moe session agrees with a count made here; bad input is named.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use candle_core::quantized::GgmlDType;
use thinkdbg::engine::generate::{Prompt, RunRequest};
use thinkdbg::engine::probe::ProbeRequest;
use thinkdbg::engine::synth::{self, Dims, SynthSpec};
use thinkdbg::engine::{Engine, LoadOptions};
use thinkdbg::record::Event;
use thinkdbg::trace::{Message, Phase, RoutingDetail, SamplerSpec, Step};

use crate::common::{heavy, output, record, stdout, thinkdbg, write_tiny, Tiny};

fn synth_model(dir: &Path, arch: &str, quant: GgmlDType) -> PathBuf {
    let path = dir.join(format!("{arch}.gguf"));
    let dims = Dims::named(arch, "tiny").unwrap();
    synth::write(&SynthSpec { dims, quant, seed: 5 }, &path).unwrap();
    path
}

fn load(path: &Path) -> Engine {
    Engine::load(path, &LoadOptions::default(), &mut |_, _| {}).unwrap()
}

fn request(prompt: &Prompt, forced: Vec<u32>, forced_text: Option<String>, n: usize) -> RunRequest {
    RunRequest {
        prompt: prompt.clone(),
        sampler: SamplerSpec { max_tokens: n, ignore_eos: true, ..Default::default() },
        top_logprobs: 5,
        forced,
        forced_text,
        routing: RoutingDetail::Off,
        prompt_routing: false,
    }
}

fn generate(engine: &mut Engine, req: &RunRequest) -> Vec<Step> {
    let mut events: Vec<Event> = Vec::new();
    engine.generate(req, &mut events, &AtomicBool::new(false)).unwrap();
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Step { step, .. } => Some(step),
            _ => None,
        })
        .collect()
}

fn prompt() -> Prompt {
    Prompt::Chat(vec![Message::new("user", "what is the answer? think first.")])
}

/// The models the lens is checked on: the tiny writer's dense ones and synthetic MoE ones.
fn lens_models(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for t in [Tiny::llama(), Tiny::qwen3()] {
        let sub = dir.join(t.arch);
        std::fs::create_dir_all(&sub).unwrap();
        let t = Tiny { dtype: GgmlDType::F32, ..t };
        out.push((t.arch.to_string(), write_tiny(&sub, &t)));
    }
    for arch in ["qwen3moe", "deepseek2"] {
        out.push((arch.to_string(), synth_model(dir, arch, GgmlDType::F32)));
    }
    out
}

#[test]
fn the_lens_last_layer_is_the_recorded_distribution() {
    let _g = heavy();
    let dir = tempfile::tempdir().unwrap();
    for (arch, path) in lens_models(dir.path()) {
        let mut engine = load(&path);
        let steps = generate(&mut engine, &request(&prompt(), Vec::new(), None, 12));
        let tokens: Vec<u32> = steps.iter().map(|s| s.token_id).collect();
        let mut st = engine.lens_begin(&prompt(), &tokens).unwrap();
        // In order, then backwards (the cache is cut back), then forwards again.
        let order: Vec<usize> = (0..steps.len()).chain((0..steps.len()).rev().step_by(3)).collect();
        for i in order {
            let layers = engine.lens_at(&mut st, i, 5).unwrap();
            assert_eq!(layers.len(), engine.info.layers as usize, "{arch}");
            let last = layers.last().unwrap();
            let want: Vec<u32> = steps[i].top.iter().map(|t| t.id).collect();
            let got: Vec<u32> = last.top.iter().map(|t| t.0).collect();
            assert_eq!(got, want, "{arch} step {i}: top-5 ids");
            for (g, w) in last.top.iter().zip(&steps[i].top) {
                assert!(
                    (g.2 - w.logprob).abs() < 1e-3,
                    "{arch} step {i}: {} vs {}",
                    g.2,
                    w.logprob
                );
            }
            assert!((last.chosen_logprob - steps[i].logprob).abs() < 1e-3, "{arch} step {i}");
            assert_eq!(last.chosen_rank, 1, "{arch} step {i}: a greedy run chose the top token");
            // Earlier layers are real distributions too, and they differ from the last one.
            for l in &layers {
                assert!(l.chosen_logprob <= 0.0 && l.chosen_rank >= 1);
                assert!(l.top.windows(2).all(|w| w[0].2 >= w[1].2));
            }
        }
        assert!(engine.lens_at(&mut st, steps.len(), 5).is_err(), "past the end");
    }
}

#[test]
fn probe_branches_equal_fresh_runs_from_the_same_prefix() {
    let _g = heavy();
    let dir = tempfile::tempdir().unwrap();
    let tiny = write_tiny(dir.path(), &Tiny::qwen3());
    for path in [synth_model(dir.path(), "deepseek2", GgmlDType::Q8_0), tiny] {
        let mut engine = load(&path);
        let run = generate(&mut engine, &request(&prompt(), Vec::new(), None, 24));
        let tokens: Vec<u32> = run.iter().map(|s| s.token_id).collect();
        let suffix = "</think>\n\nThe final answer is".to_string();
        let boundaries = vec![0, 5, 11, 11, 24];
        let req = ProbeRequest {
            prompt: prompt(),
            tokens: tokens.clone(),
            boundaries: boundaries.clone(),
            suffix: suffix.clone(),
            max_tokens: 6,
        };
        let out = engine.probe(&req, &AtomicBool::new(false), &mut |_, _| {}).unwrap();
        assert_eq!(out.answers.len(), boundaries.len());
        for a in &out.answers {
            // A fresh run: the prefix and the suffix forced, then greedy.
            let fresh = generate(
                &mut engine,
                &request(&prompt(), tokens[..a.at].to_vec(), Some(suffix.clone()), a.at + 40),
            );
            // Bytes of a character the prefix ended inside come out first (as U+FFFD).
            let after: String = fresh[a.at..].iter().map(|s| s.text.as_str()).collect();
            let after = after.trim_start_matches('\u{FFFD}');
            let want = format!("{suffix}{}", a.text);
            assert!(after.starts_with(&want), "at {}: {after:?} vs {want:?}", a.at);
            // Its probability: the fresh run's logprobs of the same tokens.
            let n = a.tokens.len();
            let forced = fresh.len() - a.at;
            let tail: Vec<&Step> = fresh[a.at..].iter().collect();
            let start = (0..forced).find(|&k| {
                tail[k..].iter().take(n).map(|s| s.token_id).eq(a.tokens.iter().copied())
                    && tail[..k]
                        .iter()
                        .map(|s| s.text.as_str())
                        .collect::<String>()
                        .trim_start_matches('\u{FFFD}')
                        == suffix
            });
            let k = start.unwrap_or_else(|| panic!("at {}: answer tokens not found", a.at));
            let lp: f64 = tail[k..k + n].iter().map(|s| f64::from(s.logprob)).sum();
            assert!((lp - a.logprob).abs() < 1e-3, "at {}: {lp} vs {}", a.at, a.logprob);
        }
        // An empty suffix asks for the run's own continuation: the greedy run itself.
        let own = ProbeRequest { suffix: String::new(), max_tokens: 3, ..req };
        let out = engine.probe(&own, &AtomicBool::new(false), &mut |_, _| {}).unwrap();
        for a in out.answers.iter().filter(|a| a.at + a.tokens.len() <= tokens.len()) {
            assert_eq!(a.tokens, tokens[a.at..a.at + a.tokens.len()], "at {}", a.at);
        }
        let bad = ProbeRequest { boundaries: vec![5, 2], ..own };
        assert!(engine.probe(&bad, &AtomicBool::new(false), &mut |_, _| {}).is_err());
    }
}

#[test]
fn probe_stats_forks_and_confidence_through_the_cli() {
    let _g = heavy();
    let dir = tempfile::tempdir().unwrap();
    let model = synth_model(dir.path(), "deepseek2", GgmlDType::Q8_0);
    let r = record(dir.path(), &model, &["-n", "40", "--ignore-eos"], "Think about 2+2.");
    let id = r.id.as_str();
    // Confidence in stats --json, with the keys the issue names.
    let v: serde_json::Value =
        serde_json::from_str(&stdout(thinkdbg(dir.path()).args(["stats", "--json", id]))).unwrap();
    let c = &v["confidence"];
    for k in ["k", "window", "tail", "lowest_group", "bottom10_group", "tail_confidence"] {
        assert!(!c[k].is_null(), "{k}: {v}");
    }
    assert!(v.get("answer_settled_step").is_none(), "no probe stored yet");
    // The probe, stored and then reported by stats.
    let (out, _) = output(
        thinkdbg(dir.path())
            .args(["probe", "--json", "--any-model", id])
            .arg("--model")
            .arg(&model),
    );
    let p: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let points = p["points"].as_array().unwrap();
    assert!(!points.is_empty());
    assert!(points.iter().all(|x| x["prob"].as_f64().unwrap() <= 1.0));
    let v: serde_json::Value =
        serde_json::from_str(&stdout(thinkdbg(dir.path()).args(["stats", "--json", id]))).unwrap();
    assert!(v.as_object().unwrap().contains_key("answer_settled_step"), "{v}");
    assert_eq!(v["answer_settled_step"], p["answer_settled_step"]);
    assert_eq!(v["tokens_after_settle"], p["tokens_after_settle"]);
    let stored = stdout(thinkdbg(dir.path()).args(["probe", "--stored", id]));
    assert!(stored.contains("answer-now probe"), "{stored}");
    // Forks: the top 20% by entropy (40 steps: 8), highest first.
    let f: serde_json::Value =
        serde_json::from_str(&stdout(thinkdbg(dir.path()).args(["forks", "--json", id]))).unwrap();
    let forks = f["forks"].as_array().unwrap();
    assert_eq!(forks.len(), 8);
    let e: Vec<f64> = forks.iter().map(|x| x["entropy"].as_f64().unwrap()).collect();
    assert!(e.windows(2).all(|w| w[0] >= w[1]), "{e:?}");
    let text = stdout(thinkdbg(dir.path()).args(["forks", "--top", "3", id]));
    assert_eq!(text.lines().count(), 5, "{text}");
    // Bad input is named.
    let out = thinkdbg(dir.path()).args(["forks", "--top", "0", id]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("'--top'"));
    let out = thinkdbg(dir.path())
        .args(["lens", id, "--at", "400"])
        .arg("--model")
        .arg(&model)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no step 400"));
}

#[test]
fn experts_on_a_recorded_qwen3moe_session() {
    let _g = heavy();
    let dir = tempfile::tempdir().unwrap();
    let model = synth_model(dir.path(), "qwen3moe", GgmlDType::Q8_0);
    // Raw prompts: one opens a think block (every step thinks), the others do not.
    let first = record(dir.path(), &model, &["-n", "24", "--ignore-eos", "--raw"], "<think>\nhm");
    let session = {
        let ls = stdout(thinkdbg(dir.path()).args(["ls", "--json"]));
        let v: serde_json::Value = serde_json::from_str(ls.lines().next().unwrap()).unwrap();
        v["session"].as_str().unwrap().to_string()
    };
    for p in ["the answer is", "two and two"] {
        record(
            dir.path(),
            &model,
            &["-n", "24", "--ignore-eos", "--raw", "--session", &session],
            p,
        );
    }
    let out = stdout(thinkdbg(dir.path()).args([
        "experts",
        &session,
        "--marker",
        "think",
        "--json",
        "--top",
        "500",
        "--min-count",
        "1",
    ]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["runs"].as_array().unwrap().len(), 3, "{v}");
    // An independent count from the store for every listed expert.
    let store = thinkdbg::store::Store::open(&dir.path().join("store")).unwrap();
    let mut counts = std::collections::HashMap::<(u16, u16), (f64, f64)>::new();
    let (mut n, mut m) = (0.0f64, 0.0f64);
    for r in v["runs"].as_array().unwrap() {
        let id = crate::common::run_id(r.as_str().unwrap());
        let steps = store.steps(id).unwrap().steps;
        for (i, route) in store.routing(id).unwrap() {
            let think = steps[i as usize].phase == Phase::Think;
            n += 1.0;
            m += f64::from(u8::from(think));
            for l in &route.layers {
                for e in &l.experts {
                    let c = counts.entry((l.layer, *e)).or_default();
                    c.0 += 1.0;
                    c.1 += f64::from(u8::from(think));
                }
            }
        }
    }
    assert_eq!(v["tokens"].as_f64().unwrap(), n);
    assert_eq!(v["marked"].as_f64().unwrap(), m);
    assert!(m >= 1.0 && m < n, "both thinking and other tokens: {m} of {n}");
    drop(store);
    let listed = v["experts"].as_array().unwrap();
    assert!(!listed.is_empty());
    for a in listed {
        let key = (a["layer"].as_u64().unwrap() as u16, a["expert"].as_u64().unwrap() as u16);
        let (x, both) = counts[&key];
        assert_eq!(a["count"].as_f64().unwrap(), x);
        assert_eq!(a["marked"].as_f64().unwrap(), both);
        let want = if both == 0.0 {
            -1.0
        } else if x >= n {
            0.0
        } else {
            ((both / n) / ((x / n) * (m / n))).ln() / -(both / n).ln()
        };
        assert!((a["npmi"].as_f64().unwrap() - want).abs() < 1e-9, "{a} vs {want}");
    }
    let text =
        stdout(thinkdbg(dir.path()).args(["experts", "--model", "qwen3moe", "--marker", "think"]));
    assert!(text.contains("3 runs with routing"), "{text}");
    let out =
        thinkdbg(dir.path()).args(["experts", &first.id, "--marker", "bogus"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("'bogus'"));
}

mod tui {
    use thinkdbg::runs::probe::{self, ProbePoint, StoredProbe};
    use thinkdbg::trace::{LayerRoute, Phase, Routing, Run, RunId, SamplerSpec, SessionId, Step};
    use thinkdbg::tui::components::viewer::ColourBy;
    use thinkdbg::tui::run_view::RunView;
    use thinkdbg::tui::{Action, App};

    use crate::common::tui::{app_with, samples_app, screen_text, snap, BIG};

    fn opened() -> (tempfile::TempDir, App) {
        let (d, mut app) = samples_app(&[], &[]);
        app.update(Action::Open);
        (d, app)
    }

    #[test]
    fn confidence_mode_and_fork_jumps() {
        let (_d, mut app) = opened();
        for _ in 0..3 {
            app.update(Action::CycleColour);
        }
        assert_eq!(app.viewer.colour, ColourBy::Confidence);
        let text = screen_text(&mut app, BIG);
        assert!(text.contains("Timeline · confidence"), "{text}");
        assert!(text.contains("conf   C "), "{text}");
        let v = app.viewer.view.clone().unwrap();
        let forks = v.dynamics.forks.clone();
        assert!(!forks.is_empty());
        // The forks are the highest-entropy steps: none outside is above one inside.
        let lowest_fork = forks.iter().map(|&i| v.steps[i].entropy).fold(f32::MAX, f32::min);
        assert!((0..v.len())
            .filter(|i| !forks.contains(i))
            .all(|i| v.steps[i].entropy <= lowest_fork));
        app.update(Action::NextFork);
        assert_eq!(app.viewer.cursor, forks[0]);
        app.update(Action::NextFork);
        assert_eq!(app.viewer.cursor, forks[1]);
        app.update(Action::PrevFork);
        assert_eq!(app.viewer.cursor, forks[0]);
        snap!(&mut app, "trace_confidence");
        app.update(Action::CycleColour);
        assert_eq!(app.viewer.colour, ColourBy::Logprob);
    }

    #[test]
    fn the_probe_is_a_row_of_the_timeline() {
        let (_d, mut app) = opened();
        let store = app.store.clone().unwrap();
        let run = app.viewer.view.as_ref().unwrap().run.clone();
        let n = store.step_count(run.id);
        let point = |at: usize, matches: bool| ProbePoint {
            at,
            reasoning_step: at / 10,
            text: if matches { " 42." } else { " 41." }.into(),
            answer: if matches { "42" } else { "41" }.into(),
            logprob: -0.7,
            matches,
            us: 900,
        };
        let p = StoredProbe {
            steps: n,
            suffix: "\n\nThe final answer is".into(),
            final_answer: "42".into(),
            think_end: n,
            thinks: false,
            points: vec![
                point(0, false),
                point(n / 3, true),
                point(n / 2, false),
                point(2 * n / 3, true),
                point(n, true),
            ],
            settled: Some(3),
            prefill_us: 1,
            replay_us: 1,
        };
        probe::keep(&store, run.id, &p).unwrap();
        assert_eq!(probe::stored(&store, run.id).unwrap(), Some(p.clone()));
        let (view, _) = RunView::read(&store, run).unwrap();
        app.set_view(view);
        app.update(Action::ScreenTrace);
        let text = screen_text(&mut app, BIG);
        assert!(text.contains('◉') && text.contains('○') && text.contains('●'), "{text}");
        snap!(&mut app, "trace_probe_row");
    }

    fn step(i: u32, text: &str, phase: Phase) -> Step {
        Step {
            index: i,
            token_id: i,
            text: text.into(),
            logprob: -0.2,
            entropy: 0.5,
            phase,
            t_us: 0,
            top: vec![],
        }
    }

    #[test]
    fn the_routing_screen_highlights_the_experts_of_a_marker() {
        // Expert 9 of layer 2 fires on every thinking token and nowhere else.
        let mut steps = Vec::new();
        let mut routing = Vec::new();
        for i in 0..30u32 {
            let think = i < 12;
            steps.push(step(
                i,
                if i % 5 == 4 { ".\n\n" } else { " word" },
                if think { Phase::Think } else { Phase::Answer },
            ));
            let layers = (0..3u16)
                .map(|l| {
                    let mut experts: Vec<u16> = vec![(i as u16 + l) % 8, ((i as u16) * 3 + 1) % 8];
                    if l == 2 && think {
                        experts[0] = 9;
                    }
                    LayerRoute { layer: l, experts, weights: Some(vec![0.7, 0.3]), router: None }
                })
                .collect();
            routing.push((i, Routing { layers }));
        }
        let mut r = Run::new_recording(RunId(3), SessionId(1), SamplerSpec::default());
        r.model.experts = 16;
        r.model.experts_per_token = 2;
        let mut app = app_with(None);
        app.set_view(RunView::new(r, steps, Vec::new(), routing));
        app.update(Action::ScreenRouting);
        app.update(Action::NextLayer);
        app.update(Action::NextLayer);
        app.update(Action::CycleMarker);
        let top = app.viewer.cognitive_of(2);
        assert_eq!(top.first().map(|t| t.0), Some(9));
        assert!((top[0].1 - 1.0).abs() < 1e-9, "{top:?}");
        let text = screen_text(&mut app, BIG);
        assert!(text.contains("nPMI with 'think'") && text.contains("★ e9 1.00"), "{text}");
        snap!(&mut app, "routing_cognitive");
        for _ in 0..3 {
            app.update(Action::CycleMarker);
        }
        assert!(app.viewer.marker.is_none() && app.viewer.cognitive.is_empty());
    }
}
