//! The store subcommands end to end on tiny models: `record`, `ls`, `show`, `export`,
//! `import`, `rm`, a store held by another process, and recording killed with SIGKILL.

use std::path::Path;
use std::time::Duration;

use predicates::prelude::*;
use thinkdbg::store::Store;
use thinkdbg::trace::RunStatus;

use crate::common::{heavy, record, stdout, thinkdbg, thinkdbg_std, write_tiny, Tiny, Tmpfs};

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

/// `record` of a run that never ends by itself (a tiny model with a huge context and
/// `--ignore-eos`), into `store`, logging to `log`.
fn endless_record(dir: &Path, store: &Path, log: &Path, model: &Path) -> std::process::Command {
    let mut cmd = thinkdbg_std(dir);
    cmd.arg("--store").arg(store).arg("--log-file").arg(log);
    cmd.args(["record", "--ignore-eos", "-n", "10000000", "--model"]).arg(model);
    cmd.arg("count forever");
    cmd
}

/// Waits (at most a minute) until the recording logging to `log` has flushed steps.
fn wait_for_checkpoint(log: &Path) {
    let start = std::time::Instant::now();
    while acknowledged(log) == 0 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
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
        let mut child = endless_record(dir.path(), &store_path, &log, &model)
            .args(["--top-logprobs", "20"])
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

/// Ctrl-C (SIGINT) or SIGTERM on `record` stops the run, which is kept as `cancelled` with
/// every step it recorded (flushed before the process exits, not found on the next open),
/// and the command exits 130.
#[test]
fn an_interrupted_recording_is_cancelled_and_flushed() {
    let _heavy = heavy();
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny { context: 1 << 20, ..Tiny::llama() });
    for (trial, signal) in ["INT", "TERM"].iter().enumerate() {
        let store_path = dir.path().join(format!("store{trial}"));
        let log = dir.path().join(format!("log{trial}"));
        let child = endless_record(dir.path(), &store_path, &log, &model)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Signalled once steps are on disk (the first checkpoint).
        wait_for_checkpoint(&log);
        let kill = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(kill.success());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "SIG{signal}: {err}");
        assert!(err.contains("kept as cancelled"), "{err}");
        let id = String::from_utf8_lossy(&out.stdout).lines().last().unwrap().to_string();
        // Read without the recovery an open does: the status was written before the exit.
        let ls =
            stdout(thinkdbg(dir.path()).arg("--store").arg(&store_path).args(["ls", "--json"]));
        let v: serde_json::Value = serde_json::from_str(ls.lines().next().unwrap()).unwrap();
        assert_eq!(v["run"], id.as_str());
        assert_eq!(v["status"], "cancelled", "SIG{signal}");
        let store = Store::open(&store_path).unwrap();
        assert!(store.recovered().is_empty(), "SIG{signal}: left recording");
        let run = &store.runs().unwrap()[0];
        let steps = store.step_count(run.id);
        assert!(steps >= acknowledged(&log) && steps > 0, "SIG{signal}: {steps} steps");
        assert_eq!(run.timings.generated_tokens as usize, steps);
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

/// A stdout that cannot be written (a full disk) is one line on stderr and a failure, not a
/// panic.
#[test]
fn a_full_stdout_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::qwen3());
    let out = stdout(
        thinkdbg(dir.path())
            .args(["record", "-n", "4", "--ignore-eos", "--model"])
            .arg(&model)
            .arg("hi"),
    );
    let run = out.lines().last().unwrap().to_string();
    for args in [&["ls"][..], &["ls", "--json"], &["show", run.as_str()]] {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let out = thinkdbg_std(dir.path()).args(args).stdout(full).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(err.contains("No space left on device"), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    // The store is intact afterwards.
    thinkdbg(dir.path()).args(["show", run.as_str()]).assert().success();
}

/// A JSONL file of one session with one run of `steps` steps.
fn big_export(steps: u32) -> String {
    use thinkdbg::export::jsonl;
    use thinkdbg::trace::*;
    let session = Session {
        id: SessionId(1),
        title: "big".into(),
        created_at: 0,
        tags: vec![],
        runs: vec![RunId(2)],
    };
    let mut run = Run::new_recording(RunId(2), SessionId(1), SamplerSpec::default());
    run.status = RunStatus::Complete;
    let steps = (0..steps)
        .map(|i| {
            let step = Step {
                index: i,
                token_id: i % 50,
                text: format!(" w{i}"),
                logprob: -0.5,
                entropy: 1.0,
                phase: Phase::Answer,
                t_us: u64::from(i),
                top: vec![TopToken { id: i % 50, text: format!(" w{i}"), logprob: -0.5 }],
            };
            (step, None)
        })
        .collect();
    let rec = SessionRecord {
        session,
        runs: vec![RunRecord { run: Some(run), steps, ..RunRecord::default() }],
    };
    let mut text = jsonl::header().unwrap() + "\n";
    for l in jsonl::session_lines(&rec).unwrap() {
        text.push_str(&l);
        text.push('\n');
    }
    text
}

/// An import killed with SIGKILL at any point leaves either nothing or the whole run: the
/// next open removes what a cut-short import wrote. 20 kills spread over the import's length.
#[test]
fn an_import_killed_part_way_leaves_nothing_behind() {
    // Its kill times come from a timed import: nothing CPU-bound runs beside it.
    let _heavy = crate::common::heavy();
    const STEPS: u32 = 30_000;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.jsonl");
    std::fs::write(&file, big_export(STEPS)).unwrap();
    let import = |store: &Path| {
        thinkdbg_std(dir.path())
            .arg("import")
            .arg(&file)
            .env("THINKDBG_STORE", store)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // How long a whole import takes here.
    let t0 = std::time::Instant::now();
    assert!(import(&dir.path().join("timing")).wait().unwrap().success());
    let whole = t0.elapsed();
    let mut cut = 0;
    for trial in 0..20u32 {
        let store = dir.path().join(format!("store{trial}"));
        let mut child = import(&store);
        std::thread::sleep(whole * trial / 16);
        if child.try_wait().unwrap().is_none() {
            cut += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        let s = Store::open(&store).unwrap();
        let runs = s.runs().unwrap();
        match runs.as_slice() {
            [] => {
                assert!(s.sessions().unwrap().is_empty(), "trial {trial}: a session without runs")
            }
            [run] => {
                assert_eq!(run.status, RunStatus::Complete, "trial {trial}");
                assert_eq!(s.step_count(run.id), STEPS as usize, "trial {trial}: a partial run");
            }
            more => panic!("trial {trial}: {} runs", more.len()),
        }
    }
    assert!(cut >= 5, "only {cut} of 20 kills came during the import ({whole:?} in all)");
}

/// With debug logging on, the log file never holds an endpoint's user info or `api_key` query
/// (the HTTP client logs request URLs at debug level).
#[test]
fn debug_logs_keep_no_credentials() {
    use thinkdbg::remote::loopback::{serve, SSE_HEAD};
    let dir = tempfile::tempdir().unwrap();
    let mut resp = SSE_HEAD.to_vec();
    let chunk = r#"{"model":"m","choices":[{"index":0,"delta":{"content":"A"},"logprobs":null,"finish_reason":"stop"}]}"#;
    resp.extend_from_slice(format!("data: {chunk}\r\n\r\ndata: [DONE]\r\n\r\n").as_bytes());
    let base = serve(vec![resp]).unwrap();
    let url = base.replace("http://", "http://user:hunter2pw@") + "/v1?api_key=SECRETKEY42";
    let log = dir.path().join("debug.log");
    let out = thinkdbg(dir.path())
        .env("THINKDBG_LOG", "debug")
        .env("THINKDBG_LOG_FILE", &log)
        .args(["record", "--endpoint", &url, "--remote-model", "m", "hi"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("DEBUG") || text.contains("INFO"), "nothing logged: {text}");
    assert!(!text.contains("hunter2pw") && !text.contains("SECRETKEY42"), "{text}");
}

/// Text from an imported file (model fields, a user flag's label) reaches no terminal raw:
/// `show`, `flags` and `stats` print escapes as symbols, `stats --json` escapes DEL, C1 and
/// bidirectional controls as `ls --json` does.
#[test]
fn imported_text_cannot_drive_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::qwen3());
    let out = stdout(
        thinkdbg(dir.path())
            .args(["record", "-n", "6", "--ignore-eos", "--model"])
            .arg(&model)
            .arg("hi"),
    );
    let run = out.lines().last().unwrap().to_string();
    let file = dir.path().join("x.jsonl");
    stdout(
        thinkdbg(dir.path()).args(["export", run.as_str(), "--format", "jsonl", "-o"]).arg(&file),
    );
    let hostile = "\u{1b}]0;pwned\u{7}\u{1b}]52;c;Zm9v\u{7}\u{1b}[2J\u{7f}\u{9b}\u{202e}";
    let mut lines: Vec<String> = Vec::new();
    let mut run_id = 0u64;
    for l in std::fs::read_to_string(&file).unwrap().lines() {
        let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
        if v["type"] == "session" {
            v["title"] = hostile.into();
        }
        if v["type"] == "run" {
            v["label"] = hostile.into();
            v["model"]["arch"] = hostile.into();
            v["model"]["quant"] = hostile.into();
            run_id = v["id"].as_u64().unwrap();
        }
        lines.push(v.to_string());
    }
    lines.push(
        serde_json::json!({"type": "flag", "run": run_id, "start": 0, "end": 1,
            "kind": {"user": hostile}, "severity": "warn", "detail": hostile, "origin": "user"})
        .to_string(),
    );
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let imported = stdout(thinkdbg(dir.path()).arg("import").arg(&file));
    let new_run = imported.lines().last().unwrap().to_string();
    for args in [
        vec!["show", new_run.as_str()],
        vec!["flags", new_run.as_str()],
        vec!["stats", new_run.as_str()],
        vec!["stats", "--json", new_run.as_str()],
        vec!["ls"],
        vec!["ls", "--json"],
        vec!["diff", run.as_str(), new_run.as_str()],
        vec!["export", new_run.as_str(), "--format", "md"],
        vec!["export", new_run.as_str(), "--format", "html"],
        vec!["show", "no-such-run\u{1b}]0;x\u{7}"],
    ] {
        let out = thinkdbg(dir.path()).args(&args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        for bad in ['\u{1b}', '\u{7}', '\u{7f}', '\u{9b}', '\u{202e}'] {
            assert!(!text.contains(bad), "{args:?} printed {bad:?} raw: {text:?}");
        }
    }
}

/// An import too big for the disk is refused before anything is written: no hang, and the
/// store (with the run it held) opens and reads as before.
#[test]
fn an_import_that_would_fill_the_disk_is_refused_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(dir.path(), "12m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let store = fs.0.join("store");
    let small = dir.path().join("small.jsonl");
    std::fs::write(&small, big_export(50)).unwrap();
    let cmd = |args: &[&std::ffi::OsStr]| {
        let mut c = thinkdbg(dir.path());
        c.env("THINKDBG_STORE", &store).args(args).timeout(Duration::from_secs(60));
        c
    };
    let first = stdout(&mut cmd(&["import".as_ref(), small.as_os_str()]));
    let kept = first.lines().last().unwrap().to_string();
    // One step of 10 MiB: more than the file system has room for in sled's log.
    let big = dir.path().join("big.jsonl");
    let text = big_export(1).replace("\" w0\"", &format!("\"{}\"", "x".repeat(10 << 20)));
    std::fs::write(&big, text).unwrap();
    let out = cmd(&["import".as_ref(), big.as_os_str()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not enough free space") && err.contains("nothing was written"), "{err}");
    let ls = stdout(&mut cmd(&["ls".as_ref()]));
    assert_eq!(ls.lines().filter(|l| l.contains(&kept)).count(), 1, "{ls}");
    stdout(&mut cmd(&["show".as_ref(), kept.as_ref()]));
}

/// With the store held by another process (here a long `record`; the terminal UI serves the
/// same way), every command still works: it is handed to the holder over the store's socket,
/// relative paths are the caller's, output and exit status come back, and a handed-over
/// recording stopped with Ctrl-C is cancelled.
#[test]
fn commands_work_while_another_process_holds_the_store() {
    let _heavy = heavy();
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny { context: 1 << 20, ..Tiny::llama() });
    let store = dir.path().join("store");
    let log = dir.path().join("holder.log");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("sessions/sky-blue.jsonl");
    stdout(thinkdbg(dir.path()).arg("--store").arg(&store).arg("import").arg(&sample));
    let holder = endless_record(dir.path(), &store, &log, &model)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_checkpoint(&log);
    assert!(store.join("thinkdbg.sock").exists(), "the holder listens");
    let on = |args: &[&str]| {
        let mut c = thinkdbg(dir.path());
        c.arg("--store").arg(&store).args(args).timeout(Duration::from_secs(120));
        c
    };
    let ls = stdout(&mut on(&["ls", "--json"]));
    let runs: Vec<serde_json::Value> =
        ls.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(runs.len(), 2, "{ls}");
    assert!(runs.iter().any(|r| r["status"] == "recording"), "{ls}");
    let imported = runs.iter().find(|r| r["status"] == "complete").unwrap()["run"].clone();
    let imported = imported.as_str().unwrap();
    assert!(stdout(&mut on(&["show", imported])).contains("Why is the sky blue?"));
    stdout(&mut on(&["flags", imported]));
    stdout(&mut on(&["stats", "--json", imported]));
    // A relative output path is the caller's, not the holder's.
    let cwd = dir.path().join("elsewhere");
    std::fs::create_dir_all(&cwd).unwrap();
    stdout(on(&["export", imported, "--format", "md", "-o", "out.md"]).current_dir(&cwd));
    assert!(std::fs::read_to_string(cwd.join("out.md")).unwrap().contains("sky"));
    // Errors and their exit status come back.
    let out = on(&["show", "r999"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no run or session 'r999'"));
    // A recording handed over and stopped with Ctrl-C (the caller exits; the holder cancels).
    let mut second = endless_record(dir.path(), &store, &dir.path().join("second.log"), &model)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let started = loop {
        let ls = stdout(&mut on(&["ls", "--json"]));
        if ls.lines().count() == 3 || start.elapsed() > Duration::from_secs(60) {
            break ls.lines().count() == 3;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(300));
    let kill = std::process::Command::new("kill").args(["-INT", &second.id().to_string()]).status();
    second.wait().unwrap();
    assert!(started, "the second run never started");
    assert!(kill.unwrap().success());
    let start = std::time::Instant::now();
    loop {
        let ls = stdout(&mut on(&["ls", "--json"]));
        let statuses: Vec<String> = ls
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["status"].to_string())
            .collect();
        if statuses.iter().any(|s| s == "\"cancelled\"") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "never cancelled: {ls}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The holder itself stops on Ctrl-C, and the socket goes with it.
    let kill = std::process::Command::new("kill").args(["-INT", &holder.id().to_string()]).status();
    assert!(kill.unwrap().success());
    let out = holder.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    std::thread::sleep(Duration::from_millis(200));
    assert!(!store.join("thinkdbg.sock").exists());
    stdout(&mut on(&["ls"]));
}

/// Commands started together on one store all succeed: each either opens it, or is handed to
/// the one that holds it, or (when that one was already exiting) opens it after it.
#[test]
fn commands_run_together_on_one_store_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("sessions/sky-blue.jsonl");
    let id = stdout(thinkdbg(dir.path()).arg("--store").arg(&store).arg("import").arg(&sample));
    let id = id.lines().last().unwrap().to_string();
    let children: Vec<_> = (0..16)
        .map(|i| {
            let mut c = thinkdbg_std(dir.path());
            c.arg("--store").arg(&store);
            if i % 2 == 0 {
                c.args(["ls", "--json"]);
            } else {
                c.args(["show", id.as_str()]);
            }
            c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let (o, e) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "command {i}: {e}");
        let want = if i % 2 == 0 { id.as_str() } else { "Why is the sky blue?" };
        assert!(o.contains(want), "command {i}: {o}\n{e}");
    }
    assert!(!store.join("thinkdbg.sock").exists(), "a socket was left behind");
}
