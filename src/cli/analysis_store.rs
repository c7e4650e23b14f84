//! Analysis results kept beside a run in the store: recomputed when the run has more steps
//! than were analysed or the thresholds (config fingerprint) changed; user flags are kept.

use anyhow::{anyhow, Context, Result};

use crate::analysis::{
    analyze, merge_flags, prompt_text, stats::flags_by_kind, AnalysisConfig, RunStats,
    StoredAnalysis,
};
use crate::store::Store;
use crate::trace::{Flag, RunId, Step};

/// A run with its steps, flags and statistics, all current.
pub struct Analysed {
    pub steps: Vec<Step>,
    pub flags: Vec<Flag>,
    pub stats: RunStats,
    /// Whether the analysis ran now (rather than being read back).
    pub recomputed: bool,
}

/// The user's analysis settings, with the config file named in any error.
pub fn config() -> Result<AnalysisConfig> {
    Ok(AnalysisConfig::load()?)
}

/// Reads a run's analysis back, recomputing and storing it when stale or when `force`.
pub fn ensure(store: &Store, id: RunId, cfg: &AnalysisConfig, force: bool) -> Result<Analysed> {
    let run = store.run(id)?.ok_or_else(|| anyhow!("no run '{id}'"))?;
    let read = store.steps(id)?;
    for e in &read.errors {
        eprintln!("warning: {e}");
    }
    let steps = read.steps;
    let fingerprint = cfg.fingerprint();
    // A value this build cannot decode (an older layout) is simply stale.
    let stored: Option<StoredAnalysis> = store.analysis(id).ok().flatten();
    if let Some(s) =
        stored.filter(|s| !force && s.fingerprint == fingerprint && s.steps == steps.len())
    {
        let flags = store.flags(id)?;
        return Ok(Analysed { steps, flags, stats: s.stats, recomputed: false });
    }
    let routing = store.routing(id)?;
    let a = analyze(&run, &prompt_text(&run), &steps, &routing, cfg);
    let flags = merge_flags(&store.flags(id)?, &a.flags);
    let mut stats = a.stats;
    stats.flags_by_kind = flags_by_kind(&flags);
    store.put_flags(id, &flags)?;
    store.put_analysis(
        id,
        &StoredAnalysis { fingerprint, steps: steps.len(), stats: stats.clone() },
    )?;
    store.flush()?;
    Ok(Analysed { steps, flags, stats, recomputed: true })
}

/// Says on stderr that a run was analysed now (stale or missing results).
pub fn note_recomputed(a: &Analysed, id: RunId) {
    if a.recomputed {
        eprintln!("analysed run '{id}' under the current thresholds");
    }
}

/// Analyses a run just recorded; problems are warnings, never a failed recording.
pub fn after_record(store: &Store, id: RunId) {
    let result = config().and_then(|cfg| ensure(store, id, &cfg, true));
    match result {
        Ok(a) => {
            let n = a.flags.iter().filter(|f| f.origin == crate::trace::Origin::Auto).count();
            eprintln!("analysis: {n} flags (thinkdbg flags {id})");
        }
        Err(e) => eprintln!("warning: analysis of run '{id}' failed: {e:#}"),
    }
}

/// Resolves a run id typed by the user.
pub fn run_id(store: &Store, text: &str) -> Result<RunId> {
    match store.resolve(text).with_context(|| format!("looking up '{text}'"))? {
        crate::store::Target::Run(id) => Ok(id),
        crate::store::Target::Session(_) => Err(anyhow!("'{text}' is a session; give a run id")),
    }
}

/// Whether colour may be used on stdout.
pub fn use_color() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
