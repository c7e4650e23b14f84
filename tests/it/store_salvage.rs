//! A damaged store (a flipped byte, a truncated log, a damaged snapshot) still gives its runs
//! back: the error names `store check` / `store salvage`, `store check` lists every run and
//! `store salvage --to NEW` recovers each one whole (from the database or its JSONL backup),
//! under its own id, without changing the damaged store. A store on read-only media is read
//! from a copy and refuses changes.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thinkdbg::store::Store;
use thinkdbg::trace::{Note, RunId};

use crate::common::{output, stdout, thinkdbg, Tmpfs};

/// The sample sessions shipped in `sessions/`: four real runs of the demo model.
fn samples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sessions");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// A store holding the samples, a note on one run (so a backup must follow a later change),
/// and each run's JSONL export as the store gives it.
fn store_with_samples(dir: &Path) -> (PathBuf, Vec<(String, String)>) {
    let store = dir.join("store");
    for f in samples() {
        stdout(thinkdbg(dir).arg("--store").arg(&store).arg("import").arg(f));
    }
    {
        let s = Store::open(&store).unwrap();
        let first = s.runs().unwrap()[0].id;
        s.put_notes(first, &[Note { start: 3, end: 4, text: "added after the import".into() }])
            .unwrap();
        s.flush().unwrap();
    }
    let exports = runs_and_exports(dir, &store);
    assert_eq!(exports.len(), 4);
    (store, exports)
}

/// Every run id in a store with its lossless export.
fn runs_and_exports(dir: &Path, store: &Path) -> Vec<(String, String)> {
    let ls = stdout(thinkdbg(dir).arg("--store").arg(store).args(["ls", "--json"]));
    ls.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["run"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .map(|id| {
            let args = ["export", id.as_str(), "--format", "jsonl"];
            let text = stdout(thinkdbg(dir).arg("--store").arg(store).args(args));
            (id, text)
        })
        .collect()
}

fn digest(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(digest(&p));
        } else {
            out.push((p.clone(), Sha256::digest(std::fs::read(&p).unwrap()).to_vec()));
        }
    }
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

enum Damage {
    Flip(u64),
    Truncate(u64),
    Snapshot,
}

fn damage(store: &Path, how: &Damage) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let db = store.join("db");
    match how {
        Damage::Flip(at) => {
            let mut f = std::fs::OpenOptions::new().read(true).write(true).open(&db).unwrap();
            let mut b = [0u8];
            f.seek(SeekFrom::Start(*at)).unwrap();
            f.read_exact(&mut b).unwrap();
            f.seek(SeekFrom::Start(*at)).unwrap();
            f.write_all(&[b[0] ^ 0x5a]).unwrap();
        }
        Damage::Truncate(len) => {
            std::fs::OpenOptions::new().write(true).open(&db).unwrap().set_len(*len).unwrap();
        }
        Damage::Snapshot => {
            let snap = std::fs::read_dir(store)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("snap."))
                .expect("the store has a snapshot");
            let mut bytes = std::fs::read(&snap).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x5a;
            std::fs::write(&snap, bytes).unwrap();
        }
    }
}

/// The byte offsets of the log that hold records (sled pre-sizes its segments with zeros).
fn written_extent(store: &Path) -> u64 {
    let bytes = std::fs::read(store.join("db")).unwrap();
    bytes.iter().rposition(|&b| b != 0).unwrap() as u64 + 1
}

#[test]
fn every_run_of_a_damaged_store_is_salvaged_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (store, exports) = store_with_samples(dir.path());
    let end = written_extent(&store);
    let mut cases: Vec<Damage> =
        [1, 5, 20, 45, 70, 95].iter().map(|pct| Damage::Flip(end * pct / 100)).collect();
    cases.extend([0, 10, 50, 90].iter().map(|pct| Damage::Truncate(end * pct / 100)));
    cases.push(Damage::Snapshot);
    let mut refused = 0;
    for (i, how) in cases.iter().enumerate() {
        let case = dir.path().join(format!("case{i}"));
        let damaged = case.join("store");
        copy_dir(&store, &damaged);
        damage(&damaged, how);
        let on = |args: &[&str]| {
            let mut c = thinkdbg(dir.path());
            c.arg("--store").arg(&damaged).args(args);
            c
        };
        // Opening it either fails with a message naming the way out, or (a flip in an unused
        // byte of the log) it still reads; either way every run is recovered.
        let ls = on(&["ls"]).output().unwrap();
        let before = digest(&damaged);
        if !ls.status.success() {
            refused += 1;
            let err = String::from_utf8_lossy(&ls.stderr);
            assert!(
                err.contains("thinkdbg store check") && err.contains("store salvage --to NEW"),
                "case {i}: {err}"
            );
            assert_eq!(err.lines().count(), 1, "case {i}: {err}");
        }
        let check = on(&["store", "check"]).output().unwrap();
        let report = String::from_utf8_lossy(&check.stdout).to_string();
        for (id, _) in &exports {
            assert!(report.contains(&format!("  {id} ")), "case {i}: {report}");
        }
        assert!(!report.contains("LOST"), "case {i}: {report}");
        let new = case.join("new");
        let (out, _) = output(&mut on(&["store", "salvage", "--to", new.to_str().unwrap()]));
        assert!(out.contains("recovered 4 of 4 run(s)"), "case {i}: {out}");
        assert_eq!(runs_and_exports(dir.path(), &new), exports, "case {i}");
        assert_eq!(digest(&damaged), before, "case {i}: check or salvage changed the store");
    }
    eprintln!("{refused} of {} damaged stores could not be opened", cases.len());
    assert!(refused >= cases.len() - 2, "{refused} of {} refused", cases.len());
}

#[test]
fn a_healthy_store_checks_clean_and_its_backups_follow_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let (store, exports) = store_with_samples(dir.path());
    let check = |expect_ok: bool| {
        let out = thinkdbg(dir.path()).arg("--store").arg(&store).args(["store", "check"]).output();
        let out = out.unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(out.status.success(), expect_ok, "{text}");
        text
    };
    let text = check(true);
    assert!(text.contains("every run reads whole") && !text.contains("older"), "{text}");
    // A change made without a flush has no current backup yet; the next open writes it.
    let first = RunId(exports[0].0.trim_start_matches('r').parse().unwrap());
    let note = Note { start: 1, end: 2, text: "a second note".into() };
    {
        let s = Store::open(&store).unwrap();
        let mut notes = s.notes(first).unwrap();
        notes.push(note.clone());
        s.put_notes(first, &notes).unwrap();
    }
    let text = check(true);
    assert!(!text.contains("older"), "{text}");
    // Deleting a run deletes its backup; the other backups stay.
    let backups = |s: &Path| std::fs::read_dir(s.join("backup")).unwrap().count();
    assert_eq!(backups(&store), 4);
    stdout(thinkdbg(dir.path()).arg("--store").arg(&store).args(["rm", &exports[1].0]));
    assert_eq!(backups(&store), 3);
    // The salvage of a healthy store is a copy of it, the late note included.
    let new = dir.path().join("copy");
    stdout(
        thinkdbg(dir.path())
            .arg("--store")
            .arg(&store)
            .args(["store", "salvage", "--to"])
            .arg(&new),
    );
    let copied = Store::open(&new).unwrap();
    assert!(copied.notes(first).unwrap().contains(&note));
    assert_eq!(copied.runs().unwrap().len(), 3);
    // A new run in the copy does not reuse an id.
    assert!(
        copied.new_id().unwrap()
            > exports.iter().map(|e| e.0[1..].parse::<u64>().unwrap()).max().unwrap()
    );
    // A target that holds anything is refused.
    let out = thinkdbg(dir.path())
        .arg("--store")
        .arg(&store)
        .args(["store", "salvage", "--to"])
        .arg(&new)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("new or empty directory"));
}

#[test]
fn a_store_on_read_only_media_is_read_and_never_changed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(dir.path(), "16m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let (store, exports) = store_with_samples(dir.path());
    let ro = fs.0.join("store");
    copy_dir(&store, &ro);
    let remount =
        std::process::Command::new("mount").args(["-o", "remount,ro"]).arg(&fs.0).status();
    assert!(remount.unwrap().success());
    let before = digest(&ro);
    let on = |args: &[&str]| {
        let mut c = thinkdbg(dir.path());
        c.arg("--store").arg(&ro).args(args);
        c
    };
    assert_eq!(runs_and_exports(dir.path(), &ro), exports);
    let (id, _) = &exports[0];
    stdout(&mut on(&["show", id]));
    stdout(&mut on(&["flags", id]));
    stdout(&mut on(&["stats", id]));
    let out = on(&["rm", id]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("read-only"), "{err}");
    let sample = samples().remove(0);
    let out = on(&["import", sample.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("read-only"), "{err}");
    assert_eq!(digest(&ro), before);
}

/// Without a snapshot (a store written by one process) sled reads a damaged log up to the
/// damage and opens without a word, forgetting the rest. The backups' revisions show it: the
/// store warns that runs were lost, names `store salvage`, and salvage recovers them whole.
#[test]
fn a_log_that_sled_silently_cut_short_is_noticed_and_salvaged() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    stdout(thinkdbg(dir.path()).arg("--store").arg(&store).arg("--import-samples"));
    let has_snapshot = std::fs::read_dir(&store)
        .unwrap()
        .any(|e| e.unwrap().file_name().to_string_lossy().starts_with("snap."));
    assert!(!has_snapshot, "the premise: a store written by one process has no snapshot yet");
    let pristine = dir.path().join("pristine");
    copy_dir(&store, &pristine);
    let exports = runs_and_exports(dir.path(), &pristine);
    let end = written_extent(&store);
    let mut warned = 0;
    for (i, pct) in [10u64, 40, 60, 85].iter().enumerate() {
        let case = dir.path().join(format!("cut{i}"));
        let damaged = case.join("store");
        copy_dir(&store, &damaged);
        damage(&damaged, &Damage::Flip(end * pct / 100));
        let ls = thinkdbg(dir.path()).arg("--store").arg(&damaged).arg("ls").output().unwrap();
        let err = String::from_utf8_lossy(&ls.stderr).to_string();
        assert!(err.contains("store salvage --to NEW"), "case {i}: {err}");
        warned += usize::from(ls.status.success());
        let new = case.join("new");
        let mut salvage = thinkdbg(dir.path());
        salvage.arg("--store").arg(&damaged).args(["store", "salvage", "--to"]).arg(&new);
        let (out, _) = output(&mut salvage);
        assert!(out.contains("recovered 4 of 4 run(s)"), "case {i}: {out}");
        assert_eq!(runs_and_exports(dir.path(), &new), exports, "case {i}");
    }
    eprintln!("{warned} of 4 cut logs opened with a warning (the others were refused)");
}
