//! Importing parsed sessions (`trace::SessionRecord`, from `export::jsonl::parse` or any other
//! reader) into the store, all or nothing: sessions and runs are written under fresh ids, so
//! importing the same file twice gives two copies rather than a clash, and a failure part-way
//! removes what was written.

use std::collections::HashMap;

use super::error::Result;
use super::Store;
use crate::trace::{RunId, RunStatus, SessionId, SessionRecord};

/// What an import created.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub sessions: Vec<SessionId>,
    pub runs: Vec<RunId>,
}

/// Imports parsed sessions under fresh ids. A failure part-way (an I/O error) removes what
/// was written, so the store is left as it was.
pub fn import(store: &Store, records: Vec<SessionRecord>) -> Result<Imported> {
    let mut done = Imported { sessions: Vec::new(), runs: Vec::new() };
    let result = write_all(store, records, &mut done);
    if result.is_err() {
        for r in &done.runs {
            let _ = store.remove_run(*r);
        }
        for s in &done.sessions {
            let _ = store.remove_session(*s);
        }
    }
    result.map(|()| done)
}

fn write_all(store: &Store, records: Vec<SessionRecord>, done: &mut Imported) -> Result<()> {
    // Fresh ids for every run first, so parents inside the file can be remapped.
    let mut new_ids: HashMap<RunId, RunId> = HashMap::new();
    for rec in &records {
        for r in rec.runs.iter().filter_map(|r| r.run.as_ref()) {
            new_ids.insert(r.id, RunId(store.new_id()?));
        }
    }
    for rec in records {
        let sid = SessionId(store.new_id()?);
        let mut session = rec.session;
        session.id = sid;
        session.runs = session.runs.iter().filter_map(|r| new_ids.get(r).copied()).collect();
        store.put_session(&session)?;
        done.sessions.push(sid);
        for r in rec.runs {
            let Some(mut run) = r.run else { continue };
            let old = run.id;
            run.id = new_ids.get(&old).copied().unwrap_or(old);
            run.session = sid;
            run.parent = run.parent.map(|(p, at)| (new_ids.get(&p).copied().unwrap_or(p), at));
            if run.status == RunStatus::Recording {
                // A run exported mid-recording can never continue here.
                run.status = RunStatus::Interrupted;
            }
            store.put_run(&run)?;
            done.runs.push(run.id);
            for chunk in r.steps.chunks(256) {
                store.put_steps(run.id, chunk)?;
            }
            if !r.prompt_routing.is_empty() {
                store.put_prompt_routing(run.id, &r.prompt_routing)?;
            }
            store.put_flags(run.id, &r.flags)?;
            store.put_notes(run.id, &r.notes)?;
        }
    }
    store.flush()
}
