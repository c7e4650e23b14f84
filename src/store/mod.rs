//! The session store: sessions, runs, steps, routing, flags and notes in an embedded sled
//! database, behind a small `Store` type so that nothing else in the crate touches sled.
//!
//! Layout: trees `meta` (schema version), `sessions`, `runs`, `steps`,
//! `routing`, `prompt_routing` (MoE routing of the prompt's tokens, by position), `flags`,
//! `notes`, `analysis` (statistics beside the flags), `experiments` (`experiments`); keys big-endian (`run_id ++
//! step_index` for steps), values postcard behind a version byte (`codec`), so a prefix scan
//! returns a run's steps in order. Only one process may own a store; opening it marks runs
//! left `Recording` by a crashed process as `Interrupted`. `writer` is a `record::Recorder`
//! that batches a producer's steps to disk; `import` writes parsed `trace::SessionRecord`s and
//! `records` reads them back; `backup` keeps every ended run as JSONL too (`export::jsonl`) and
//! `salvage` gets runs out of a damaged store. Depends on `trace`, `record` and `export::jsonl`.

pub mod backup;
pub mod codec;
pub mod error;
pub mod experiments;
pub mod import;
mod open;
mod parts;
pub mod records;
pub mod routing_codec;
pub mod salvage;
pub mod writer;

use std::path::{Path, PathBuf};

pub use error::{Error, Result};

use crate::trace::{Flag, Note, Routing, Run, RunId, RunStatus, Session, SessionId, Step};
use codec::{decode, encode, id_key, run_prefix, split_step_key, step_key};

/// Schema version written into `meta`; a store with a newer one is refused.
pub const SCHEMA_VERSION: u32 = 1;
const SCHEMA_KEY: &[u8] = b"schema_version";
const NEXT_ID_KEY: &[u8] = b"next_id";
/// Free space kept beyond what a write needs, and how many times a write's size sled may take
/// on disk before its log is compacted (measured: about 2.5×).
pub const SPACE_RESERVE: u64 = 4 << 20;
const SPACE_FACTOR: u64 = 3;

/// An open store. Cheap to share behind an `Arc`: sled handles concurrent use.
pub struct Store {
    path: PathBuf,
    db: sled::Db,
    meta: sled::Tree,
    sessions: sled::Tree,
    runs: sled::Tree,
    steps: sled::Tree,
    routing: sled::Tree,
    /// How each prompt token was routed (MoE runs), keyed by run and prompt position.
    prompt_routing: sled::Tree,
    flags: sled::Tree,
    notes: sled::Tree,
    analysis: sled::Tree,
    recovered: Vec<RunId>,
    rolled_back: Vec<RunId>,
    /// Runs whose backup is newer than the database, or that the database no longer has.
    lost: Vec<RunId>,
    /// JSONL copies of ended runs (`backup`); `None` for scratch and read-only stores.
    backups: Option<backup::Backups>,
    /// Counts changes to runs and sessions (`generation`).
    generation: std::sync::atomic::AtomicU64,
    /// Set when the store's files cannot be written (read-only media): the store was opened
    /// from a temporary copy, kept here, and every change is refused.
    read_only: Option<tempfile::TempDir>,
}

/// Steps read back, with the values that could not be decoded reported separately.
#[derive(Debug, Default)]
pub struct StepsRead {
    pub steps: Vec<Step>,
    pub errors: Vec<Error>,
}

impl Store {
    /// The default location: `THINKDBG_STORE`, else `store` in the platform data directory.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("THINKDBG_STORE") {
            return Some(PathBuf::from(p));
        }
        directories::ProjectDirs::from("", "", "thinkdbg").map(|d| d.data_dir().join("store"))
    }

    /// Opens (creating if needed) the store at `path`, checks its schema version, marks runs
    /// another process left `Recording` as `Interrupted`, removes an import a crash cut short
    /// and brings the runs' backups up to date. A store on read-only media is opened from a
    /// temporary copy, and every change to it is refused (`read_only`).
    pub fn open(path: &Path) -> Result<Store> {
        open::open(path, open::Options { backups: true, recover: true })
    }

    /// Opens a store without backups: scratch stores (benchmarks) that nobody will salvage.
    pub fn open_scratch(path: &Path) -> Result<Store> {
        open::open(path, open::Options { backups: false, recover: true })
    }

    /// Whether the store could only be opened from a copy (read-only media).
    pub fn read_only(&self) -> bool {
        self.read_only.is_some()
    }

    /// Refuses a change to a read-only store.
    fn writable(&self) -> Result<()> {
        match self.read_only {
            Some(_) => Err(Error::ReadOnly(self.path.clone())),
            None => Ok(()),
        }
    }

    /// A number that grows with every run or session written or removed, by any thread of
    /// this process (the terminal UI reloads its lists when a command run for another process
    /// changed them).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn bump(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn changed(&self, run: RunId) {
        if let Some(b) = &self.backups {
            b.mark(run);
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs found `Recording` when the store was opened and marked `Interrupted`.
    pub fn recovered(&self) -> &[RunId] {
        &self.recovered
    }

    /// Runs whose backup holds changes the database lost (a damaged log that sled read only up
    /// to the damage), or that the database lost altogether: `store salvage` recovers them.
    pub fn lost(&self) -> &[RunId] {
        &self.lost
    }

    /// Runs of an import that a crash cut short, removed when the store was opened (an
    /// import is all or nothing).
    pub fn rolled_back(&self) -> &[RunId] {
        &self.rolled_back
    }

    fn check_schema(&self) -> Result<()> {
        match self.meta.get(SCHEMA_KEY)? {
            None => {
                self.meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                self.db.flush()?;
            }
            Some(v) => {
                let found =
                    v.as_ref().try_into().map(u32::from_be_bytes).map_err(|_| Error::Corrupt {
                        tree: "meta",
                        place: "'schema_version'".into(),
                        message: format!("{} bytes instead of 4", v.len()),
                    })?;
                if found > SCHEMA_VERSION {
                    return Err(Error::NewerSchema {
                        path: self.path.clone(),
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
            }
        }
        Ok(())
    }

    fn recover(&mut self) -> Result<()> {
        let mut changed = false;
        // A corrupt run must not make the whole store unreadable: it is reported by `ls`.
        for run in self.runs_lossy()?.0 {
            if run.status == RunStatus::Recording {
                let mut run = run;
                run.status = RunStatus::Interrupted;
                run.timings.generated_tokens = self.step_count(run.id) as u32;
                self.put_run(&run)?;
                self.recovered.push(run.id);
                changed = true;
            }
        }
        if changed {
            self.flush()?;
        }
        Ok(())
    }

    /// Checks that the store's file system has room for about `bytes` of new records, with
    /// the headroom sled needs for its log and snapshots. sled does not survive a full disk
    /// (it hangs, and the store may not open again), so writers ask before they write.
    pub fn ensure_space(&self, bytes: u64) -> Result<()> {
        let Ok(available) = fs2::available_space(&self.path) else {
            // Unknown (an unusual file system): nothing to check against.
            return Ok(());
        };
        let needed = bytes.saturating_mul(SPACE_FACTOR).saturating_add(SPACE_RESERVE);
        if available < needed {
            return Err(Error::NoSpace {
                path: self.path.clone(),
                needed_mib: needed.div_ceil(1 << 20),
                available_mib: available >> 20,
            });
        }
        Ok(())
    }

    /// Forces everything written so far to disk, then writes the backups of the ended runs
    /// that changed.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        backup::sync_dirty(self);
        Ok(())
    }

    /// A fresh id, unique in this store: a counter in `meta`, so ids stay small and dense
    /// (sled's own `generate_id` jumps by a million after every restart). The counter update
    /// is in the same log as the records that use it, so a crash can never reuse an id that
    /// reached disk.
    pub fn new_id(&self) -> Result<u64> {
        self.writable()?;
        let next = self.meta.update_and_fetch(NEXT_ID_KEY, |old| {
            let n = old.and_then(|v| v.try_into().ok()).map_or(0, u64::from_be_bytes);
            Some((n + 1).to_be_bytes().to_vec())
        })?;
        Ok(next.and_then(|v| v.as_ref().try_into().ok()).map_or(1, u64::from_be_bytes))
    }

    /// Moves the id counter to at least `highest`, so that `new_id` never returns an id up to
    /// it (a store restored under its old ids).
    pub(super) fn reserve_ids(&self, highest: u64) -> Result<()> {
        self.writable()?;
        self.meta.update_and_fetch(NEXT_ID_KEY, |old| {
            let n = old.and_then(|v| v.try_into().ok()).map_or(0, u64::from_be_bytes);
            Some(n.max(highest).to_be_bytes().to_vec())
        })?;
        Ok(())
    }

    pub fn put_session(&self, s: &Session) -> Result<()> {
        self.writable()?;
        self.bump();
        s.runs.iter().for_each(|r| self.changed(*r));
        self.sessions.insert(id_key(s.id.0), encode(s)?)?;
        Ok(())
    }

    pub fn session(&self, id: SessionId) -> Result<Option<Session>> {
        self.sessions
            .get(id_key(id.0))?
            .map(|v| decode(&v, "sessions", || format!("session '{id}'")))
            .transpose()
    }

    pub fn sessions(&self) -> Result<Vec<Session>> {
        let mut out = Vec::new();
        for item in self.sessions.iter() {
            let (k, v) = item?;
            out.push(decode(&v, "sessions", || format!("session key {k:?}"))?);
        }
        Ok(out)
    }

    pub fn put_run(&self, r: &Run) -> Result<()> {
        self.writable()?;
        self.bump();
        self.changed(r.id);
        self.runs.insert(id_key(r.id.0), encode(r)?)?;
        Ok(())
    }

    pub fn run(&self, id: RunId) -> Result<Option<Run>> {
        self.runs
            .get(id_key(id.0))?
            .map(|v| decode(&v, "runs", || format!("run '{id}'")))
            .transpose()
    }

    /// Every run, oldest first; fails on the first value that cannot be decoded.
    pub fn runs(&self) -> Result<Vec<Run>> {
        let (runs, mut errors) = self.runs_lossy()?;
        match errors.pop() {
            Some(e) => Err(e),
            None => Ok(runs),
        }
    }

    /// The id of every run record, readable or not, in id order.
    pub(crate) fn run_ids(&self) -> std::collections::BTreeSet<RunId> {
        let ids = self.runs.iter().keys().filter_map(|k| k.ok());
        ids.filter_map(|k| k.as_ref().try_into().ok().map(u64::from_be_bytes).map(RunId)).collect()
    }

    /// Every run that can be decoded, and an error naming each one that cannot.
    pub fn runs_lossy(&self) -> Result<(Vec<Run>, Vec<Error>)> {
        let (mut runs, mut errors) = (Vec::new(), Vec::new());
        for item in self.runs.iter() {
            let (k, v) = item?;
            let id = k.as_ref().try_into().map(u64::from_be_bytes).map(RunId);
            let place = || id.map_or_else(|_| format!("run key {k:?}"), |id| format!("run '{id}'"));
            match decode(&v, "runs", place) {
                Ok(r) => runs.push(r),
                Err(e) => errors.push(e),
            }
        }
        Ok((runs, errors))
    }

    /// Appends steps (and their routing) in two batches: routing first, so a step on disk
    /// always has its routing.
    pub fn put_steps(&self, run: RunId, steps: &[(Step, Option<Routing>)]) -> Result<()> {
        self.writable()?;
        self.changed(run);
        let mut routing = sled::Batch::default();
        let mut batch = sled::Batch::default();
        let mut any_routing = false;
        for (step, route) in steps {
            let key = step_key(run, step.index);
            if let Some(r) = route {
                routing.insert(&key[..], routing_codec::encode_routing(r)?);
                any_routing = true;
            }
            batch.insert(&key[..], encode(step)?);
        }
        if any_routing {
            self.routing.apply_batch(routing)?;
        }
        self.steps.apply_batch(batch)?;
        Ok(())
    }

    /// A run's steps in order. Values that cannot be decoded are reported with their run and
    /// step in `errors`, and the rest are still returned.
    pub fn steps(&self, run: RunId) -> Result<StepsRead> {
        let mut out = StepsRead::default();
        for item in self.steps.scan_prefix(run_prefix(run)) {
            let (k, v) = item?;
            let index = split_step_key(&k).map(|(_, i)| i);
            match decode::<Step>(&v, "steps", || {
                format!("run '{run}' step {}", index.unwrap_or(u32::MAX))
            }) {
                Ok(s) => out.steps.push(s),
                Err(e) => out.errors.push(e),
            }
        }
        Ok(out)
    }

    pub fn step_count(&self, run: RunId) -> usize {
        self.steps.scan_prefix(run_prefix(run)).keys().count()
    }

    /// A run's routing by step index.
    pub fn routing(&self, run: RunId) -> Result<Vec<(u32, Routing)>> {
        let mut out = Vec::new();
        for item in self.routing.scan_prefix(run_prefix(run)) {
            let (k, v) = item?;
            let index = split_step_key(&k).map(|(_, i)| i).unwrap_or(u32::MAX);
            out.push((
                index,
                routing_codec::decode_routing(&v, "routing", || {
                    format!("run '{run}' step {index}")
                })?,
            ));
        }
        Ok(out)
    }

    /// Replaces a run's prompt routing: one entry per prompt position, in order.
    pub fn put_prompt_routing(&self, run: RunId, routing: &[Routing]) -> Result<()> {
        self.writable()?;
        self.changed(run);
        for k in self.prompt_routing.scan_prefix(run_prefix(run)).keys() {
            self.prompt_routing.remove(k?)?;
        }
        let mut batch = sled::Batch::default();
        for (pos, r) in routing.iter().enumerate() {
            batch.insert(&step_key(run, pos as u32)[..], routing_codec::encode_routing(r)?);
        }
        self.prompt_routing.apply_batch(batch)?;
        Ok(())
    }

    /// How a run's prompt tokens were routed, in prompt order (empty when not recorded).
    pub fn prompt_routing(&self, run: RunId) -> Result<Vec<Routing>> {
        let mut out = Vec::new();
        for item in self.prompt_routing.scan_prefix(run_prefix(run)) {
            let (k, v) = item?;
            let pos = split_step_key(&k).map(|(_, i)| i).unwrap_or(u32::MAX);
            out.push(routing_codec::decode_routing(&v, "prompt_routing", || {
                format!("run '{run}' prompt position {pos}")
            })?);
        }
        Ok(out)
    }

    fn put_list<T: serde::Serialize>(
        &self,
        tree: &sled::Tree,
        run: RunId,
        items: &[T],
    ) -> Result<()> {
        self.writable()?;
        self.changed(run);
        for k in tree.scan_prefix(run_prefix(run)).keys() {
            tree.remove(k?)?;
        }
        for (i, item) in items.iter().enumerate() {
            tree.insert(&step_key(run, i as u32)[..], encode(item)?)?;
        }
        Ok(())
    }

    fn list<T: serde::de::DeserializeOwned>(
        tree: &sled::Tree,
        name: &'static str,
        run: RunId,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for item in tree.scan_prefix(run_prefix(run)) {
            let (k, v) = item?;
            let i = split_step_key(&k).map(|(_, i)| i).unwrap_or(u32::MAX);
            out.push(decode(&v, name, || format!("run '{run}' item {i}"))?);
        }
        Ok(out)
    }

    /// Replaces a run's flags.
    pub fn put_flags(&self, run: RunId, flags: &[Flag]) -> Result<()> {
        self.put_list(&self.flags, run, flags)
    }

    pub fn flags(&self, run: RunId) -> Result<Vec<Flag>> {
        Self::list(&self.flags, "flags", run)
    }

    /// Stores what the analysis keeps beside a run (its statistics and the fingerprint of the
    /// settings behind its automatic flags), replacing the previous value. The store does not
    /// know the type: `analysis` owns it.
    pub fn put_analysis<T: serde::Serialize>(&self, run: RunId, value: &T) -> Result<()> {
        self.writable()?;
        self.analysis.insert(id_key(run.0), encode(value)?)?;
        Ok(())
    }

    /// What `put_analysis` stored for a run, if anything.
    pub fn analysis<T: serde::de::DeserializeOwned>(&self, run: RunId) -> Result<Option<T>> {
        self.analysis
            .get(id_key(run.0))?
            .map(|v| decode(&v, "analysis", || format!("run '{run}'")))
            .transpose()
    }

    /// Replaces a run's notes.
    pub fn put_notes(&self, run: RunId, notes: &[Note]) -> Result<()> {
        self.put_list(&self.notes, run, notes)
    }

    pub fn notes(&self, run: RunId) -> Result<Vec<Note>> {
        Self::list(&self.notes, "notes", run)
    }

    /// Deletes a run with its steps, routing, flags and notes, and removes it from its session
    /// (the session goes too when it has no runs left).
    pub fn remove_run(&self, id: RunId) -> Result<()> {
        let run = self.run(id)?.ok_or_else(|| Error::NotFound(id.to_string()))?;
        self.purge_run(id)?;
        if let Some(mut s) = self.session(run.session)? {
            s.runs.retain(|r| *r != id);
            if s.runs.is_empty() {
                self.sessions.remove(id_key(s.id.0))?;
            } else {
                self.put_session(&s)?;
            }
        }
        self.flush()
    }

    /// Deletes everything kept under a run id, whether or not its run record was written.
    fn purge_run(&self, id: RunId) -> Result<()> {
        self.writable()?;
        self.bump();
        backup::forget(self, id)?;
        for tree in [&self.steps, &self.routing, &self.prompt_routing, &self.flags, &self.notes] {
            for k in tree.scan_prefix(run_prefix(id)).keys() {
                tree.remove(k?)?;
            }
        }
        for k in self.analysis.scan_prefix(id_key(id.0)).keys() {
            self.analysis.remove(k?)?;
        }
        self.runs.remove(id_key(id.0))?;
        Ok(())
    }

    /// Deletes a session and all its runs.
    pub fn remove_session(&self, id: SessionId) -> Result<()> {
        self.writable()?;
        let s = self.session(id)?.ok_or_else(|| Error::NotFound(id.to_string()))?;
        for r in &s.runs {
            if self.run(*r)?.is_some() {
                self.remove_run(*r)?;
            }
        }
        self.sessions.remove(id_key(id.0))?;
        self.flush()
    }

    /// Resolves what the user typed (`r31`, `s3`, or a bare decimal id) to a run or a session.
    pub fn resolve(&self, text: &str) -> Result<Target> {
        let parse = |s: &str| s.bytes().all(|b| b.is_ascii_digit()).then(|| s.parse().ok())?;
        if let Some(id) = text.strip_prefix('r').and_then(parse) {
            if self.run(RunId(id))?.is_some() {
                return Ok(Target::Run(RunId(id)));
            }
        } else if let Some(id) = text.strip_prefix('s').and_then(parse) {
            if self.session(SessionId(id))?.is_some() {
                return Ok(Target::Session(SessionId(id)));
            }
        } else if let Some(id) = parse(text) {
            if self.run(RunId(id))?.is_some() {
                return Ok(Target::Run(RunId(id)));
            }
            if self.session(SessionId(id))?.is_some() {
                return Ok(Target::Session(SessionId(id)));
            }
        }
        Err(Error::NotFound(text.to_string()))
    }
}

impl Drop for Store {
    /// Changes not yet flushed reach disk (sled would flush them too) and so do their runs'
    /// backups.
    fn drop(&mut self) {
        if self.read_only.is_none() && self.db.flush().is_ok() {
            backup::sync_dirty(self);
        }
    }
}

/// The baseline of `thinkdbg bench store`: seconds sled takes to `apply_batch` already encoded
/// step and routing values, 64 at a time, into a fresh database at `path`, and flush it.
pub fn raw_batch_insert_seconds(path: &Path, values: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<f64> {
    let db = sled::open(path)?;
    let (steps, routing) = (db.open_tree("steps")?, db.open_tree("routing")?);
    let start = std::time::Instant::now();
    for (chunk_i, chunk) in values.chunks(64).enumerate() {
        let (mut b, mut r) = (sled::Batch::default(), sled::Batch::default());
        for (j, (s, rt)) in chunk.iter().enumerate() {
            let key = step_key(RunId(1), (chunk_i * 64 + j) as u32);
            b.insert(&key[..], s.as_slice());
            if let Some(rt) = rt {
                r.insert(&key[..], rt.as_slice());
            }
        }
        routing.apply_batch(r)?;
        steps.apply_batch(b)?;
    }
    db.flush()?;
    Ok(start.elapsed().as_secs_f64())
}

/// A run or a session named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Run(RunId),
    Session(SessionId),
}
