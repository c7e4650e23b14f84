//! `thinkdbg fork` end to end on a tiny model: the child run replays the parent's prefix
//! exactly, takes the chosen token at the fork step, is stored in the parent's session with
//! its parent and fork step; wrong models and steps are refused with clear errors.

use predicates::prelude::*;
use thinkdbg::store::Store;
use thinkdbg::trace::{RunId, RunStatus, Step};

use crate::common::{last_line, record, run_id, thinkdbg, write_tiny, Tiny};

fn steps(store: &Store, id: RunId) -> Vec<Step> {
    store.steps(id).unwrap().steps
}

#[test]
fn fork_replays_the_prefix_and_takes_the_chosen_alternative() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::qwen2());
    let args = ["-n", "12", "--ignore-eos", "-t", "0.8", "--seed", "3", "--top-logprobs", "5"];
    let parent = record(dir.path(), &model, &args, "where do we fork?").id;
    let child = last_line(
        thinkdbg(dir.path())
            .args(["fork", &parent, "--at", "5", "--alt", "2", "--model"])
            .arg(&model),
    );
    let by_text = last_line(
        thinkdbg(dir.path())
            .args([
                "fork",
                &parent,
                "--at",
                "3",
                "--text",
                "the answer",
                "--label",
                "typed",
                "--model",
            ])
            .arg(&model),
    );
    let store = Store::open(&dir.path().join("store")).unwrap();
    let (p, c) = (steps(&store, run_id(&parent)), steps(&store, run_id(&child)));
    let child_run = store.run(run_id(&child)).unwrap().unwrap();
    assert_eq!(child_run.parent, Some((run_id(&parent), 5)));
    assert_eq!(child_run.label.as_deref(), Some("fork@5"));
    assert_eq!(child_run.status, RunStatus::Complete);
    let parent_run = store.run(run_id(&parent)).unwrap().unwrap();
    assert_eq!(child_run.session, parent_run.session);
    assert_eq!(child_run.model.fingerprint, parent_run.model.fingerprint);
    for (a, b) in p[..5].iter().zip(&c) {
        assert_eq!(
            (a.token_id, a.logprob, &a.text, &a.top),
            (b.token_id, b.logprob, &b.text, &b.top)
        );
    }
    assert_eq!(c[5].token_id, p[5].top[1].id);
    assert_eq!(c.len(), 12);
    let session = store.session(parent_run.session).unwrap().unwrap();
    assert_eq!(session.runs.len(), 3);
    let typed = steps(&store, run_id(&by_text));
    let text: String = typed[3..].iter().map(|s| s.text.as_str()).collect();
    assert!(text.starts_with("the answer"), "{text:?}");
    assert_eq!(store.run(run_id(&by_text)).unwrap().unwrap().label.as_deref(), Some("typed"));
}

#[test]
fn fork_refuses_another_model_and_impossible_steps() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::qwen2());
    std::fs::create_dir(dir.path().join("other")).unwrap();
    let other = write_tiny(&dir.path().join("other"), &Tiny::llama());
    let parent = record(dir.path(), &model, &["-n", "4", "--ignore-eos"], "x").id;
    thinkdbg(dir.path())
        .args(["fork", &parent, "--at", "1", "--model"])
        .arg(&other)
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("is not the model run")
                .and(predicate::str::contains("--any-model")),
        );
    thinkdbg(dir.path())
        .args(["fork", &parent, "--at", "9", "--model"])
        .arg(&model)
        .assert()
        .failure()
        .stderr(predicate::str::contains("has 4 steps; '--at 9' is past its end"));
    thinkdbg(dir.path())
        .args(["fork", &parent, "--at", "1", "--alt", "0", "--model"])
        .arg(&model)
        .assert()
        .failure()
        .stderr(predicate::str::contains("ranks start at 1"));
    thinkdbg(dir.path())
        .args(["fork", "r999", "--at", "1", "--model"])
        .arg(&model)
        .assert()
        .failure()
        .stderr(predicate::str::contains("r999"));
    // Nothing was added by the refused forks.
    let store = Store::open(&dir.path().join("store")).unwrap();
    assert_eq!(store.runs().unwrap().len(), 1);
}

#[test]
fn resample_records_n_continuations_from_the_replayed_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::qwen3());
    let args = ["-n", "10", "--ignore-eos", "--top-logprobs", "3"];
    let parent = record(dir.path(), &model, &args, "resample me").id;
    let out = thinkdbg(dir.path())
        .args(["resample", &parent, "--at", "4", "-N", "3", "--model"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("of 3 continuations from step 4"), "{text}");
    let store = Store::open(&dir.path().join("store")).unwrap();
    let p = steps(&store, run_id(&parent));
    let children: Vec<_> = store
        .runs()
        .unwrap()
        .into_iter()
        .filter(|r| r.parent == Some((run_id(&parent), 4)))
        .collect();
    assert_eq!(children.len(), 3);
    let mut seeds: Vec<u64> = children.iter().map(|r| r.sampler.seed).collect();
    seeds.sort_unstable();
    assert_eq!(seeds, vec![1, 2, 3]);
    for child in &children {
        assert!((child.sampler.temperature - 0.7).abs() < 1e-6, "greedy parents resample at 0.7");
        let c = steps(&store, child.id);
        assert_eq!(c.len(), 10);
        assert!(p[..4]
            .iter()
            .zip(&c)
            .all(|(a, b)| a.token_id == b.token_id && a.logprob == b.logprob));
        assert!(text.contains(&child.id.to_string()));
    }
    drop(store);
    thinkdbg(dir.path())
        .args(["resample", &parent, "--reasoning-step", "99", "--model"])
        .arg(&model)
        .assert()
        .failure()
        .stderr(predicate::str::contains("there is no step 99"));
}
