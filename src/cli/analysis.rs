//! The CLI's side of the analysis kept beside a run (`runs::analysis`): the user's config,
//! warnings on stderr, resolving run ids.

use anyhow::{anyhow, Context, Result};

use crate::analysis::AnalysisConfig;
use crate::store::Store;
use crate::trace::RunId;

pub use crate::runs::analysis::Analysed;

/// The user's analysis settings, with the config file named in any error.
pub fn config() -> Result<AnalysisConfig> {
    Ok(AnalysisConfig::load()?)
}

/// `analysed::ensure`, with unreadable steps reported on stderr.
pub fn ensure(store: &Store, id: RunId, cfg: &AnalysisConfig, force: bool) -> Result<Analysed> {
    let a = crate::runs::analysis::ensure(store, id, cfg, force)?;
    for e in &a.unreadable {
        errln!("warning: {e}");
    }
    Ok(a)
}

/// Says on stderr that a run was analysed now (stale or missing results).
pub fn note_recomputed(a: &Analysed, id: RunId) {
    if a.recomputed {
        errln!("analysed run '{id}' under the current thresholds");
    }
}

/// Analyses a run just recorded; problems are warnings, never a failed recording.
pub fn after_record(store: &Store, id: RunId) {
    let result = config().and_then(|cfg| ensure(store, id, &cfg, true));
    match result {
        Ok(a) => {
            let n = a.flags.iter().filter(|f| f.origin == crate::trace::Origin::Auto).count();
            errln!("analysis: {n} flags (thinkdbg flags {id})");
        }
        Err(e) => errln!("warning: analysis of run '{id}' failed: {e:#}"),
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
    super::out::color()
}
