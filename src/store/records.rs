//! Reading runs and sessions out of the store in the shape the exports take (`RunRecord`,
//! `SessionRecord`), the mirror of `import`. Used by `thinkdbg export` and the UI's export
//! dialog.

use std::collections::HashMap;

use super::error::{Error, Result};
use super::Store;
use crate::trace::{Routing, RunId, RunRecord, SessionId, SessionRecord};

/// A run with everything recorded about it.
pub fn run_record(store: &Store, id: RunId) -> Result<RunRecord> {
    let read = store.steps(id)?;
    if let Some(e) = read.errors.into_iter().next() {
        return Err(e);
    }
    let mut routing: HashMap<u32, Routing> = store.routing(id)?.into_iter().collect();
    Ok(RunRecord {
        run: store.run(id)?,
        prompt_routing: store.prompt_routing(id)?,
        steps: read
            .steps
            .into_iter()
            .map(|s| {
                let r = routing.remove(&s.index);
                (s, r)
            })
            .collect(),
        flags: store.flags(id)?,
        notes: store.notes(id)?,
    })
}

/// One run as a session of its own (its session's title and tags, only this run).
pub fn single_run(store: &Store, id: RunId) -> Result<SessionRecord> {
    let rec = run_record(store, id)?;
    let sid = rec.run.as_ref().map(|x| x.session).ok_or_else(|| Error::NotFound(id.to_string()))?;
    let mut session = store.session(sid)?.ok_or_else(|| Error::NotFound(sid.to_string()))?;
    session.runs = vec![id];
    Ok(SessionRecord { session, runs: vec![rec] })
}

/// A whole session, skipping runs that were deleted.
pub fn session(store: &Store, id: SessionId) -> Result<SessionRecord> {
    let session = store.session(id)?.ok_or_else(|| Error::NotFound(id.to_string()))?;
    let runs = session
        .runs
        .iter()
        .filter(|r| matches!(store.run(**r), Ok(Some(_))))
        .map(|r| run_record(store, *r))
        .collect::<Result<Vec<_>>>()?;
    Ok(SessionRecord { session, runs })
}
