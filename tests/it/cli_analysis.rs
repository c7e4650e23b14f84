//! `flags`, `stats`, `diff` and `bench analysis|diff` end to end on runs written straight
//! into a store: flags listed and filtered, thresholds from the config file (a change makes
//! the flags recompute, user flags stay), a coloured-or-marked diff and its `--stat` summary.

use std::path::Path;

use thinkdbg::store::Store;
use thinkdbg::trace::{
    Flag, FlagKind, Message, Origin, Phase, Run, RunId, SamplerSpec, Session, SessionId, Severity,
    Step, StopReason,
};

use crate::common::{output, record, stdout, thinkdbg, write_tiny, Tiny};

/// Word-level steps for a think block and an answer.
fn steps(think: &str, answer: &str) -> Vec<Step> {
    let mut pieces: Vec<(String, Phase)> = vec![("<think>".into(), Phase::Think)];
    for (text, phase) in [(think, Phase::Think), (answer, Phase::Answer)] {
        let mut first = true;
        for w in text.split(' ') {
            pieces.push((if first { w.to_string() } else { format!(" {w}") }, phase));
            first = false;
        }
        if phase == Phase::Think {
            pieces.push(("</think>".into(), Phase::Think));
        }
    }
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, (text, phase))| Step {
            index: i as u32,
            token_id: text.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))),
            text,
            logprob: -0.1,
            entropy: 0.4,
            phase,
            t_us: i as u64 * 10_000,
            top: Vec::new(),
        })
        .collect()
}

const THINK: &str = "We add the numbers one by one. The total is 55. Wait, I should check the \
pairs again. One and ten make eleven, and five pairs make 55. So the answer is 55. So the answer \
is 55. So the answer is 55. So the answer is 55.";

/// Writes a session with one run per step list and returns the run ids.
fn store_with(dir: &Path, runs: &[Vec<Step>], user_flag: bool) -> Vec<String> {
    let store = Store::open(&dir.join("store")).unwrap();
    let sid = SessionId(store.new_id().unwrap());
    let mut ids = Vec::new();
    for s in runs {
        let mut run =
            Run::new_recording(RunId(store.new_id().unwrap()), sid, SamplerSpec::default());
        run.messages = vec![Message::new("user", "What is the sum of 1 to 10?")];
        run.model.name = "tiny".into();
        run.model.arch = "qwen3".into();
        run.status = thinkdbg::trace::RunStatus::Complete;
        run.stop = Some(StopReason::Eos);
        store.put_run(&run).unwrap();
        let with_routing: Vec<_> = s.iter().cloned().map(|x| (x, None)).collect();
        store.put_steps(run.id, &with_routing).unwrap();
        if user_flag {
            let f = Flag {
                start: 1,
                end: 2,
                kind: FlagKind::User("mine".into()),
                severity: Severity::Info,
                detail: "look here".into(),
                origin: Origin::User,
            };
            store.put_flags(run.id, &[f]).unwrap();
        }
        ids.push(run.id);
    }
    let session =
        Session { id: sid, title: "t".into(), created_at: 0, tags: vec![], runs: ids.clone() };
    store.put_session(&session).unwrap();
    store.flush().unwrap();
    ids.iter().map(ToString::to_string).collect()
}

#[test]
fn flags_are_listed_filtered_and_recomputed_when_thresholds_change() {
    let dir = tempfile::tempdir().unwrap();
    let ids = store_with(dir.path(), &[steps(THINK, "The sum is \\boxed{55}.")], true);
    let run = &ids[0];
    let (out, err) = output(thinkdbg(dir.path()).args(["flags", run]));
    assert!(err.contains("analysed run"), "{err}");
    assert!(out.contains("repetition") && out.contains("repeated 4×"), "{out}");
    assert!(out.contains("backtrack") && out.contains("'Wait'"), "{out}");
    assert!(out.contains("look here (user)"), "{out}");
    assert!(!out.contains('\u{1b}'), "NO_COLOR: {out:?}");
    // Stored now: a second call reads them back.
    let (again, err) = output(thinkdbg(dir.path()).args(["flags", run]));
    assert_eq!(again, out);
    assert!(!err.contains("analysed run"), "{err}");
    let only = stdout(thinkdbg(dir.path()).args(["flags", run, "--kind", "repetition", "--json"]));
    assert_eq!(only.lines().count(), 1, "{only}");
    let v: serde_json::Value = serde_json::from_str(only.trim()).unwrap();
    assert_eq!(v["kind"], "repetition");
    assert_eq!(v["origin"], "auto");
    // Raise the loop threshold: the loop is no longer flagged, the user flag stays.
    std::fs::write(dir.path().join("config.toml"), "[analysis.repetition]\nmin_repeats = 6\n")
        .unwrap();
    let (out, err) = output(thinkdbg(dir.path()).args(["flags", run]));
    assert!(err.contains("analysed run"), "{err}");
    assert!(!out.contains("repetition") && out.contains("look here (user)"), "{out}");
}

#[test]
fn bad_config_and_kinds_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let ids = store_with(dir.path(), &[steps(THINK, "55")], false);
    std::fs::write(dir.path().join("config.toml"), "[analysis.entropy]\nwindw = 3\n").unwrap();
    let out = thinkdbg(dir.path()).args(["stats", &ids[0]]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("config.toml'") && err.contains("'analysis.entropy.windw'"), "{err}");
    std::fs::remove_file(dir.path().join("config.toml")).unwrap();
    let out = thinkdbg(dir.path()).args(["flags", &ids[0], "--kind", "loops"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown flag kind 'loops'"));
}

#[test]
fn stats_report_tokens_language_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let s = steps(THINK, "The sum is \\boxed{55}.");
    let ids = store_with(dir.path(), std::slice::from_ref(&s), false);
    let out = stdout(thinkdbg(dir.path()).args(["stats", &ids[0], "--json"]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["tokens"], s.len());
    assert_eq!(v["target_language"], "eng");
    assert_eq!(v["target_language_ratio"], 1.0);
    assert_eq!(v["backtracks"], 1);
    let text = stdout(thinkdbg(dir.path()).args(["stats", &ids[0]]));
    assert!(text.contains("target-language ratio  1.000") && text.contains("perplexity"), "{text}");
}

#[test]
fn diff_marks_the_fork_and_summarises() {
    let dir = tempfile::tempdir().unwrap();
    let a = steps(THINK, "The sum is \\boxed{55}.");
    let b = steps(&THINK.replace("make eleven", "make twelve"), "The sum is \\boxed{60}.");
    let ids = store_with(dir.path(), &[a, b], false);
    let out = stdout(thinkdbg(dir.path()).args(["diff", &ids[0], &ids[1], "--context", "0"]));
    assert!(out.contains("aligned by tokens"), "{out}");
    assert!(out.contains("▶[- eleven,-]{+ twelve,+}"), "{out}");
    assert!(out.contains("[- \\boxed{55}.-]{+ \\boxed{60}.+}"), "{out}");
    assert!(out.contains("first divergence ▶ at a step"), "{out}");
    assert!(out.contains("answers: a '55', b '60': differ"), "{out}");
    assert!(!out.contains('\u{1b}'), "{out:?}");
    let stat = stdout(thinkdbg(dir.path()).args(["diff", "--stat", &ids[0], &ids[1]]));
    assert!(stat.contains("changes: 2 replaced, 0 only in a, 0 only in b"), "{stat}");
    assert!(stat.contains("reasoning steps:") && stat.contains("perplexity"), "{stat}");
    assert!(!stat.contains("[-"), "{stat}");
    let same = stdout(thinkdbg(dir.path()).args(["diff", &ids[0], &ids[0]]));
    assert!(same.contains("no divergence") && !same.contains("▶["), "{same}");
}

#[test]
fn bench_analysis_and_diff_report_times() {
    let dir = tempfile::tempdir().unwrap();
    let out = stdout(thinkdbg(dir.path()).args(["bench", "analysis", "--steps", "3000"]));
    assert!(out.contains("analysis: 3000 steps") && out.contains(" ms"), "{out}");
    let json = dir.path().join("d.json");
    let out = stdout(
        thinkdbg(dir.path()).args(["bench", "diff", "--steps", "2000", "--json"]).arg(&json),
    );
    assert!(out.contains("nearly_equal") && out.contains("unrelated"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert!(v["unrelated_ms"].as_f64().unwrap() > 0.0);
    assert!(v["unrelated_step_map_ms"].as_f64().unwrap() > 0.0);
    assert!(out.contains("of which step map"), "{out}");
}

#[test]
fn record_stores_the_analysis_beside_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::qwen3());
    let rec = record(dir.path(), &model, &["-n", "12", "--ignore-eos"], "hi");
    assert!(rec.stderr.contains("analysis: "), "{}", rec.stderr);
    let id = rec.id;
    let store = Store::open(&dir.path().join("store")).unwrap();
    let rid = match store.resolve(&id).unwrap() {
        thinkdbg::store::Target::Run(r) => r,
        t => panic!("{t:?}"),
    };
    let stored: thinkdbg::analysis::StoredAnalysis = store.analysis(rid).unwrap().unwrap();
    assert_eq!(stored.steps, 12);
    assert_eq!(stored.stats.tokens, 12);
    let cfg = thinkdbg::analysis::AnalysisConfig::defaults().unwrap();
    assert_eq!(stored.fingerprint, cfg.fingerprint());
}
