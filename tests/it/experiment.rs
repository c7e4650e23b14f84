//! `thinkdbg experiment` end to end on a tiny model: every sample is a stored run in its
//! variant's session with the paired seed; the report's numbers are recomputed here from the
//! stored runs' analysis; an experiment killed mid-way resumes and redoes only what did not
//! complete; bad specs are refused naming the key; the Markdown and HTML reports.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use thinkdbg::analysis::AnalysisConfig;
use thinkdbg::runs::analysis::ensure;
use thinkdbg::store::Store;
use thinkdbg::trace::{RunId, RunStatus};

use crate::common::{heavy, output, record, run_id, thinkdbg, thinkdbg_std, write_tiny, Tiny};

fn spec(model: &Path, samples: usize, max_tokens: usize, extra: &str) -> String {
    format!(
        r#"name = "tiny check"
model = "{}"
samples = {samples}
seed = 5
max_tokens = {max_tokens}
expect = "/[a-m]/"
{extra}
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

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn every_sample_is_stored_and_the_report_is_recomputed_from_the_runs() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::qwen2());
    let path = dir.path().join("spec.toml");
    std::fs::write(&path, spec(&model, 3, 12, "")).unwrap();
    let (out, err) = output(thinkdbg(dir.path()).arg("experiment").arg(&path).arg("--json"));
    assert!(err.contains("2 variants × 3 samples, 6 to run"), "{err}");
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{out}");
    let store = Store::open(&dir.path().join("store")).unwrap();
    let exps = store.experiments().unwrap();
    assert_eq!(exps.len(), 1);
    let e = &exps[0];
    assert_eq!(e.samples.len(), 6);
    let cfg = AnalysisConfig::defaults().unwrap();
    for (v, obj) in lines[..2].iter().enumerate() {
        let (name, session) = &e.variants[v];
        assert_eq!(obj["variant"], name.as_str());
        assert_eq!(obj["n"], 3);
        let runs: Vec<RunId> = (0..3).map(|i| e.run_of(v, i).unwrap()).collect();
        let listed: Vec<String> =
            obj["runs"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().into()).collect();
        assert_eq!(listed, runs.iter().map(|r| r.to_string()).collect::<Vec<_>>());
        let (mut tokens, mut logprob, mut loops, mut switches, mut bt) =
            (vec![], vec![], 0usize, 0usize, vec![]);
        for (i, id) in runs.iter().enumerate() {
            let run = store.run(*id).unwrap().unwrap();
            assert_eq!(run.status, RunStatus::Complete);
            assert_eq!(run.session, *session);
            // Paired samples: sample i of every variant has seed 5 + i.
            assert_eq!(run.sampler.seed, 5 + i as u64);
            assert_eq!(run.sampler.max_tokens, 12);
            let other = store.run(e.run_of(1 - v, i).unwrap()).unwrap().unwrap();
            assert_eq!(other.sampler.seed, run.sampler.seed);
            let a = ensure(&store, *id, &cfg, true).unwrap();
            assert_eq!(a.steps.len(), a.stats.tokens);
            tokens.push(a.stats.tokens as f64);
            logprob.push(a.stats.mean_logprob.unwrap());
            bt.push(a.stats.backtracks_per_1k);
            let has = |k: &str| a.stats.flags_by_kind.iter().any(|(n, _)| n == k);
            loops += usize::from(has("repetition"));
            switches += usize::from(has("language_switch"));
        }
        assert!(close(&obj["mean_tokens"], mean(&tokens)), "{obj}");
        assert!(close(&obj["mean_logprob"], mean(&logprob)), "{obj}");
        assert!(close(&obj["backtracks_per_1k"], mean(&bt)), "{obj}");
        assert!(close(&obj["loop_rate"], loops as f64 / 3.0), "{obj}");
        assert!(close(&obj["language_switch_rate"], switches as f64 / 3.0), "{obj}");
        let answers: u64 =
            obj["answers"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
        assert_eq!(answers, 3);
        assert!(obj["accuracy"].as_f64().is_some(), "{obj}");
        let session = store.session(*session).unwrap().unwrap();
        assert_eq!(session.runs, runs);
        assert!(session.tags.contains(&format!("experiment:e{}", e.id)));
    }
    let cmp = &lines[2]["comparison"];
    assert_eq!(cmp["variant"], "steps");
    assert_eq!(cmp["against"], "plain");
    let d = &cmp["metrics"]["mean_tokens"];
    assert!(close(
        &d["difference"],
        lines[1]["mean_tokens"].as_f64().unwrap() - lines[0]["mean_tokens"].as_f64().unwrap()
    ));
    let loop_cmp = &cmp["metrics"]["loop_rate"];
    assert_eq!(loop_cmp["interval"], "newcombe");
    assert_eq!(loop_cmp["mcnemar"]["pairs"], 3);
    let p = loop_cmp["mcnemar"]["p"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p));
    // A sample is the run a lone `record` gives with its seed.
    let first = e.run_of(0, 1).unwrap();
    let lone_steps = {
        drop(store);
        let lone = record(
            dir.path(),
            &model,
            &["-n", "12", "-t", "0.9", "--seed", "6"],
            "What is 6 times 7?",
        );
        let store = Store::open(&dir.path().join("store")).unwrap();
        let a: Vec<u32> =
            store.steps(run_id(&lone.id)).unwrap().steps.iter().map(|s| s.token_id).collect();
        let b: Vec<u32> = store.steps(first).unwrap().steps.iter().map(|s| s.token_id).collect();
        (a, b)
    };
    assert_eq!(lone_steps.0, lone_steps.1);
    // The stored report, as Markdown and HTML.
    let md = dir.path().join("r.md");
    let html = dir.path().join("r.html");
    let (table, _) = output(
        thinkdbg(dir.path())
            .args(["experiment", "--report", &format!("e{}", e.id), "--markdown"])
            .arg(&md)
            .arg("--html")
            .arg(&html),
    );
    assert!(table.contains("steps against plain"), "{table}");
    assert!(table.contains("completed samples") && table.contains("3 of 3"), "{table}");
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.contains("| metric | plain | steps |"), "{md}");
    let html = std::fs::read_to_string(&html).unwrap();
    assert!(html.contains("Content-Security-Policy") && html.contains("<svg"));
    assert!(!html.to_lowercase().contains("<script"));
    let list = output(thinkdbg(dir.path()).args(["experiment", "--list"])).0;
    assert!(list.contains("tiny check") && list.contains("6/6 samples"), "{list}");
}

/// How many samples the log says completed.
fn completed(log: &Path) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().filter(|l| l.contains("experiment sample complete")).count()
}

#[test]
fn a_killed_experiment_resumes_and_redoes_only_what_did_not_complete() {
    let _heavy = heavy();
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny { context: 1 << 16, ..Tiny::llama() });
    let path = dir.path().join("spec.toml");
    std::fs::write(&path, spec(&model, 6, 3000, "")).unwrap();
    let log = dir.path().join("exp.log");
    let mut child = thinkdbg_std(dir.path())
        .arg("--log-file")
        .arg(&log)
        .arg("experiment")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while completed(&log) < 2 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before_done = completed(&log);
    assert!(before_done >= 2, "no sample completed in two minutes");
    let kept: Vec<(usize, usize, RunId)> = {
        let store = Store::open(&dir.path().join("store")).unwrap();
        let e = &store.experiments().unwrap()[0];
        let mut kept = Vec::new();
        let mut unfinished = 0;
        for s in &e.samples {
            let run = store.run(s.run).unwrap().unwrap();
            if run.status == RunStatus::Complete {
                kept.push((s.variant as usize, s.sample as usize, s.run));
            } else {
                unfinished += 1;
            }
        }
        assert!(kept.len() >= 2);
        assert!(unfinished > 0 || e.samples.len() < 12, "the kill came after the experiment ended");
        kept
    };
    let (out, err) =
        output(thinkdbg(dir.path()).arg("experiment").arg(&path).args(["--resume", "--json"]));
    assert!(err.contains(&format!("({} done before)", kept.len())), "{err}");
    let store = Store::open(&dir.path().join("store")).unwrap();
    let exps = store.experiments().unwrap();
    assert_eq!(exps.len(), 1, "a resume continues the experiment");
    let e = &exps[0];
    assert_eq!(e.samples.len(), 12);
    for (v, i, id) in &kept {
        assert_eq!(e.run_of(*v, *i), Some(*id), "a complete sample was redone");
    }
    for v in 0..2 {
        let session = store.session(e.variants[v].1).unwrap().unwrap();
        assert_eq!(session.runs.len(), 6, "left-over runs in the session");
        for i in 0..6 {
            let run = store.run(e.run_of(v, i).unwrap()).unwrap().unwrap();
            assert_eq!(run.status, RunStatus::Complete);
            assert_eq!(run.sampler.seed, 5 + i as u64);
            assert!(session.runs.contains(&run.id));
        }
    }
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["n"], 6);
    assert_eq!(lines[1]["n"], 6);
    // Resuming a finished experiment runs nothing; a changed spec is refused.
    drop(store);
    let (_, err) = output(thinkdbg(dir.path()).arg("experiment").arg(&path).arg("--resume"));
    assert!(err.contains("0 to run"), "{err}");
    std::fs::write(&path, spec(&model, 7, 3000, "")).unwrap();
    let out = thinkdbg(dir.path()).arg("experiment").arg(&path).arg("--resume").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("changed since it started"), "{err}");
}

#[test]
fn bad_specs_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::qwen2());
    let good = spec(&model, 2, 4, "");
    let cases = [
        (
            good.replace("name = \"steps\"", "name = \"steps\"\nsampels = 3"),
            "unknown key 'sampels' in [[variant]] 2",
        ),
        (good.replace("samples = 2", "samples = 0"), "'samples' must be at least 1"),
        (good.split("[[variant]]").next().unwrap().to_string(), "no [[variant]]"),
        (good.replace("seed = 5", "sead = 5"), "unknown key 'sead'"),
        (good.replace("temperature = 0.9", "temperature = -1.0"), "[sampler]"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = thinkdbg(dir.path()).arg("experiment").arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} ran");
        assert!(err.contains(want), "case {i}: {err}");
        assert!(err.contains(&format!("bad{i}.toml")), "case {i}: {err}");
    }
    // Nothing was stored for a refused spec.
    assert!(
        !dir.path().join("store").exists()
            || Store::open(&dir.path().join("store")).unwrap().experiments().unwrap().is_empty()
    );
}

#[test]
fn the_experiments_screen_shows_the_report_and_compares_paired_samples() {
    use crate::common::tui::{app_with, snap};
    use thinkdbg::tui::components::Screen;
    use thinkdbg::tui::Action;
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::qwen2());
    let path = dir.path().join("spec.toml");
    std::fs::write(&path, spec(&model, 3, 8, "")).unwrap();
    output(thinkdbg(dir.path()).arg("experiment").arg(&path));
    let store = std::sync::Arc::new(Store::open(&dir.path().join("store")).unwrap());
    let e = store.experiments().unwrap().remove(0);
    let mut app = app_with(Some(store));
    app.update(Action::ScreenExperiments);
    assert_eq!(app.screen, Screen::Experiments);
    let report = app.experiments.report.as_ref().expect("a report");
    assert_eq!(report.variants.len(), 2);
    assert_eq!(report.variants[1].n(), 3);
    snap!(&mut app, "experiments");
    app.update(Action::Down);
    app.update(Action::Open);
    assert!(app.experiments.listing);
    snap!(&mut app, "experiments_runs");
    app.update(Action::CycleSort);
    assert_eq!(app.message, "runs sorted by flags");
    app.update(Action::CycleSort);
    app.update(Action::CycleSort);
    app.update(Action::CycleSort);
    // The selected run of variant 2 against sample 0 of variant 1: the same seed.
    app.update(Action::Compare);
    assert_eq!(app.screen, Screen::Compare, "{}", app.message);
    let c = app.compare.as_ref().unwrap();
    assert_eq!(c.a.run.id, e.run_of(0, 0).unwrap());
    assert_eq!(c.b.run.id, e.run_of(1, 0).unwrap());
    assert_eq!(c.a.run.sampler.seed, c.b.run.sampler.seed);
    // Enter on a listed run opens it in the trace view.
    app.update(Action::ScreenExperiments);
    app.update(Action::Open);
    app.update(Action::Open);
    assert_eq!(app.screen, Screen::Trace);
    assert_eq!(app.viewer.run_id(), e.run_of(1, 0));
}

/// A chat-completions server that answers every request after `delay` (one thread per
/// connection) and keeps the request bodies and the most requests it had in flight at once.
pub(crate) struct FakeServer {
    pub(crate) url: String,
    pub(crate) bodies: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    pub(crate) peak: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

pub(crate) fn fake_server(delay: Duration) -> FakeServer {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use thinkdbg::remote::loopback;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let peak = Arc::new(AtomicUsize::new(0));
    let now = Arc::new(AtomicUsize::new(0));
    let (b, p) = (bodies.clone(), peak.clone());
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(mut sock) = sock else { return };
            let (b, p, now) = (b.clone(), p.clone(), now.clone());
            std::thread::spawn(move || {
                let Ok(body) = loopback::read_request(&sock) else { return };
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(n, Ordering::SeqCst);
                b.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
                std::thread::sleep(delay);
                let chunk = |delta: Value, finish: Option<&str>| {
                    let c = serde_json::json!({"model": "fake",
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
                    format!("data: {c}\r\n\r\n")
                };
                let mut out = loopback::SSE_HEAD.to_vec();
                for (d, f) in [
                    (serde_json::json!({"reasoning_content": "Six sevens."}), None),
                    (serde_json::json!({"content": "The answer is 42."}), None),
                    (serde_json::json!({}), Some("stop")),
                ] {
                    out.extend_from_slice(chunk(d, f).as_bytes());
                }
                out.extend_from_slice(b"data: [DONE]\r\n\r\n");
                now.fetch_sub(1, Ordering::SeqCst);
                let _ = sock.write_all(&out);
            });
        }
    });
    FakeServer { url, bodies, peak }
}

#[test]
fn an_endpoint_experiment_runs_samples_concurrently_with_paired_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let server = fake_server(Duration::from_millis(300));
    let text = format!(
        r#"name = "remote"
endpoint = "{}/v1"
remote_model = "fake"
samples = 4
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
    let path = dir.path().join("remote.toml");
    std::fs::write(&path, text).unwrap();
    let (out, _) = output(thinkdbg(dir.path()).arg("experiment").arg(&path).args([
        "--json",
        "--concurrency",
        "3",
    ]));
    let peak = server.peak.load(std::sync::atomic::Ordering::SeqCst);
    assert!((2..=3).contains(&peak), "{peak} requests in flight at most");
    let bodies = server.bodies.lock().unwrap();
    assert_eq!(bodies.len(), 8);
    let mut seeds: Vec<u64> = bodies.iter().map(|b| b["seed"].as_u64().unwrap()).collect();
    seeds.sort_unstable();
    assert_eq!(seeds, vec![100, 100, 101, 101, 102, 102, 103, 103]);
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for v in &lines[..2] {
        assert_eq!(v["n"], 4, "{v}");
        assert_eq!(v["accuracy"], 1.0, "{v}");
        assert_eq!(v["answers"]["42"], 4, "{v}");
    }
    let acc = &lines[2]["comparison"]["metrics"]["accuracy"];
    assert_eq!(acc["mcnemar"]["p"], 1.0);
    let store = Store::open(&dir.path().join("store")).unwrap();
    let e = &store.experiments().unwrap()[0];
    let run = store.run(e.run_of(1, 2).unwrap()).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Complete);
    assert_eq!(run.sampler.seed, 102);
    assert!(thinkdbg::runs::remote::provenance(&run).is_some());
}
