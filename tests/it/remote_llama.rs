//! Recording from a REAL llama.cpp server (`python3 -m llama_cpp.server` from
//! llama-cpp-python[server], provisioned by `common::llama_server`) serving the demo model on a loopback port:
//! the recorded steps match the server's non-streaming answer to the same greedy request, and
//! a server killed mid-stream leaves an `Interrupted` run with the steps that arrived.
//! The interpreter is `THINKDBG_PYTHON` (default `python3`), with the package installed into the
//! cache when it has none.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use thinkdbg::store::Store;
use thinkdbg::trace::{LogprobKind, Phase, RunId, RunSource, RunStatus, UNKNOWN_TOKEN};

use crate::common::llama_server::Server;
use crate::common::{heavy, run_id, thinkdbg, thinkdbg_std};

const PROMPT: &str = "Count from 1 to 500, separated by commas.";

/// The run id on the last line of a command's stdout.
fn last_run_id(stdout: &[u8]) -> RunId {
    let text = String::from_utf8_lossy(stdout);
    run_id(text.lines().last().unwrap_or_default().trim())
}

#[test]
fn records_from_a_real_llama_cpp_server_and_survives_its_death() {
    let _heavy = heavy();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let n = 24;

    // 1. A complete greedy recording with top-5 alternatives. The server reuses the cached
    // prefix of its previous prompt, and a prompt evaluated from another cache state comes out
    // with other numerics (0.03 nats on some builds), so both this request and the reference
    // below start from the same state: after a short raw-text request.
    flush_prompt_cache(&server.url);
    let out = thinkdbg(dir.path())
        .args(["record", "--endpoint", &format!("{}/v1", server.url), "--remote-model", "demo"])
        .args(["-n", &n.to_string(), "--top-logprobs", "5", "--seed", "7", "-t", "0", PROMPT])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = last_run_id(&out.stdout);

    // The server's non-streaming answer to the same request, from the same cache state.
    flush_prompt_cache(&server.url);
    let reference: Value = ureq::post(&format!("{}/v1/chat/completions", server.url))
        .send_json(json!({
            "model": "demo", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": n,
            "temperature": 0.0, "top_p": 1.0, "seed": 7, "logprobs": true, "top_logprobs": 5,
        }))
        .unwrap()
        .into_json()
        .unwrap();
    let entries = reference.pointer("/choices/0/logprobs/content").unwrap().as_array().unwrap();
    let content = reference.pointer("/choices/0/message/content").unwrap().as_str().unwrap();

    let (first_steps, _) = {
        let store = Store::open(&dir.path().join("store")).unwrap();
        let run = store.run(id).unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Complete);
        assert_eq!(run.logprob_kind, LogprobKind::Raw);
        let RunSource::Remote { endpoint, server: info } = &run.source else {
            panic!("{:?}", run.source)
        };
        assert_eq!(endpoint, &format!("{}/v1", server.url));
        assert_eq!(info.model, "demo");
        assert!(info.missing.iter().any(|m| m == "token ids"), "{info:?}");
        let steps = store.steps(id).unwrap().steps;
        assert_eq!(steps.len(), entries.len());
        assert_eq!(steps.iter().map(|s| s.text.as_str()).collect::<String>(), content);
        for (s, e) in steps.iter().zip(entries) {
            assert_eq!(s.text, e["token"].as_str().unwrap());
            let lp = e["logprob"].as_f64().unwrap() as f32;
            assert!((s.logprob - lp).abs() < 1e-3, "step {}: {} vs {lp}", s.index, s.logprob);
            assert_eq!(s.phase, Phase::Answer);
            assert_eq!(s.token_id, UNKNOWN_TOKEN);
            let tops: Vec<&str> = e["top_logprobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["token"].as_str().unwrap())
                .collect();
            assert_eq!(s.top.iter().map(|t| t.text.as_str()).collect::<Vec<_>>(), tops);
        }
        (steps, run)
    };

    // 2. A long recording, with the server killed once some steps are on disk.
    let log = dir.path().join("kill.log");
    let mut rec = thinkdbg_std(dir.path())
        .env("THINKDBG_LOG_FILE", &log)
        .args(["record", "--endpoint", &server.url, "--remote-model", "demo", "--retries", "0"])
        .args(["-n", "1500", "--top-logprobs", "5", "--seed", "7", "-t", "0", PROMPT])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let durable = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let steps = text
            .lines()
            .filter(|l| l.contains("checkpoint flushed"))
            .filter_map(|l| {
                l.split("steps=").nth(1)?.split_whitespace().next()?.parse::<usize>().ok()
            })
            .max()
            .unwrap_or(0);
        if steps >= 5 {
            break steps;
        }
        assert!(rec.try_wait().unwrap().is_none(), "the recording ended before the kill");
        assert!(t0.elapsed() < Duration::from_secs(120), "no checkpoint in 120 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(server);
    let status = rec.wait().unwrap();
    let mut stderr = String::new();
    rec.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let mut stdout = Vec::new();
    rec.stdout.take().unwrap().read_to_end(&mut stdout).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("kept as interrupted"), "{stderr}");
    let id2 = last_run_id(&stdout);
    let store = Store::open(&dir.path().join("store")).unwrap();
    let run = store.run(id2).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Interrupted, "{stderr}");
    let steps = store.steps(id2).unwrap().steps;
    assert!(steps.len() >= durable, "{} steps kept, {durable} were durable", steps.len());
    assert_eq!(run.timings.generated_tokens as usize, steps.len());
    // The same greedy request: the interrupted run starts like the complete one.
    for (a, b) in steps.iter().zip(&first_steps) {
        assert_eq!((a.index, &a.text), (b.index, &b.text));
    }
}

/// Leaves the server's prompt cache holding an unrelated raw prompt, so the next chat request
/// is evaluated from the same state whatever came before it.
fn flush_prompt_cache(url: &str) {
    ureq::post(&format!("{url}/v1/completions"))
        .send_json(
            json!({"model": "demo", "prompt": "Flush.", "max_tokens": 1, "temperature": 0.0}),
        )
        .unwrap();
}
