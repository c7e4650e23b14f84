//! Analysis results kept beside a run in the store: read back when current, recomputed (and
//! stored) when the run has more steps than were analysed or the thresholds changed; user
//! flags are kept. Shared by the CLI (`flags`, `stats`, `export`, after `record`) and the
//! terminal UI (opening a run, a run it started ending). Depends on `analysis`, `store` and
//! `trace`; must not depend on `cli` or `tui`.

use crate::analysis::{
    analyze, merge_flags, prompt_text, stats::flags_by_kind, AnalysisConfig, RunStats,
    StoredAnalysis,
};
use crate::store::Store;
use crate::trace::{Flag, RunId, Step};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("no run '{0}'")]
    NoRun(RunId),
}

pub type Result<T> = std::result::Result<T, Error>;

/// A run with its steps, flags and statistics, all current.
pub struct Analysed {
    pub steps: Vec<Step>,
    pub flags: Vec<Flag>,
    pub stats: RunStats,
    /// Whether the analysis ran now (rather than being read back).
    pub recomputed: bool,
    /// Steps that could not be read (the analysis covers the others).
    pub unreadable: Vec<crate::store::Error>,
}

/// Reads a run's analysis back, recomputing and storing it when stale or when `force`.
pub fn ensure(store: &Store, id: RunId, cfg: &AnalysisConfig, force: bool) -> Result<Analysed> {
    let run = store.run(id)?.ok_or(Error::NoRun(id))?;
    let read = store.steps(id)?;
    let (steps, unreadable) = (read.steps, read.errors);
    let fingerprint = cfg.fingerprint();
    // A value this build cannot decode (an older layout) is simply stale.
    let stored: Option<StoredAnalysis> = store.analysis(id).ok().flatten();
    if let Some(s) =
        stored.filter(|s| !force && s.fingerprint == fingerprint && s.steps == steps.len())
    {
        let flags = store.flags(id)?;
        return Ok(Analysed { steps, flags, stats: s.stats, recomputed: false, unreadable });
    }
    let routing = store.routing(id)?;
    let a = analyze(&run, &prompt_text(&run), &steps, &routing, cfg);
    let flags = merge_flags(&store.flags(id)?, &a.flags);
    let mut stats = a.stats;
    stats.flags_by_kind = flags_by_kind(&flags);
    let kept = store
        .put_flags(id, &flags)
        .and_then(|()| {
            store.put_analysis(
                id,
                &StoredAnalysis { fingerprint, steps: steps.len(), stats: stats.clone() },
            )
        })
        .and_then(|()| store.flush());
    match kept {
        // A read-only store is analysed afresh each time it is read.
        Err(crate::store::Error::ReadOnly(_)) => {}
        other => other?,
    }
    Ok(Analysed { steps, flags, stats, recomputed: true, unreadable })
}
