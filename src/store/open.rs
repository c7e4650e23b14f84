//! Opening a store: sled's own errors turned into what a user can act on (in use, damaged,
//! read-only), the read-only fallback, and the checks and recovery done on every open.

use std::path::Path;

use super::error::{Error, Result};
use super::{backup, import, Store};

pub(super) struct Options {
    /// Keep JSONL backups of ended runs (`backup`).
    pub backups: bool,
    /// Mark runs left recording as interrupted and undo an import a crash cut short.
    pub recover: bool,
}

pub(super) fn open(path: &Path, opts: Options) -> Result<Store> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::Io { path: parent.to_path_buf(), source: e })?;
    }
    let (db, read_only) = match open_db(path) {
        Ok(db) => (db, None),
        Err(Failure::ReadOnly(e)) => {
            // sled writes to its files even to read them; read a copy.
            let copy = copy_for_reading(path)
                .map_err(|_| Error::Io { path: path.to_path_buf(), source: e })?;
            let db = open_db(&copy.path().join("store")).map_err(|f| f.into_error(path))?;
            (db, Some(copy))
        }
        Err(f) => return Err(f.into_error(path)),
    };
    let mut store = from_db(path, db, opts.backups && read_only.is_none())?;
    store.check_schema()?;
    if opts.recover {
        store.rolled_back = import::roll_back_unfinished(&store)?;
        store.recover()?;
    }
    // Only now: the checks above may write (to the copy, for a read-only store).
    store.read_only = read_only;
    store.lost = backup::sync_all(&store);
    Ok(store)
}

/// A store on an open database, nothing checked yet.
pub(super) fn from_db(path: &Path, db: sled::Db, backups: bool) -> Result<Store> {
    let tree = |name: &str| db.open_tree(name);
    Ok(Store {
        path: path.to_path_buf(),
        meta: tree("meta")?,
        sessions: tree("sessions")?,
        runs: tree("runs")?,
        steps: tree("steps")?,
        routing: tree("routing")?,
        prompt_routing: tree("prompt_routing")?,
        flags: tree("flags")?,
        notes: tree("notes")?,
        analysis: tree("analysis")?,
        db,
        recovered: Vec::new(),
        rolled_back: Vec::new(),
        lost: Vec::new(),
        backups: backups.then(|| backup::Backups::new(path)),
        generation: Default::default(),
        read_only: None,
    })
}

/// Why sled would not open a database.
pub(super) enum Failure {
    /// Another process holds it.
    Locked,
    /// The files cannot be written (read-only media, no permission).
    ReadOnly(std::io::Error),
    /// A checksum failed: the log or the snapshot is damaged.
    Damaged(String),
    Other(String),
}

impl Failure {
    pub(super) fn into_error(self, path: &Path) -> Error {
        let path = path.to_path_buf();
        match self {
            Failure::Locked => Error::InUse(path),
            Failure::ReadOnly(source) => Error::Io { path, source },
            Failure::Damaged(message) => Error::Damaged { path, message },
            Failure::Other(message) => Error::Open { path, message },
        }
    }
}

/// Opens the sled database. sled releases its file lock from a background thread after the
/// last handle drops, so a lock held by this same process is retried for up to half a second
/// before giving up.
pub(super) fn open_db(path: &Path) -> std::result::Result<sled::Db, Failure> {
    let mut attempts = 0;
    loop {
        let e = match sled::Config::new().path(path).flush_every_ms(Some(500)).open() {
            Ok(db) => return Ok(db),
            Err(e) => e,
        };
        let msg = e.to_string();
        let locked = msg.contains("could not acquire lock")
            || msg.contains("WouldBlock")
            || msg.contains("Resource temporarily unavailable");
        if !locked {
            return Err(match e {
                sled::Error::Io(io) if is_read_only(&io) => Failure::ReadOnly(io),
                sled::Error::Corruption { .. } => {
                    Failure::Damaged("a checksum of its log or snapshot does not match".into())
                }
                // sled appends a backtrace placeholder that means nothing to a user.
                _ => Failure::Other(msg.trim_end_matches(" backtrace ()").to_string()),
            });
        }
        attempts += 1;
        if attempts >= 10 {
            return Err(Failure::Locked);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn is_read_only(e: &std::io::Error) -> bool {
    // EROFS: read-only file system.
    e.kind() == std::io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(30)
}

/// Copies a store's database files (not its backups) into a fresh temporary directory, as
/// `<tmp>/store`.
pub(super) fn copy_for_reading(path: &Path) -> std::io::Result<tempfile::TempDir> {
    let tmp = tempfile::Builder::new().prefix("thinkdbg-store-").tempdir()?;
    copy_dir(path, &tmp.path().join("store"), &[backup::DIR])?;
    Ok(tmp)
}

/// Copies the files under `from` into `to`, skipping the top-level entries named in `skip`.
pub(super) fn copy_dir(from: &Path, to: &Path, skip: &[&str]) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &to.join(&name), &[])?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}
