//! Importing the JSONL format into the store, all or nothing: every line is parsed and checked
//! first (a bad line N aborts with `line N: <what is wrong>` and the store is unchanged), then
//! sessions and runs are written under fresh ids, so importing the same file twice gives two
//! copies rather than a clash.

use std::collections::HashMap;

use super::error::{Error, Result};
use super::Store;
use crate::export::jsonl::{Line, RunRecord, SessionRecord, FORMAT, FORMAT_VERSION};
use crate::trace::{Routing, RunId, RunStatus, Session, SessionId};

/// Parses a JSONL export into sessions, checking references and order.
pub fn parse(text: &str) -> Result<Vec<SessionRecord>> {
    let bad = |line: usize, message: String| Error::Import { line, message };
    let mut sessions: Vec<SessionRecord> = Vec::new();
    let mut run_index: HashMap<RunId, (usize, usize)> = HashMap::new();
    let mut saw_header = false;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(raw)
            .map_err(|e| bad(n, format!("not a valid thinkdbg JSONL line: {e}")))?;
        if !saw_header {
            match &line {
                Line::Header(h) if h.format == FORMAT && h.version <= FORMAT_VERSION => {
                    saw_header = true;
                    continue;
                }
                Line::Header(h) => {
                    return Err(bad(n, format!("format '{}' version {} is not one this thinkdbg reads ({FORMAT} up to {FORMAT_VERSION})", h.format, h.version)))
                }
                _ => return Err(bad(n, "the first line must be the 'header' line".into())),
            }
        }
        match line {
            Line::Header(_) => return Err(bad(n, "a second 'header' line".into())),
            Line::Session(s) => {
                if sessions.iter().any(|x| x.session.id == s.id) {
                    return Err(bad(n, format!("session '{}' appears twice", s.id)));
                }
                sessions.push(SessionRecord {
                    session: Session {
                        id: s.id,
                        title: s.title,
                        created_at: s.created_at,
                        tags: s.tags,
                        runs: Vec::new(),
                    },
                    runs: Vec::new(),
                });
            }
            Line::Run(run) => {
                let si = sessions
                    .iter()
                    .position(|x| x.session.id == run.session)
                    .ok_or_else(|| bad(n, format!("run '{}' belongs to session '{}', which has no 'session' line before it", run.id, run.session)))?;
                if run_index.contains_key(&run.id) {
                    return Err(bad(n, format!("run '{}' appears twice", run.id)));
                }
                run_index.insert(run.id, (si, sessions[si].runs.len()));
                sessions[si].session.runs.push(run.id);
                sessions[si].runs.push(RunRecord { run: Some(*run), ..RunRecord::default() });
            }
            Line::PromptRouting(p) => {
                let &(si, ri) = run_index.get(&p.run).ok_or_else(|| {
                    bad(
                        n,
                        format!(
                            "prompt routing of run '{}', which has no 'run' line before it",
                            p.run
                        ),
                    )
                })?;
                let rec = &mut sessions[si].runs[ri];
                let want = rec.prompt_routing.len() as u32;
                if p.position != want {
                    return Err(bad(
                        n,
                        format!(
                            "prompt routing position {} of run '{}' where {want} was expected",
                            p.position, p.run
                        ),
                    ));
                }
                rec.prompt_routing.push(Routing { layers: p.routing });
            }
            Line::Step(s) => {
                let &(si, ri) = run_index.get(&s.run).ok_or_else(|| {
                    bad(n, format!("step of run '{}', which has no 'run' line before it", s.run))
                })?;
                let rec = &mut sessions[si].runs[ri];
                let want = rec.steps.len() as u32;
                if s.step.index != want {
                    return Err(bad(
                        n,
                        format!(
                            "step index {} of run '{}' where {want} was expected",
                            s.step.index, s.run
                        ),
                    ));
                }
                rec.steps.push((s.step, s.routing.map(|layers| Routing { layers })));
            }
            Line::Flag(f) => {
                let &(si, ri) = run_index.get(&f.run).ok_or_else(|| {
                    bad(n, format!("flag of run '{}', which has no 'run' line before it", f.run))
                })?;
                if f.flag.start > f.flag.end {
                    return Err(bad(
                        n,
                        format!("flag span {}..{} is reversed", f.flag.start, f.flag.end),
                    ));
                }
                sessions[si].runs[ri].flags.push(f.flag);
            }
            Line::Note(x) => {
                let &(si, ri) = run_index.get(&x.run).ok_or_else(|| {
                    bad(n, format!("note of run '{}', which has no 'run' line before it", x.run))
                })?;
                if x.note.start > x.note.end {
                    return Err(bad(
                        n,
                        format!("note span {}..{} is reversed", x.note.start, x.note.end),
                    ));
                }
                sessions[si].runs[ri].notes.push(x.note);
            }
        }
    }
    if !saw_header {
        return Err(bad(
            1,
            "the file is empty; a thinkdbg JSONL export starts with a 'header' line".into(),
        ));
    }
    Ok(sessions)
}

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
