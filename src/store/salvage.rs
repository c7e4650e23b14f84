//! Getting runs out of a damaged store: `thinkdbg store check` and `store salvage --to NEW`.
//!
//! Nothing here writes to the damaged store: its database files are copied to a temporary
//! directory first. sled refuses a database whose log or snapshot fails a checksum; without
//! its snapshot it reads the log up to the first damaged entry, so the copy is opened as it
//! is and, when that fails, again without its snapshot files. Every run is then taken from the
//! database when it reads there whole (record, steps, routing, flags, notes, session), else
//! from its JSONL backup (`backup`), else what the database holds of it is kept as an
//! interrupted run; a run with neither is reported lost. Ids are kept.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::codec::decode;
use super::error::{Error, Result};
use super::{backup, import, open, records, Store};
use crate::trace::{RunId, RunRecord, RunStatus, Session, SessionId, SessionRecord};

/// How much of the database could be read.
#[derive(Debug, Clone, PartialEq)]
pub enum Database {
    /// It opens as it is.
    Whole,
    /// Only without its snapshot: the log up to its first damaged entry.
    LogPrefix,
    /// Not at all.
    Unreadable(String),
}

/// Where a run was recovered from, or why it was not.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Database,
    /// From its backup; the reason the database's copy was not used.
    Backup(String),
    /// What the database holds of it, as an interrupted run; why it is not whole.
    Partial(String),
    Lost(String),
}

/// One run of the store.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    pub id: RunId,
    pub outcome: Outcome,
    /// Steps in what is recovered.
    pub steps: usize,
    /// Whether a backup exists that matches the database (`false` where there is none, or
    /// it is older than the run's last change).
    pub backup_current: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub database: Database,
    pub backup_files: usize,
    /// Backup files that could not be parsed, with why.
    pub bad_backups: Vec<String>,
    pub runs: Vec<RunReport>,
}

impl Report {
    /// Whether every run reads whole from the database and nothing needs salvaging.
    pub fn healthy(&self) -> bool {
        self.database == Database::Whole
            && self.bad_backups.is_empty()
            && self.runs.iter().all(|r| r.outcome == Outcome::Database)
    }

    pub fn recovered(&self) -> usize {
        self.runs.iter().filter(|r| !matches!(r.outcome, Outcome::Lost(_))).count()
    }
}

/// Examines the store at `path` without changing it.
pub fn check(path: &Path) -> Result<Report> {
    Ok(examine(path)?.0)
}

/// Copies every recoverable run of the store at `path` into a new store at `to` (which must
/// not exist, or be an empty directory), under the same ids.
pub fn salvage(path: &Path, to: &Path) -> Result<Report> {
    let empty = std::fs::read_dir(to).map(|mut d| d.next().is_none());
    if !matches!(empty, Err(ref e) if e.kind() == std::io::ErrorKind::NotFound)
        && !matches!(empty, Ok(true))
    {
        return Err(Error::Open {
            path: to.to_path_buf(),
            message: "the salvage target must be a new or empty directory".into(),
        });
    }
    let (report, sessions) = examine(path)?;
    let written = Store::open(to).and_then(|new| import::restore(&new, sessions));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(to);
        return Err(e);
    }
    Ok(report)
}

/// A run as recovered, and the session it belongs to.
struct Found {
    record: RunRecord,
    session: Option<Session>,
}

fn examine(path: &Path) -> Result<(Report, Vec<SessionRecord>)> {
    if !path.join("conf").is_file() && !path.join("db").is_file() {
        return Err(Error::Open {
            path: path.to_path_buf(),
            message: "not a thinkdbg store (no sled database files)".into(),
        });
    }
    refuse_if_in_use(path)?;
    let copy = open::copy_for_reading(path)
        .map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    let copy_path = copy.path().join("store");
    let (database, db) = open_damaged(&copy_path);
    let mut report =
        Report { database, backup_files: 0, bad_backups: Vec::new(), runs: Vec::new() };
    let mut from_db: BTreeMap<RunId, DbRead> = BTreeMap::new();
    let mut revisions: BTreeMap<RunId, u64> = BTreeMap::new();
    let mut current: BTreeSet<RunId> = BTreeSet::new();
    if let Some(db) = db {
        let store = open::from_db(path, db, false)?;
        let pending = import::pending_runs(&store);
        let listed: Vec<RunId> = store
            .sessions
            .iter()
            .values()
            .filter_map(|v| v.ok())
            .filter_map(|v| decode::<Session>(&v, "sessions", String::new).ok())
            .flat_map(|s| s.runs)
            .collect();
        let keys: Vec<RunId> = store
            .run_ids()
            .into_iter()
            .chain(listed)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for id in keys {
            from_db.insert(id, read_from_db(&store, id, pending.contains(&id)));
            revisions.insert(id, backup::revision(&store, id));
        }
        current = backup::current(&store, &backup::dir(path));
    }
    let (backups, files, bad) = read_backups(&backup::dir(path));
    report.backup_files = files;
    report.bad_backups = bad;
    let ids: BTreeSet<RunId> = from_db.keys().chain(backups.keys()).copied().collect();
    let mut found: Vec<Found> = Vec::new();
    let mut backups = backups;
    for id in ids {
        let whole = report.database == Database::Whole;
        let db_rev = revisions.get(&id).copied().unwrap_or(0);
        let (outcome, chosen) = match (from_db.remove(&id), backups.remove(&id)) {
            (Some(DbRead::Whole(f)), None) => (Outcome::Database, Some(f)),
            (Some(DbRead::Whole(f)), Some((rev, _))) if whole && rev <= db_rev => {
                (Outcome::Database, Some(f))
            }
            // What the log still holds may miss later changes that its backup has.
            (Some(DbRead::Whole(_)), Some((_, b))) => {
                let why = if whole {
                    "the database lost its later changes"
                } else {
                    "the database is damaged"
                };
                (Outcome::Backup(why.into()), Some(b))
            }
            (Some(DbRead::Broken(why, _)), Some((_, b))) => (Outcome::Backup(why), Some(b)),
            (None, Some((_, b))) => (Outcome::Backup(not_in_db(&report.database)), Some(b)),
            (Some(DbRead::Broken(why, Some(partial))), None) => {
                (Outcome::Partial(why), Some(partial))
            }
            (Some(DbRead::Broken(why, None)), None) => (Outcome::Lost(why), None),
            (None, None) => continue,
        };
        let steps = chosen.as_ref().map_or(0, |f| f.record.steps.len());
        report.runs.push(RunReport { id, outcome, steps, backup_current: current.contains(&id) });
        found.extend(chosen);
    }
    Ok((report, group(found)))
}

fn not_in_db(db: &Database) -> String {
    match db {
        Database::Unreadable(_) => "the database cannot be read".into(),
        Database::Whole => "the database no longer has it".into(),
        Database::LogPrefix => "not in the readable part of the database".into(),
    }
}

/// sled takes an exclusive lock on `db`; a store another process has open is not examined
/// (its files change under the copy).
fn refuse_if_in_use(path: &Path) -> Result<()> {
    use fs2::FileExt;
    let Ok(f) = std::fs::File::open(path.join("db")) else { return Ok(()) };
    match FileExt::try_lock_shared(&f) {
        Ok(()) => {
            let _ = FileExt::unlock(&f);
            Ok(())
        }
        Err(_) => Err(Error::InUse(path.to_path_buf())),
    }
}

/// Opens a copied database as it is, else without its snapshot.
fn open_damaged(copy: &Path) -> (Database, Option<sled::Db>) {
    let first = match open::open_db(copy) {
        Ok(db) => return (Database::Whole, Some(db)),
        Err(f) => f.into_error(copy).to_string(),
    };
    if let Ok(entries) = std::fs::read_dir(copy) {
        for e in entries.filter_map(|e| e.ok()) {
            if e.file_name().to_string_lossy().starts_with("snap.") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    match open::open_db(copy) {
        Ok(db) => (Database::LogPrefix, Some(db)),
        Err(_) => (Database::Unreadable(first), None),
    }
}

/// A run as the database holds it.
enum DbRead {
    Whole(Found),
    /// Why it is not whole, and what could be read of it.
    Broken(String, Option<Found>),
}

/// Reads a run from the database.
fn read_from_db(store: &Store, id: RunId, pending: bool) -> DbRead {
    let run = match store.run(id) {
        Ok(Some(r)) => r,
        Ok(None) => {
            return DbRead::Broken("listed by its session, but its record is missing".into(), None)
        }
        Err(e) => return DbRead::Broken(format!("its record cannot be read: {e}"), None),
    };
    let session = store.session(run.session).ok().flatten();
    let partial = || -> Option<Found> {
        let read = store.steps(id).ok()?;
        let mut routing: BTreeMap<u32, _> = store.routing(id).ok()?.into_iter().collect();
        let mut run = run.clone();
        run.status = RunStatus::Interrupted;
        run.timings.generated_tokens = read.steps.len() as u32;
        let steps = read.steps.into_iter().map(|s| (s.index, s)).collect::<Vec<_>>();
        Some(Found {
            record: RunRecord {
                run: Some(run),
                prompt_routing: store.prompt_routing(id).unwrap_or_default(),
                steps: steps.into_iter().map(|(i, s)| (s, routing.remove(&i))).collect(),
                flags: store.flags(id).unwrap_or_default(),
                notes: store.notes(id).unwrap_or_default(),
            },
            session: session.clone(),
        })
    };
    if pending {
        return DbRead::Broken("part of an import that did not finish".into(), None);
    }
    if run.status == RunStatus::Recording {
        return DbRead::Broken("the database holds it only as recording".into(), partial());
    }
    if session.is_none() {
        return DbRead::Broken(format!("its session '{}' cannot be read", run.session), partial());
    }
    match records::run_record(store, id) {
        Ok(record) if record.steps.len() as u32 == run.timings.generated_tokens => {
            DbRead::Whole(Found { record, session })
        }
        Ok(record) => DbRead::Broken(
            format!(
                "the database holds {} of its {} steps",
                record.steps.len(),
                run.timings.generated_tokens
            ),
            partial(),
        ),
        Err(e) => DbRead::Broken(format!("{e}"), partial()),
    }
}

/// The newest backup of every run in `dir`; how many files; the files that cannot be parsed.
fn read_backups(dir: &Path) -> (BTreeMap<RunId, (u64, Found)>, usize, Vec<String>) {
    let count = backup::files(dir).len();
    let (mut out, mut bad) = (BTreeMap::new(), Vec::new());
    for (id, file) in backup::newest(dir) {
        let parsed = std::fs::read(&file.path)
            .map_err(|e| e.to_string())
            .and_then(|b| crate::export::jsonl::parse_bytes(&b).map_err(|e| e.to_string()));
        let records = match parsed {
            Ok(r) => r,
            Err(e) => {
                bad.push(format!("{}: {e}", file.path.display()));
                continue;
            }
        };
        for rec in records {
            for r in rec.runs {
                if r.run.as_ref().map(|x| x.id) == Some(id) {
                    let found = Found { record: r, session: Some(rec.session.clone()) };
                    out.insert(id, (file.revision, found));
                }
            }
        }
    }
    (out, count, bad)
}

/// Runs grouped into their sessions; a session whose record is lost is rebuilt from its id.
fn group(found: Vec<Found>) -> Vec<SessionRecord> {
    let mut sessions: BTreeMap<SessionId, SessionRecord> = BTreeMap::new();
    for f in found {
        let Some(run) = &f.record.run else { continue };
        let sid = run.session;
        let entry = sessions.entry(sid).or_insert_with(|| SessionRecord {
            session: f.session.clone().unwrap_or_else(|| Session {
                id: sid,
                title: run.messages.last().map(|m| m.content.clone()).unwrap_or_default(),
                created_at: run.created_at,
                tags: Vec::new(),
                runs: Vec::new(),
            }),
            runs: Vec::new(),
        });
        entry.runs.push(f.record);
    }
    for s in sessions.values_mut() {
        // The session's own order where it is known, the rest by id.
        let order = s.session.runs.clone();
        let rank = |id: RunId| order.iter().position(|r| *r == id).unwrap_or(usize::MAX);
        s.runs.sort_by_key(|r| r.run.as_ref().map(|x| (rank(x.id), x.id)));
        s.session.runs = s.runs.iter().filter_map(|r| r.run.as_ref().map(|x| x.id)).collect();
    }
    sessions.into_values().collect()
}
