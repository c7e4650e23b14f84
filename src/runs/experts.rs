//! Cognitive experts over stored runs: the co-occurrence counts of expert selection and a
//! marker (`analysis::experts`) summed over a run, a session or every run of a model, the
//! runs' flags brought up to date first (language switches come from them). Depends on
//! `analysis`, `store` and `trace`; never on `cli` or `tui`.

use crate::analysis::experts::{mask, Counts, Marker};
use crate::analysis::AnalysisConfig;
use crate::runs::analysis::{ensure, Result};
use crate::store::Store;
use crate::trace::{Run, RunId};

/// Counts over `runs`; runs without routing add nothing. Returns the counts and the runs that
/// had routing.
pub fn count(
    store: &Store,
    runs: &[RunId],
    marker: Marker,
    cfg: &AnalysisConfig,
) -> Result<(Counts, Vec<RunId>)> {
    let mut counts = Counts::default();
    let mut used = Vec::new();
    for &id in runs {
        let routing = store.routing(id)?;
        if routing.is_empty() {
            continue;
        }
        let a = ensure(store, id, cfg, false)?;
        counts.add(&routing, &mask(&a.steps, &a.flags, marker));
        used.push(id);
    }
    Ok((counts, used))
}

/// Whether `run` was recorded with the model `spec`: its name, its file's fingerprint (or a
/// prefix of it, at least 8 characters) or its architecture.
pub fn is_model(run: &Run, spec: &str) -> bool {
    let m = &run.model;
    m.name == spec
        || m.arch == spec
        || (spec.len() >= 8 && !m.fingerprint.is_empty() && m.fingerprint.starts_with(spec))
}
