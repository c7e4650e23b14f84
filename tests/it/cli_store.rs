//! The store subcommands end to end on tiny models: `record`, `ls`, `show`, `export`,
//! `import`, `rm`, a store held by another process, and recording killed with SIGKILL.

use std::path::Path;
use std::time::Duration;

use predicates::prelude::*;
use thinkdbg::store::Store;
use thinkdbg::trace::RunStatus;

use crate::common::{heavy, record, stdout, thinkdbg, thinkdbg_std, write_tiny, Tiny};

#[test]
fn record_list_show_export_import_remove() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::qwen3());
    let rec = record(
        dir.path(),
        &model,
        &["--label", "R1", "-n", "10", "--ignore-eos"],
        "what is 6 times 7?",
    );
    let run_id = rec.id;
    assert!(run_id.starts_with('r'), "{}", rec.stdout);
    let ls = stdout(thinkdbg(dir.path()).args(["ls", "--json"]));
    let v: serde_json::Value = serde_json::from_str(ls.lines().next().unwrap()).unwrap();
    assert_eq!(v["run"], run_id.as_str());
    assert_eq!(v["label"], "R1");
    assert_eq!(v["model"], "tiny-qwen3");
    assert_eq!(v["status"], "complete");
    assert_eq!(v["steps"], 10);
    let session = v["session"].as_str().unwrap().to_string();
    // A second run in the same session.
    let args = ["--session", &session, "--label", "R1-Zero", "-n", "4"];
    let second = record(dir.path(), &model, &args, "what is 6 times 7?").id;
    let table = stdout(thinkdbg(dir.path()).arg("ls"));
    assert!(
        table.contains("what is 6 times 7?")
            && table.contains("R1-Zero")
            && table.contains(&run_id),
        "{table}"
    );
    let show = stdout(thinkdbg(dir.path()).args(["show", &run_id]));
    assert!(show.contains("--- thinking ---") && show.contains("tiny-qwen3"), "{show}");
    let steps = stdout(thinkdbg(dir.path()).args(["show", "--steps", &run_id]));
    assert_eq!(steps.lines().filter(|l| l.contains(" lp ")).count(), 10);
    // Export the session, import it, and export the copy: equal apart from ids.
    let exported = stdout(thinkdbg(dir.path()).args(["export", &session, "--format", "jsonl"]));
    assert_eq!(exported.lines().filter(|l| l.contains("\"type\":\"step\"")).count(), 14);
    let file = dir.path().join("s.jsonl");
    std::fs::write(&file, &exported).unwrap();
    let imported = stdout(thinkdbg(dir.path()).arg("import").arg(&file));
    assert_eq!(imported.lines().count(), 2);
    let runs = stdout(thinkdbg(dir.path()).args(["ls", "--json"]));
    assert_eq!(runs.lines().count(), 4);
    // Remove the original session; the copy stays.
    thinkdbg(dir.path()).args(["rm", &session]).assert().success();
    let runs = stdout(thinkdbg(dir.path()).args(["ls", "--json"]));
    assert_eq!(runs.lines().count(), 2);
    assert!(!runs.contains(&format!("\"{second}\"")));
    thinkdbg(dir.path())
        .args(["show", &run_id])
        .assert()
        .failure()
        .stderr(predicate::str::contains(format!("no run or session '{run_id}'")));
}

#[test]
fn bad_imports_and_a_busy_store_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"type\":\"header\",\"format\":\"thinkdbg-jsonl\",\"version\":1}\n{\"type\":\"step\"}\n",
    )
    .unwrap();
    thinkdbg(dir.path())
        .arg("import")
        .arg(&bad)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("line 2: not a valid thinkdbg JSONL line"));
    let held = Store::open(&dir.path().join("store")).unwrap();
    let out = thinkdbg(dir.path()).arg("ls").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains(&format!(
            "store '{}' is in use by another thinkdbg process",
            dir.path().join("store").display()
        )),
        "{err}"
    );
    assert!(!err.contains("panicked"));
    drop(held);
}

/// Reads the largest step count the killed process logged as flushed to disk.
fn acknowledged(log: &Path) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("checkpoint flushed"))
        .filter_map(|l| l.split("steps=").nth(1)?.split_whitespace().next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

#[test]
fn a_recording_killed_at_random_keeps_every_flushed_step() {
    let _heavy = heavy();
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny { context: 1 << 20, ..Tiny::llama() });
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for trial in 0..20 {
        let store_path = dir.path().join(format!("store{trial}"));
        let log = dir.path().join(format!("log{trial}"));
        let mut child = thinkdbg_std(dir.path())
            .args(["--store"])
            .arg(&store_path)
            .args(["--log-file"])
            .arg(&log)
            .args(["record", "--ignore-eos", "-n", "200000", "--top-logprobs", "20", "--model"])
            .arg(&model)
            .arg("count forever")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(500 + seed % 1500));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acked = acknowledged(&log);
        let store = Store::open(&store_path).unwrap();
        let runs = store.runs().unwrap();
        assert_eq!(runs.len(), 1, "trial {trial}");
        let run = &runs[0];
        assert_eq!(run.status, RunStatus::Interrupted, "trial {trial}");
        let read = store.steps(run.id).unwrap();
        assert!(read.errors.is_empty(), "trial {trial}: {:?}", read.errors);
        assert!(
            read.steps.iter().enumerate().all(|(i, s)| s.index as usize == i),
            "trial {trial}: steps are not a contiguous prefix"
        );
        assert!(
            read.steps.len() >= acked,
            "trial {trial}: {} steps on disk but {acked} were acknowledged as flushed",
            read.steps.len()
        );
        assert_eq!(run.timings.generated_tokens as usize, read.steps.len());
    }
}

#[test]
fn bench_store_reports_both_rates() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = stdout(
        thinkdbg(dir.path())
            .args(["bench", "store", "--steps", "300", "--layers", "4", "--dir"])
            .arg(dir.path())
            .arg("--json")
            .arg(&json),
    );
    assert!(out.contains("sled raw apply_batch") && out.contains("store writer"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(
        v["writer_steps_per_s"].as_f64().unwrap() > 0.0
            && v["sled_raw_steps_per_s"].as_f64().unwrap() > 0.0
    );
    thinkdbg(dir.path())
        .args(["bench", "store", "--steps", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--steps"));
}

/// A reader that stops early (`thinkdbg ls | head`) closes stdout under the printing commands;
/// they end quietly with success instead of panicking with "failed printing to stdout".
#[test]
fn a_closed_stdout_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::qwen3());
    let run = record(dir.path(), &model, &["-n", "10", "--ignore-eos"], "hi").id;
    for args in [&["ls"][..], &["ls", "--json"], &["show", run.as_str()]] {
        let mut child = thinkdbg_std(dir.path())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Closed before the child has opened the store, so its first write meets no reader.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {err}", out.status);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
