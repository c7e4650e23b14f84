//! The store's safety net: every run that is no longer recording is also kept as a JSONL file
//! (the lossless export format, gzipped; `thinkdbg import` reads it as it is) in `backup/`
//! inside the store's directory, one file per run: `r<id>-<revision>-<fingerprint>.jsonl.gz`.
//!
//! sled cannot open its database again once one byte of its log or snapshot is damaged;
//! these files are what `store salvage` falls back on for the runs the damaged log no longer
//! holds. A backup is written when a change to its run reaches disk (`Store::flush`), so it
//! holds what the database held at that flush; the fingerprint (a hash of the run's record,
//! session, flags and notes as stored) tells a current backup from a stale one, so opening a
//! store brings every backup up to date. Steps never change once a run has ended (a fork is a
//! new run), so they are not part of the fingerprint.
//!
//! Each backup has a revision, also kept in the database (`meta`, `rev` ++ run id) and
//! flushed before the file is written. sled opens a log without a snapshot up to its first
//! damaged entry and silently forgets the rest; a backup whose revision is ahead of the
//! database's (or whose run the database no longer has) shows that the database lost changes.
//! Such a backup is never overwritten from the database, and the store reports the run as
//! lost from the database (`Store::lost`) so that the user can salvage it.
//!
//! A backup is deleted only when its run is deleted (`Store::remove_run`), never because a
//! run is missing from the database: a damaged database must not take its safety net along.
//! Failing to write a backup (a full disk) is logged and never fails the change itself.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::codec::{id_key, run_prefix};
use super::error::{Error, Result};
use super::Store;
use crate::trace::{RunId, RunStatus};

/// The directory inside a store that holds the backups.
pub const DIR: &str = "backup";
const SUFFIX: &str = ".jsonl.gz";

/// The backup directory of the store at `store_path`.
pub fn dir(store_path: &Path) -> PathBuf {
    store_path.join(DIR)
}

/// Runs changed since their backup was written, waiting for the next flush.
#[derive(Debug)]
pub(super) struct Backups {
    dir: PathBuf,
    dirty: Mutex<BTreeSet<RunId>>,
}

impl Backups {
    pub(super) fn new(store_path: &Path) -> Backups {
        Backups { dir: dir(store_path), dirty: Mutex::new(BTreeSet::new()) }
    }

    pub(super) fn mark(&self, run: RunId) {
        if let Ok(mut d) = self.dirty.lock() {
            d.insert(run);
        }
    }

    fn take_dirty(&self) -> Vec<RunId> {
        self.dirty
            .lock()
            .map(|mut d| std::mem::take(&mut *d).into_iter().collect())
            .unwrap_or_default()
    }
}

/// One backup file.
#[derive(Debug, Clone)]
pub struct File {
    pub run: RunId,
    pub revision: u64,
    pub fingerprint: String,
    pub path: PathBuf,
}

/// The backup files in `dir`, by run id and revision. Files that do not follow the naming are
/// ignored.
pub fn files(dir: &Path) -> Vec<File> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<File> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stem = name.strip_prefix('r')?.strip_suffix(SUFFIX)?;
            let mut parts = stem.splitn(3, '-');
            let run = RunId(u64::from_str_radix(parts.next()?, 16).ok()?);
            let revision = parts.next()?.parse().ok()?;
            let fingerprint = parts.next()?.to_string();
            Some(File { run, revision, fingerprint, path: e.path() })
        })
        .collect();
    out.sort_by_key(|a| (a.run, a.revision));
    out
}

/// The newest backup of each run.
pub fn newest(dir: &Path) -> std::collections::BTreeMap<RunId, File> {
    files(dir).into_iter().map(|f| (f.run, f)).collect()
}

fn rev_key(id: RunId) -> Vec<u8> {
    [&b"rev"[..], &id_key(id.0)].concat()
}

/// The revision of a run's backup that the database knows of (0: none).
pub(super) fn revision(store: &Store, id: RunId) -> u64 {
    let v = store.meta.get(rev_key(id)).ok().flatten();
    v.and_then(|v| v.as_ref().try_into().ok()).map_or(0, u64::from_be_bytes)
}

/// Hash of what can change in an ended run: its record, its session, its flags and notes.
fn fingerprint(store: &Store, id: RunId) -> Result<Option<String>> {
    let Some(run) = store.runs.get(id_key(id.0))? else { return Ok(None) };
    let mut h = Sha256::new();
    h.update(&run);
    if let Ok(r) = super::codec::decode::<crate::trace::Run>(&run, "runs", String::new) {
        if let Some(s) = store.sessions.get(id_key(r.session.0))? {
            h.update(&s);
        }
    }
    for tree in [&store.flags, &store.notes] {
        h.update(b"|");
        for item in tree.scan_prefix(run_prefix(id)) {
            let (k, v) = item?;
            h.update(&k);
            h.update(&v);
        }
    }
    let digest = h.finalize();
    Ok(Some(digest.iter().take(8).map(|b| format!("{b:02x}")).collect()))
}

/// The runs whose newest backup in `dir` matches what the store holds.
pub(super) fn current(store: &Store, dir: &Path) -> BTreeSet<RunId> {
    newest(dir)
        .into_values()
        .filter(|f| matches!(fingerprint(store, f.run), Ok(Some(fp)) if fp == f.fingerprint))
        .map(|f| f.run)
        .collect()
}

/// Brings the backups of the runs changed since the last flush up to date.
pub(super) fn sync_dirty(store: &Store) {
    let Some(b) = &store.backups else { return };
    let dirty = b.take_dirty();
    if !dirty.is_empty() {
        sync_runs(store, &b.dir, dirty);
    }
}

/// `sync_run` for each of `ids`, the backup directory listed once.
fn sync_runs(store: &Store, dir: &Path, ids: impl IntoIterator<Item = RunId>) {
    let mut by_run: std::collections::BTreeMap<RunId, Vec<File>> = Default::default();
    for f in files(dir) {
        by_run.entry(f.run).or_default().push(f);
    }
    for id in ids {
        let existing = by_run.remove(&id).unwrap_or_default();
        if let Err(e) = sync_run(store, dir, id, existing) {
            tracing::warn!(run = %id, error = %e, "could not write the run's backup");
        }
    }
}

/// Brings the backup of every ended run up to date (when the store is opened), and returns
/// the runs whose backup is newer than the database (or that the database no longer has):
/// changes the database lost.
pub(super) fn sync_all(store: &Store) -> Vec<RunId> {
    let Some(b) = &store.backups else { return Vec::new() };
    let ids = store.run_ids();
    sync_runs(store, &b.dir, ids.iter().copied());
    newest(&b.dir)
        .into_values()
        .filter(|f| !ids.contains(&f.run) || f.revision > revision(store, f.run))
        .map(|f| f.run)
        .collect()
}

/// Writes one run's backup unless the current one is up to date. A run still recording (or
/// one that cannot be read whole) keeps whatever backup it has. `existing`: its backup files,
/// oldest first.
fn sync_run(store: &Store, dir: &Path, id: RunId, existing: Vec<File>) -> Result<()> {
    let Some(fp) = fingerprint(store, id)? else { return Ok(()) };
    let known = revision(store, id);
    if let Some(last) = existing.last() {
        // Ahead of the database: the database lost changes; keep the backup as it is.
        if last.revision > known || (last.revision == known && last.fingerprint == fp) {
            return Ok(());
        }
    }
    let Some(run) = store.run(id)? else { return Ok(()) };
    if run.status == RunStatus::Recording {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let rec = super::records::single_run(store, id)?;
    let mut text = crate::export::jsonl::header().map_err(json_error)?;
    text.push('\n');
    for line in crate::export::jsonl::session_lines(&rec).map_err(json_error)? {
        text.push_str(&line);
        text.push('\n');
    }
    // The database learns the revision first: a backup is never ahead of a database that
    // did not lose anything.
    let next = known + 1;
    store.meta.insert(rev_key(id), &next.to_be_bytes())?;
    store.db.flush()?;
    let io = |e: std::io::Error| Error::Io { path: dir.to_path_buf(), source: e };
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(".r{:x}.tmp", id.0));
    let written = std::fs::File::create(&tmp).and_then(|f| {
        let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        gz.write_all(text.as_bytes())?;
        gz.finish()?.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    std::fs::rename(&tmp, dir.join(format!("r{:x}-{next}-{fp}{SUFFIX}", id.0))).map_err(io)?;
    for old in existing {
        let _ = std::fs::remove_file(old.path);
    }
    let ms = started.elapsed().as_secs_f64() * 1e3;
    tracing::info!(run = %id, steps = rec.runs.first().map_or(0, |r| r.steps.len()), json_bytes = text.len(), ms, "backup written");
    Ok(())
}

/// Deletes a run's backups (the run was deleted).
///
/// A backup ahead of the database is kept: the database lost that run's later changes (an
/// import rolled back because the log lost its end), and only the backup has them.
pub(super) fn forget(store: &Store, id: RunId) -> Result<()> {
    let known = revision(store, id);
    if let Some(b) = &store.backups {
        for f in files(&b.dir).into_iter().filter(|f| f.run == id && f.revision <= known) {
            let _ = std::fs::remove_file(f.path);
        }
    }
    store.meta.remove(rev_key(id))?;
    Ok(())
}

fn json_error(e: serde_json::Error) -> Error {
    Error::Corrupt { tree: "-", place: "backup".into(), message: e.to_string() }
}
