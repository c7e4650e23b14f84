//! Opening the store named by `--store` / `THINKDBG_STORE` (default: the platform data dir),
//! and small formatting helpers shared by the store subcommands.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Result};

use crate::store::Store;

/// The store path: `--store` (which clap also fills from `THINKDBG_STORE`), else the default.
pub fn store_path(flag: Option<&Path>) -> Result<PathBuf> {
    match flag {
        Some(p) => Ok(p.to_path_buf()),
        None => Store::default_path()
            .ok_or_else(|| anyhow!("no data directory for the store; pass --store PATH")),
    }
}

thread_local! {
    /// The store a command run for another process uses (`serve`): the one this process
    /// holds.
    static HELD: std::cell::RefCell<Option<Arc<Store>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` (a command run for another process) with `open` returning `store`.
pub fn with_held<T>(store: Arc<Store>, f: impl FnOnce() -> T) -> T {
    HELD.with(|h| *h.borrow_mut() = Some(store));
    let out = f();
    HELD.with(|h| *h.borrow_mut() = None);
    out
}

/// The store is held by another process that takes commands (`serve`): `cli::main` hands
/// this command to it.
#[derive(Debug, thiserror::Error)]
#[error("store '{}' is in use by another thinkdbg process", .0.display())]
pub struct HeldElsewhere(pub PathBuf);

/// Opens the store, or errs with `HeldElsewhere` when another process holds it and takes
/// commands; once open, this process takes other processes' commands for it (`serve`).
pub fn open(flag: Option<&Path>) -> Result<Arc<Store>> {
    if let Some(held) = HELD.with(|h| h.borrow().clone()) {
        return Ok(held);
    }
    let path = store_path(flag)?;
    if super::serve::holder_listens(&path) {
        return Err(HeldElsewhere(path).into());
    }
    // A process that has just opened the store binds its socket a moment later (longer on a
    // busy machine): "in use" with nobody listening yet is retried for a while before it is
    // reported, for up to 15 s (on a loaded machine, commands queued on one store can take
    // seconds each to get their turn).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let store = loop {
        match Store::open(&path) {
            Ok(s) => break Arc::new(s),
            Err(crate::store::Error::InUse(p)) if super::serve::holder_listens(&p) => {
                return Err(HeldElsewhere(p).into())
            }
            Err(crate::store::Error::InUse(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            Err(e) => return Err(e.into()),
        }
    };
    super::serve::listen(&store);
    for r in store.recovered() {
        errln!("note: run '{r}' was left recording by a process that stopped; marked interrupted");
    }
    if !store.lost().is_empty() {
        let runs: Vec<String> = store.lost().iter().map(|r| r.to_string()).collect();
        errln!(
            "warning: the database of store '{}' lost runs or changes that their backups hold ({}); 'thinkdbg store salvage --to NEW' recovers them",
            path.display(),
            runs.join(", ")
        );
    }
    let cut = store.rolled_back().len();
    if cut > 0 {
        errln!(
            "note: an import was cut short by a process that stopped; its {cut} run(s) were removed (import the file again)"
        );
    }
    Ok(store)
}

/// `YYYY-MM-DD HH:MM` (UTC) for a timestamp in milliseconds since the epoch.
pub fn date(ms: u64) -> String {
    let secs = ms / 1000;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let (y, mo, d) = crate::trace::civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_utc_civil() {
        assert_eq!(super::date(0), "1970-01-01 00:00");
        assert_eq!(super::date(1_795_000_000_000), "2026-11-18 11:06");
        assert_eq!(super::date(951_782_400_000), "2000-02-29 00:00");
    }
}
