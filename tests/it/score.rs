//! `thinkdbg score`: teacher-forced scoring must be exact. A greedy run recorded by thinkdbg
//! on a tiny F32 model (dense and MoE), scored under the same model in chunks, has the same
//! tokens, the same logprobs (within 1e-4), the same top-k ids and the same routing; the CLI
//! stores the scored run as a `scored` child that survives a JSONL round trip; a run scored
//! under another model of the same vocabulary lines up token for token; and a greedy decode
//! made by llama.cpp (an OpenAI-format fixture) scores to llama.cpp's own numbers.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use candle_core::quantized::GgmlDType;
use thinkdbg::engine::generate::{Prompt, RunRequest};
use thinkdbg::engine::score::{ScoreInput, ScoreRequest};
use thinkdbg::engine::synth::{self, Dims, SynthSpec};
use thinkdbg::engine::Engine;
use thinkdbg::record::{Event, ScoredTokens};
use thinkdbg::store::Store;
use thinkdbg::trace::{
    Message, Phase, Routing, RoutingDetail, RunSource, SamplerSpec, Step, StopReason,
};

use crate::common::{exact, output, run_id, thinkdbg, write_tiny, Tiny};

fn load(path: &Path) -> Engine {
    Engine::load(path, &exact(), &mut |_, _| {}).unwrap()
}

/// Steps and their routing from a recorder's events.
fn steps_of(events: Vec<Event>) -> (Vec<Step>, Vec<Option<Routing>>, Vec<Routing>) {
    let (mut steps, mut routes, mut prompt) = (Vec::new(), Vec::new(), Vec::new());
    for e in events {
        match e {
            Event::Step { step, routing } => {
                steps.push(step);
                routes.push(routing);
            }
            Event::PromptRouting(r) => prompt = r,
            _ => {}
        }
    }
    (steps, routes, prompt)
}

fn greedy(engine: &mut Engine, prompt: &Prompt, n: usize) -> Vec<Event> {
    let req = RunRequest {
        prompt: prompt.clone(),
        sampler: SamplerSpec { max_tokens: n, ignore_eos: true, ..SamplerSpec::default() },
        top_logprobs: 5,
        forced: Vec::new(),
        forced_text: None,
        routing: RoutingDetail::Selected,
        prompt_routing: true,
    };
    let mut events = Vec::new();
    engine.generate(&req, &mut events, &AtomicBool::new(false)).unwrap();
    events
}

fn score_request(engine: &Engine, prompt: &Prompt, steps: &[Step], chunk: usize) -> ScoreRequest {
    ScoreRequest {
        prompt: prompt.clone(),
        steps: steps
            .iter()
            .map(|s| ScoreInput { token_id: s.token_id, text: s.text.clone(), phase: s.phase })
            .collect(),
        fingerprint: engine.info.fingerprint.clone(),
        top_logprobs: 5,
        routing: RoutingDetail::Selected,
        chunk,
        stop: StopReason::MaxTokens,
    }
}

/// Asserts that `scored` is `run` as the same model sees it: tokens, logprobs, entropy, top ids
/// and routing.
fn assert_same(name: &str, run: &[Step], scored: &[Step], tol: f32) {
    assert_eq!(run.len(), scored.len(), "{name}: step count");
    for (a, b) in run.iter().zip(scored) {
        let i = a.index;
        assert_eq!(a.token_id, b.token_id, "{name}: token at step {i}");
        assert_eq!(a.text, b.text, "{name}: text at step {i}");
        assert_eq!(a.phase, b.phase, "{name}: phase at step {i}");
        assert!(
            (a.logprob - b.logprob).abs() < tol,
            "{name} step {i}: {} vs {}",
            a.logprob,
            b.logprob
        );
        assert!((a.entropy - b.entropy).abs() < tol, "{name} step {i}: entropy");
        let ids = |s: &Step| s.top.iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(ids(a), ids(b), "{name}: top-k ids at step {i}");
        for (x, y) in a.top.iter().zip(&b.top) {
            assert!((x.logprob - y.logprob).abs() < tol, "{name} step {i}: top logprob");
        }
    }
}

fn check_model(name: &str, path: &Path, prompt: Prompt, n: usize) {
    let mut engine = load(path);
    let (run, run_routes, run_prompt_routes) = steps_of(greedy(&mut engine, &prompt, n));
    assert_eq!(run.len(), n, "{name}");
    // Chunks that split the prompt, the output and the prompt/output boundary unevenly.
    // 1024: the whole run in one pass, against a run whose prompt was prefilled in chunks of
    // 256 (a long prompt).
    for chunk in [5, 256, 1024] {
        let req = score_request(&engine, &prompt, &run, chunk);
        let plan = engine.plan_score(&req).unwrap();
        assert_eq!(plan.tokens, ScoredTokens::ParentIds, "{name}");
        let mut events = Vec::new();
        let summary = engine.score(&req, &plan, &mut events, &AtomicBool::new(false)).unwrap();
        assert_eq!(summary.timings.generated_tokens as usize, n);
        let (scored, routes, prompt_routes) = steps_of(events);
        assert_same(&format!("{name} chunk {chunk}"), &run, &scored, 1e-4);
        assert_eq!(routes.len(), run_routes.len());
        for (i, (a, b)) in run_routes.iter().zip(&routes).enumerate() {
            let experts = |r: &Option<Routing>| {
                r.as_ref().map(|r| r.layers.iter().map(|l| l.experts.clone()).collect::<Vec<_>>())
            };
            assert_eq!(experts(a), experts(b), "{name} chunk {chunk}: routing of step {i}");
        }
        assert_eq!(prompt_routes.len(), run_prompt_routes.len(), "{name}: prompt routing");
    }
}

fn user(text: &str) -> Prompt {
    Prompt::Chat(vec![Message::new("user", text)])
}

#[test]
fn scoring_a_greedy_run_under_its_own_model_gives_its_numbers_back() {
    let dir = tempfile::tempdir().unwrap();
    for tiny in [Tiny::llama(), Tiny::qwen3()] {
        let path = write_tiny(dir.path(), &tiny);
        check_model(tiny.arch, &path, user("the answer is"), 24);
    }
    for (arch, seed) in [("qwen3moe", 1), ("deepseek2", 1)] {
        let path = dir.path().join(format!("{arch}.gguf"));
        let dims = Dims::named(arch, "tiny").unwrap();
        synth::write(&SynthSpec { dims, quant: GgmlDType::F32, seed }, &path).unwrap();
        check_model(arch, &path, Prompt::Raw("<|im_start|>user\nthe answer is".into()), 24);
    }
    // A prompt past one prefill chunk (256 tokens): the run's prompt goes in two chunks.
    let long = "the answer is ".repeat(100);
    let path = write_tiny(dir.path(), &Tiny { context: 1024, ..Tiny::llama() });
    check_model("llama, long prompt", &path, user(&long), 8);
    let path = dir.path().join("qwen3moe-1k.gguf");
    let dims = Dims { context: 1024, ..Dims::named("qwen3moe", "tiny").unwrap() };
    synth::write(&SynthSpec { dims, quant: GgmlDType::F32, seed: 1 }, &path).unwrap();
    check_model("qwen3moe, long prompt", &path, Prompt::Raw(long), 8);
}

#[test]
fn text_without_ids_is_scored_by_token_text_or_retokenized() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_tiny(dir.path(), &Tiny::qwen3());
    let mut engine = load(&path);
    let prompt = user("the answer is");
    // A run of whole-character tokens (forced, so the model's numbers for them are recorded).
    let text = " the answer is 42, because six times seven is forty-two.";
    let forced = engine.tokenizer().encode(text).unwrap();
    let req = RunRequest {
        prompt: prompt.clone(),
        sampler: SamplerSpec {
            max_tokens: forced.len(),
            ignore_eos: true,
            ..SamplerSpec::default()
        },
        top_logprobs: 5,
        forced: forced.clone(),
        forced_text: None,
        routing: RoutingDetail::Selected,
        prompt_routing: true,
    };
    let mut events = Vec::new();
    engine.generate(&req, &mut events, &AtomicBool::new(false)).unwrap();
    let (run, _, _) = steps_of(events);
    assert_eq!(run.iter().map(|s| s.token_id).collect::<Vec<_>>(), forced);
    // A server trace of the same model: texts, no ids, no fingerprint.
    let mut req = score_request(&engine, &prompt, &run, 7);
    req.fingerprint.clear();
    for s in &mut req.steps {
        s.token_id = thinkdbg::trace::UNKNOWN_TOKEN;
    }
    let plan = engine.plan_score(&req).unwrap();
    assert_eq!(plan.tokens, ScoredTokens::TokenTexts);
    assert!(plan.parent_steps.is_empty());
    let mut events = Vec::new();
    engine.score(&req, &plan, &mut events, &AtomicBool::new(false)).unwrap();
    assert_same("by text", &run, &steps_of(events).0, 1e-4);
    // A step that is no single token (a server that streams words): the model's own
    // tokenization, each token mapped back to the step holding its first character.
    let words: Vec<ScoreInput> = text
        .split_inclusive(' ')
        .map(|w| ScoreInput { token_id: u32::MAX, text: w.into(), phase: run[0].phase })
        .collect();
    req.steps = words.clone();
    let plan = engine.plan_score(&req).unwrap();
    assert_eq!(plan.tokens, ScoredTokens::Retokenized);
    assert_eq!(plan.ids, forced, "the same text tokenizes the same");
    assert_eq!(plan.parent_steps.len(), plan.ids.len());
    assert!(plan.parent_steps.windows(2).all(|w| w[0] <= w[1]), "{:?}", plan.parent_steps);
    assert_eq!(plan.parent_steps[0], 0);
    assert_eq!(*plan.parent_steps.last().unwrap() as usize, words.len() - 1);
    let mut events = Vec::new();
    engine.score(&req, &plan, &mut events, &AtomicBool::new(false)).unwrap();
    let scored = steps_of(events).0;
    // Every scored token starts inside the word it is mapped to.
    let mut offset = 0;
    let starts: Vec<usize> = words
        .iter()
        .map(|w| {
            let s = offset;
            offset += w.text.len();
            s
        })
        .collect();
    let mut at = 0;
    for (s, &p) in scored.iter().zip(&plan.parent_steps) {
        let p = p as usize;
        assert!(starts[p] <= at && at < starts[p] + words[p].text.len(), "step {}", s.index);
        at += s.text.len();
    }
    assert_same("retokenized", &run, &scored, 1e-4);
    // Reasoning recorded without tags (a server's reasoning_content) gets the tags the
    // template expects; the prompt here opens <think>, so only the closing one is added.
    let mut tagged = words.clone();
    tagged.last_mut().unwrap().phase = Phase::Answer;
    for w in &mut tagged[..words.len() - 1] {
        w.phase = Phase::Think;
    }
    req.steps = tagged;
    let plan = engine.plan_score(&req).unwrap();
    let back: String = plan
        .ids
        .iter()
        .map(|&i| String::from_utf8_lossy(engine.tokenizer().token_bytes(i)))
        .collect();
    let close = back.find("\n</think>\n\n").expect("a closing tag was inserted");
    assert!(back[close..].ends_with("\n</think>\n\nforty-two."), "{back:?}");
}

fn open_store(dir: &Path) -> Store {
    Store::open(&dir.join("store")).unwrap()
}

#[test]
fn score_cli_records_a_scored_child_that_round_trips_through_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = write_tiny(d, &Tiny::qwen3());
    let rec = crate::common::record(
        d,
        &model,
        &["-n", "20", "--ignore-eos", "--top-logprobs", "5"],
        "hi",
    );
    let (out, err) =
        output(thinkdbg(d).args(["score", &rec.id, "--model"]).arg(&model).args(["--chunk", "6"]));
    let scored_id = out.lines().last().unwrap().to_string();
    assert!(err.contains("the parent's token ids"), "{err}");
    assert!(out.contains("least likely under the model"), "{out}");
    let session = {
        let store = open_store(d);
        let parent = store.run(run_id(&rec.id)).unwrap().unwrap();
        let run = store.run(run_id(&scored_id)).unwrap().unwrap();
        assert_eq!(run.parent, Some((parent.id, 0)));
        assert!(run.is_scored());
        assert_eq!(run.label.as_deref(), Some(format!("scored by {}", parent.model.name).as_str()));
        let a = store.steps(parent.id).unwrap().steps;
        let b = store.steps(run.id).unwrap().steps;
        assert_same("cli", &a, &b, 1e-4);
        assert_eq!(run.prompt_tokens, parent.prompt_tokens);
        parent.session.to_string()
    };
    // ls shows it; export and re-import keep the relation.
    let ls = output(thinkdbg(d).arg("ls")).0;
    assert!(ls.contains(&scored_id), "{ls}");
    let file = d.join("s.jsonl");
    output(thinkdbg(d).args(["export", &session, "--format", "jsonl", "-o"]).arg(&file));
    let jsonl = std::fs::read_to_string(&file).unwrap();
    assert!(jsonl.contains("\"scored\""), "the export names the relation");
    let d2 = d.join("other");
    std::fs::create_dir_all(&d2).unwrap();
    output(thinkdbg(&d2).arg("import").arg(&file));
    let store = open_store(&d2);
    let runs: Vec<_> = store.runs().unwrap();
    let scored = runs.iter().find(|r| r.is_scored()).expect("the scored run was imported");
    let parent = runs.iter().find(|r| !r.is_scored()).unwrap();
    assert_eq!(scored.parent, Some((parent.id, 0)));
    assert!(matches!(&scored.source, RunSource::Scored(s) if s.tokens == ScoredTokens::ParentIds));
}

#[test]
fn score_cli_cross_model_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = write_tiny(d, &Tiny::qwen3());
    let b_dir = d.join("b");
    std::fs::create_dir_all(&b_dir).unwrap();
    let b = write_tiny(&b_dir, &Tiny::llama());
    let rec = crate::common::record(d, &a, &["-n", "12", "--ignore-eos"], "hi");
    // Another model with the same vocabulary: its view of the same tokens, one for one.
    let (out, err) =
        output(thinkdbg(d).args(["score", &rec.id, "--label", "B's view", "--model"]).arg(&b));
    let id = out.lines().last().unwrap().to_string();
    let store = open_store(d);
    let run = store.run(run_id(&id)).unwrap().unwrap();
    assert_eq!(run.label.as_deref(), Some("B's view"));
    assert_eq!(run.model.arch, "llama");
    let parent = store.steps(run_id(&rec.id)).unwrap().steps;
    let steps = store.steps(run.id).unwrap().steps;
    assert!(err.contains("tokens ("), "{err}");
    let text = |s: &[Step]| s.iter().map(|s| s.text.clone()).collect::<String>();
    // B's template does not open <think> as A's does: the tag B expects is added in front.
    let (got, want) = (text(&steps), text(&parent));
    assert!(got == want || got.replacen("<think>\n", "", 1) == want, "{got:?} vs {want:?}");
    assert!(steps.iter().all(|s| (run.scored_parent_step(s.index) as usize) < parent.len()));
    assert!(steps.iter().all(|s| s.logprob.is_finite()));
    assert!(steps.iter().zip(&parent).any(|(x, y)| (x.logprob - y.logprob).abs() > 1e-3));
    drop(store);
    // Bad input: an unknown run, a session id, a zero chunk.
    let fail = |args: &[&str]| {
        let out = thinkdbg(d).args(args).arg("--model").arg(&a).output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    assert!(fail(&["score", "r999999"]).contains("'r999999'"));
    assert!(fail(&["score", &rec.id, "--chunk", "0"]).contains("'--chunk'"));
}

/// llama.cpp's alternatives at a step are among ours with the same logprob (within 1e-4) and
/// the same text. llama-cpp-python keys them by text, giving every lone byte of a character
/// the same empty text (one entry for all of them): such an entry must match one of our
/// alternatives that is no whole character (shown as `\xNN`).
fn check_alternatives(i: u32, ours: &[thinkdbg::trace::TopToken], theirs: &[serde_json::Value]) {
    for t in theirs {
        let text = t["token"].as_str().unwrap();
        let lp = t["logprob"].as_f64().unwrap() as f32;
        let found = ours.iter().any(|o| {
            (o.logprob - lp).abs() < 1e-4
                && if text.is_empty() { o.text.contains("\\x") } else { o.text == text }
        });
        assert!(found, "step {i}: llama.cpp's alternative {text:?} ({lp}) is not among {ours:?}");
    }
}

#[derive(serde::Deserialize)]
struct Reference {
    response: serde_json::Value,
    thinkdbg: ReferenceModel,
}

#[derive(serde::Deserialize)]
struct ReferenceModel {
    synth_args: Vec<String>,
    sha256: String,
}

/// A greedy decode made by llama.cpp on an F32 model (`assets/score_reference.py`), imported
/// as an OpenAI exchange (texts and logprobs, no token ids) and scored under the same model
/// file: token for token by text, llama.cpp's logprobs within 1e-4 and its top-k tokens.
#[test]
fn a_llama_cpp_greedy_decode_scores_to_llama_cpps_numbers() {
    let fixture = "tests/fixtures/score/llama_cpp_greedy.json";
    let text = std::fs::read_to_string(fixture).unwrap();
    let fx: Reference = serde_json::from_str(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = d.join("model.gguf");
    output(
        thinkdbg(d).args(["model", "synth"]).args(&fx.thinkdbg.synth_args).arg("--out").arg(&model),
    );
    let sha = {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(std::fs::read(&model).unwrap()))
    };
    assert_eq!(sha, fx.thinkdbg.sha256, "the regenerated model differs from the fixture's");
    let (out, _) = output(thinkdbg(d).args(["import", "--format", "openai", fixture]));
    let imported = out.lines().last().unwrap().trim().to_string();
    let (out, err) = output(
        thinkdbg(d)
            // The fixture's llama.cpp ran with an f32 KV cache; so does thinkdbg here.
            .args(["--kv-cache", "f32", "score", &imported, "--top-logprobs", "10", "--model"])
            .arg(&model),
    );
    assert!(err.contains("the parent's tokens, by their text"), "{err}");
    let scored = out.lines().last().unwrap().to_string();
    let store = open_store(d);
    let steps = store.steps(run_id(&scored)).unwrap().steps;
    let content = fx.response["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert_eq!(steps.len(), content.len());
    for (s, c) in steps.iter().zip(content) {
        let i = s.index;
        assert_eq!(s.text, c["token"].as_str().unwrap(), "text at step {i}");
        let want = c["logprob"].as_f64().unwrap() as f32;
        assert!((s.logprob - want).abs() < 1e-4, "step {i}: {} vs llama.cpp {want}", s.logprob);
        check_alternatives(i, &s.top, c["top_logprobs"].as_array().unwrap());
    }
}

/// The same fixture without the importer: its steps (texts, no ids) scored by the engine
/// under the regenerated model must give llama.cpp's numbers, token for token by text.
#[test]
fn a_llama_cpp_trace_scored_by_the_engine_matches_llama_cpp() {
    let text = std::fs::read_to_string("tests/fixtures/score/llama_cpp_greedy.json").unwrap();
    let fx: Reference = serde_json::from_str(&text).unwrap();
    let request: serde_json::Value =
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["request"].clone();
    let messages: Vec<Message> = serde_json::from_value(request["messages"].clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.gguf");
    let arg = |k: &str| {
        let i = fx.thinkdbg.synth_args.iter().position(|a| a == k).unwrap();
        fx.thinkdbg.synth_args[i + 1].clone()
    };
    let dims = Dims::named(&arg("--arch"), &arg("--shape")).unwrap();
    assert_eq!(arg("--quant"), "f32");
    let spec = SynthSpec { dims, quant: GgmlDType::F32, seed: arg("--seed").parse().unwrap() };
    synth::write(&spec, &model).unwrap();
    let sha = {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(std::fs::read(&model).unwrap()))
    };
    assert_eq!(sha, fx.thinkdbg.sha256, "the regenerated model differs from the fixture's");
    let content = fx.response["choices"][0]["logprobs"]["content"].as_array().unwrap().clone();
    let mut engine = load(&model);
    let req = ScoreRequest {
        prompt: Prompt::Chat(messages),
        steps: content
            .iter()
            .map(|c| ScoreInput {
                token_id: thinkdbg::trace::UNKNOWN_TOKEN,
                text: c["token"].as_str().unwrap().to_string(),
                phase: thinkdbg::trace::Phase::Answer,
            })
            .collect(),
        fingerprint: String::new(),
        top_logprobs: 10,
        routing: RoutingDetail::Selected,
        chunk: 5,
        stop: StopReason::MaxTokens,
    };
    let plan = engine.plan_score(&req).unwrap();
    assert_eq!(plan.tokens, ScoredTokens::TokenTexts);
    let mut events = Vec::new();
    engine.score(&req, &plan, &mut events, &AtomicBool::new(false)).unwrap();
    let steps = steps_of(events).0;
    assert_eq!(steps.len(), content.len());
    for (s, c) in steps.iter().zip(&content) {
        let i = s.index;
        assert_eq!(s.text, c["token"].as_str().unwrap(), "text at step {i}");
        let want = c["logprob"].as_f64().unwrap() as f32;
        assert!((s.logprob - want).abs() < 1e-4, "step {i}: {} vs llama.cpp {want}", s.logprob);
        check_alternatives(i, &s.top, c["top_logprobs"].as_array().unwrap());
    }
}

/// `S` in the terminal UI scores the run on screen with the UI's model: a scored child that
/// the UI follows while it streams, then `C` compares it with its parent, marking where the
/// scoring model would have chosen another token.
#[test]
fn the_tui_scores_the_run_on_screen_and_compares_it() {
    use std::sync::Arc;
    use thinkdbg::tui::components::Screen;
    use thinkdbg::tui::jobs::ModelChoice;
    use thinkdbg::tui::Action;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = write_tiny(d, &Tiny::qwen3());
    let b_dir = d.join("b");
    std::fs::create_dir_all(&b_dir).unwrap();
    let b = write_tiny(&b_dir, &Tiny::llama());
    let rec = crate::common::record(d, &a, &["-n", "16", "--ignore-eos"], "hi");
    let store = Arc::new(Store::open(&d.join("store")).unwrap());
    let mut app = crate::common::tui::app_with(Some(store.clone()));
    // Scored under another model than the one that recorded it.
    app.jobs.model = ModelChoice { spec: Some(b.to_str().unwrap().into()), offline: true };
    let parent = run_id(&rec.id);
    assert_eq!(app.viewer.view.as_ref().unwrap().run.id, parent);
    app.update(Action::Score);
    let scored = app.viewer.live.expect("the scored run is followed");
    assert!(app.message.contains("scoring"), "{}", app.message);
    crate::common::tui::pump(&mut app, std::time::Duration::from_secs(300));
    assert!(app.message.contains(&format!("run '{scored}' scored")), "{}", app.message);
    let run = store.run(scored).unwrap().unwrap();
    assert!(run.is_scored());
    assert_eq!(run.parent, Some((parent, 0)));
    assert_eq!(run.model.arch, "llama");
    assert_eq!(run.status, thinkdbg::trace::RunStatus::Complete);
    let steps = store.steps(scored).unwrap().steps;
    assert!(!steps.is_empty() && steps.iter().all(|s| s.logprob.is_finite()));
    let view = app.viewer.view.as_ref().unwrap();
    assert_eq!(view.run.label, run.label, "the view was re-read when the score ended");
    app.update(Action::Compare);
    assert_eq!(app.screen, Screen::Compare, "{}", app.message);
    let c = app.compare.as_ref().unwrap();
    assert_eq!((c.a.run.id, c.b.run.id), (parent, scored));
    for (i, s) in c.b.steps.iter().enumerate() {
        let disagrees = s.top.first().is_some_and(|t| t.id != s.token_id);
        assert!(!disagrees || c.diff_b[i], "step {i}: B's disagreement is marked");
    }
    // Nothing to score: a clear message, no run.
    let mut empty = crate::common::tui::app_with(None);
    empty.update(Action::Score);
    assert_eq!(empty.message, "no run to score");
}
