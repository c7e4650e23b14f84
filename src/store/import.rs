//! Importing parsed sessions (`trace::SessionRecord`, from `export::jsonl::parse` or any other
//! reader) into the store, all or nothing: sessions and runs are written under fresh ids, so
//! importing the same file twice gives two copies rather than a clash.
//!
//! All or nothing, across a crash too: the ids an import will write are put in `meta` (and
//! flushed) before its first record and removed only after its last record is flushed. A
//! failure part-way removes what was written; a process killed part-way leaves the list behind,
//! and the next `Store::open` removes those runs and sessions (`roll_back_unfinished`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::codec::{decode, encode};
use super::error::Result;
use super::Store;
use crate::trace::{RunId, RunStatus, SessionId, SessionRecord};

/// What an import created.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub sessions: Vec<SessionId>,
    pub runs: Vec<RunId>,
}

/// The key in `meta` that lists what an unfinished import writes.
const PENDING_KEY: &[u8] = b"import_pending";

/// What an import is writing, so that a crash part-way can be undone.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Pending {
    sessions: Vec<SessionId>,
    runs: Vec<RunId>,
}

/// Every pending list in `meta`: the one of a whole-file import (`PENDING_KEY`) and the parts
/// of a staged one (`PENDING_KEY/N`), with their keys.
fn pending_lists(store: &Store) -> Result<Vec<(sled::IVec, Pending)>> {
    let mut out = Vec::new();
    for kv in store.meta.scan_prefix(PENDING_KEY) {
        let (k, v) = kv?;
        let name = String::from_utf8_lossy(&k).into_owned();
        out.push((k, decode(&v, "meta", || format!("'{name}'"))?));
    }
    Ok(out)
}

/// Removes whatever an import that never finished wrote; returns its runs. Called when the
/// store is opened.
pub(super) fn roll_back_unfinished(store: &Store) -> Result<Vec<RunId>> {
    let lists = pending_lists(store)?;
    if lists.is_empty() {
        return Ok(Vec::new());
    }
    let mut runs = Vec::new();
    for (key, pending) in lists {
        remove(store, &pending)?;
        store.meta.remove(key)?;
        runs.extend(pending.runs);
    }
    store.flush()?;
    tracing::warn!(runs = runs.len(), "removed an import that did not finish");
    Ok(runs)
}

/// The runs an unfinished import was writing (read by `salvage`, which does not roll back).
pub(super) fn pending_runs(store: &Store) -> Vec<RunId> {
    pending_lists(store)
        .map_or_else(|_| Vec::new(), |l| l.into_iter().flat_map(|(_, p)| p.runs).collect())
}

/// Records per part of a staged import's pending list (each part is rewritten as it grows).
const PART: usize = 256;

/// An import written as it is read, so that a large file is never held whole: each session
/// goes in under fresh ids, which are listed in `meta` (the pending list, in parts) before
/// the session is written. `commit` ends the import; dropping it uncommitted (a bad row
/// part-way through the file) removes everything it wrote, and a crash part-way is undone by
/// the next `Store::open` like any unfinished import. Only `commit` flushes.
pub struct Staged<'a> {
    store: &'a Store,
    /// Every part written so far; the last one is the one growing.
    parts: Vec<Pending>,
    committed: bool,
}

impl<'a> Staged<'a> {
    pub fn begin(store: &'a Store) -> Result<Self> {
        store.writable()?;
        Ok(Staged { store, parts: Vec::new(), committed: false })
    }

    /// Writes one session and its runs (parents among its own runs are remapped); returns
    /// the new ids.
    pub fn add(&mut self, rec: SessionRecord) -> Result<(SessionId, Vec<RunId>)> {
        let store = self.store;
        store.ensure_space(estimated_bytes(std::slice::from_ref(&rec)))?;
        let mut new_ids = HashMap::new();
        let mut runs = Vec::new();
        for r in rec.runs.iter().filter_map(|r| r.run.as_ref()) {
            let id = RunId(store.new_id()?);
            new_ids.insert(r.id, id);
            runs.push(id);
        }
        let sid = SessionId(store.new_id()?);
        if self.parts.last().is_none_or(|p| p.sessions.len() >= PART) {
            self.parts.push(Pending::default());
        }
        let n = self.parts.len();
        let Some(part) = self.parts.last_mut() else { return Ok((sid, runs)) };
        part.sessions.push(sid);
        part.runs.extend(&runs);
        let key = [PENDING_KEY, format!("/{n:08}").as_bytes()].concat();
        store.meta.insert(key, encode(&*part)?)?;
        write_session(store, rec, sid, &new_ids)?;
        Ok((sid, runs))
    }

    /// Sessions written so far.
    pub fn sessions(&self) -> usize {
        self.parts.iter().map(|p| p.sessions.len()).sum()
    }

    /// Makes the import final: flushed, then its pending list removed (and flushed).
    pub fn commit(mut self) -> Result<Imported> {
        let store = self.store;
        store.flush()?;
        for n in 1..=self.parts.len() {
            store.meta.remove([PENDING_KEY, format!("/{n:08}").as_bytes()].concat())?;
        }
        store.flush()?;
        self.committed = true;
        let parts = std::mem::take(&mut self.parts);
        Ok(Imported {
            sessions: parts.iter().flat_map(|p| p.sessions.iter().copied()).collect(),
            runs: parts.into_iter().flat_map(|p| p.runs).collect(),
        })
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        if self.committed || self.parts.is_empty() {
            return;
        }
        let store = self.store;
        let mut removed = true;
        for part in &self.parts {
            removed &= remove(store, part).is_ok();
        }
        if removed {
            for n in 1..=self.parts.len() {
                let _ = store.meta.remove([PENDING_KEY, format!("/{n:08}").as_bytes()].concat());
            }
        }
        let _ = store.flush();
    }
}

fn remove(store: &Store, pending: &Pending) -> Result<()> {
    for r in &pending.runs {
        match store.run(*r) {
            Ok(Some(_)) => store.remove_run(*r)?,
            _ => store.purge_run(*r)?,
        }
    }
    for s in &pending.sessions {
        store.sessions.remove(super::codec::id_key(s.0))?;
    }
    Ok(())
}

/// Imports parsed sessions under fresh ids. A failure part-way (an I/O error) removes what
/// was written, so the store is left as it was; so does the next open after a crash.
pub fn import(store: &Store, records: Vec<SessionRecord>) -> Result<Imported> {
    store.ensure_space(estimated_bytes(&records))?;
    // Fresh ids for every run and session first, so parents inside the file can be remapped
    // and the whole import is known before anything is written.
    let mut new_ids: HashMap<RunId, RunId> = HashMap::new();
    let mut pending = Pending::default();
    for rec in &records {
        for r in rec.runs.iter().filter_map(|r| r.run.as_ref()) {
            let id = RunId(store.new_id()?);
            new_ids.insert(r.id, id);
            pending.runs.push(id);
        }
    }
    for _ in &records {
        pending.sessions.push(SessionId(store.new_id()?));
    }
    store.meta.insert(PENDING_KEY, encode(&pending)?)?;
    store.flush()?;
    let result = write_all(store, records, &pending.sessions, &new_ids).and_then(|()| {
        store.meta.remove(PENDING_KEY)?;
        store.flush()
    });
    match result {
        Ok(()) => Ok(Imported { sessions: pending.sessions, runs: pending.runs }),
        Err(e) => {
            if remove(store, &pending).is_ok() {
                let _ = store.meta.remove(PENDING_KEY);
                let _ = store.flush();
            }
            Err(e)
        }
    }
}

/// Writes salvaged sessions into a new store under their own ids (a parent run that was not
/// recovered is dropped), and moves the id counter past them.
pub(super) fn restore(store: &Store, records: Vec<SessionRecord>) -> Result<()> {
    store.ensure_space(estimated_bytes(&records))?;
    let ids: HashMap<RunId, RunId> = records
        .iter()
        .flat_map(|r| &r.runs)
        .filter_map(|r| r.run.as_ref().map(|x| (x.id, x.id)))
        .collect();
    let sessions: Vec<SessionId> = records.iter().map(|r| r.session.id).collect();
    let highest = ids.keys().map(|r| r.0).chain(sessions.iter().map(|s| s.0)).max().unwrap_or(0);
    store.reserve_ids(highest)?;
    write_all(store, records, &sessions, &ids)
}

/// About how many bytes the records take once encoded (text dominates: steps and their
/// alternatives).
fn estimated_bytes(records: &[SessionRecord]) -> u64 {
    let text = |s: &str| s.len() as u64 + 8;
    records
        .iter()
        .flat_map(|r| &r.runs)
        .map(|r| {
            let steps: u64 = r
                .steps
                .iter()
                .map(|(s, routing)| {
                    let top: u64 = s.top.iter().map(|t| text(&t.text) + 8).sum();
                    let routes = routing.as_ref().map_or(0, |x| 16 * x.layers.len() as u64);
                    text(&s.text) + top + routes + 32
                })
                .sum();
            let run = r
                .run
                .as_ref()
                .map_or(0, |x| text(&x.rendered_prompt) + 4 * x.prompt_tokens.len() as u64 + 512);
            steps + run
        })
        .sum()
}

fn write_all(
    store: &Store,
    records: Vec<SessionRecord>,
    session_ids: &[SessionId],
    new_ids: &HashMap<RunId, RunId>,
) -> Result<()> {
    for (rec, &sid) in records.into_iter().zip(session_ids) {
        write_session(store, rec, sid, new_ids)?;
    }
    store.flush()
}

fn write_session(
    store: &Store,
    rec: SessionRecord,
    sid: SessionId,
    new_ids: &HashMap<RunId, RunId>,
) -> Result<()> {
    let mut session = rec.session;
    session.id = sid;
    session.runs = session.runs.iter().filter_map(|r| new_ids.get(r).copied()).collect();
    store.put_session(&session)?;
    for r in rec.runs {
        let Some(mut run) = r.run else { continue };
        let old = run.id;
        run.id = new_ids.get(&old).copied().unwrap_or(old);
        run.session = sid;
        // A parent that is not imported with it would point at an unrelated run here.
        run.parent = run.parent.and_then(|(p, at)| new_ids.get(&p).map(|&n| (n, at)));
        if run.status == RunStatus::Recording {
            // A run exported mid-recording can never continue here.
            run.status = RunStatus::Interrupted;
        }
        store.put_run(&run)?;
        for chunk in r.steps.chunks(256) {
            store.put_steps(run.id, chunk)?;
        }
        if !r.prompt_routing.is_empty() {
            store.put_prompt_routing(run.id, &r.prompt_routing)?;
        }
        store.put_flags(run.id, &r.flags)?;
        store.put_notes(run.id, &r.notes)?;
    }
    Ok(())
}
