//! Running an experiment: the record and the variants' sessions of a new experiment, what a
//! resumed one still has to do (a run left recording, interrupted, failed or cancelled is
//! removed and redone), and the samples themselves: through the embedded engine (a variant's
//! samples handed to `Engine::generate_many` a batch at a time, so that they share their
//! prompt) or from an endpoint, `concurrency` requests at a time with the retry rules of
//! `record --endpoint`. Each sample goes through the store writer like any recorded run and is
//! analysed as it ends. `Progress` counts samples and tokens per variant for the front ends.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::spec::{Source, Spec};
use super::{Error, Result};
use crate::analysis::AnalysisConfig;
use crate::engine::generate::{Prompt, RunRequest};
use crate::engine::Engine;
use crate::record::{Discard, Event, Recorder};
use crate::remote::RemoteRequest;
use crate::runs::remote::{self as remote_run, Endpoint};
use crate::store::experiments::ExperimentRecord;
use crate::store::{writer, Store};
use crate::trace::{RoutingDetail, Run, RunId, RunStatus, Session, SessionId, StopReason};

/// Samples of one variant handed to the engine at once.
pub const BATCH: usize = 8;

/// Whether a stored run counts as a finished sample: it ended by itself (end of turn, token
/// cap, full context) and reached disk. Anything else is redone on resume.
pub fn is_complete(run: &Run) -> bool {
    run.status == RunStatus::Complete && run.stop != Some(StopReason::User)
}

/// The experiment's id as people type it.
pub fn shown_id(id: u64) -> String {
    format!("e{id}")
}

/// Finds an experiment by `eID`, bare id or name (the newest of that name).
pub fn find(store: &Store, text: &str) -> Result<ExperimentRecord> {
    let all = store.experiments()?;
    let digits = text.strip_prefix('e').unwrap_or(text);
    if let Ok(id) = digits.parse::<u64>() {
        if let Some(e) = all.iter().find(|e| e.id == id) {
            return Ok(e.clone());
        }
    }
    all.into_iter()
        .filter(|e| e.name == text)
        .max_by_key(|e| e.id)
        .ok_or_else(|| Error::NoExperiment(text.to_string()))
}

/// Samples done and tokens generated, per variant, updated while the experiment runs.
#[derive(Debug)]
pub struct Progress {
    pub variants: Vec<VariantProgress>,
    pub started: Instant,
    /// Told about every sample that ended (after it was stored and analysed).
    pub notify: Option<Notify>,
}

/// A front end's callback for each ended sample: the run and whether it completed (the
/// terminal UI refreshes its table from it; the CLI's bars read the counters instead).
pub struct Notify(pub Box<dyn Fn(RunId, bool) + Send + Sync>);

impl std::fmt::Debug for Notify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notify")
    }
}

#[derive(Debug)]
pub struct VariantProgress {
    pub name: String,
    /// Samples the experiment asks for.
    pub total: usize,
    /// Complete samples, those of earlier sessions included.
    pub done: AtomicUsize,
    /// Samples that ended without completing in this session (failed, interrupted).
    pub failed: AtomicUsize,
    /// Tokens generated in this session.
    pub tokens: AtomicU64,
}

impl Progress {
    pub fn new(spec: &Spec, record: &ExperimentRecord, store: &Store) -> Progress {
        let variants = spec
            .variants
            .iter()
            .enumerate()
            .map(|(v, var)| {
                let done = (0..spec.samples)
                    .filter(|&i| {
                        record
                            .run_of(v, i)
                            .and_then(|id| store.run(id).ok().flatten())
                            .is_some_and(|r| is_complete(&r))
                    })
                    .count();
                VariantProgress {
                    name: var.name.clone(),
                    total: spec.samples,
                    done: AtomicUsize::new(done),
                    failed: AtomicUsize::new(0),
                    tokens: AtomicU64::new(0),
                }
            })
            .collect();
        Progress { variants, started: Instant::now(), notify: None }
    }

    /// The same, calling `f` for every sample that ends.
    pub fn with_notify(mut self, f: impl Fn(RunId, bool) + Send + Sync + 'static) -> Progress {
        self.notify = Some(Notify(Box::new(f)));
        self
    }

    /// Complete samples and samples asked for, over every variant.
    pub fn samples(&self) -> (usize, usize) {
        let done = self.variants.iter().map(|v| v.done.load(Ordering::Relaxed)).sum();
        (done, self.variants.iter().map(|v| v.total).sum())
    }

    /// Tokens per second over every variant since the experiment (re)started.
    pub fn tok_s(&self) -> f64 {
        let tokens: u64 = self.variants.iter().map(|v| v.tokens.load(Ordering::Relaxed)).sum();
        tokens as f64 / self.started.elapsed().as_secs_f64().max(1e-3)
    }
}

/// Counts a sample's steps into its variant's progress on the way to the real recorder.
struct Counting<R> {
    inner: R,
    progress: Arc<Progress>,
    variant: usize,
}

impl<R: Recorder> Recorder for Counting<R> {
    fn record(&mut self, event: Event) {
        if matches!(event, Event::Step { .. }) {
            if let Some(v) = self.progress.variants.get(self.variant) {
                v.tokens.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.inner.record(event);
    }
}

/// Creates a new experiment: its record and one session per variant (tagged with the
/// experiment and the variant), no runs yet.
pub fn begin(store: &Store, spec: &Spec, text: &str, path: &str) -> Result<ExperimentRecord> {
    let id = store.new_id()?;
    let mut variants = Vec::new();
    for v in &spec.variants {
        let session = Session {
            id: SessionId(store.new_id()?),
            title: format!("experiment {}: {}", spec.name, v.name),
            created_at: crate::trace::now_ms(),
            tags: vec![format!("experiment:{}", shown_id(id)), format!("variant:{}", v.name)],
            runs: Vec::new(),
        };
        store.put_session(&session)?;
        variants.push((v.name.clone(), session.id));
    }
    let record = ExperimentRecord {
        id,
        name: spec.name.clone(),
        spec: text.to_string(),
        spec_path: path.to_string(),
        created_at: crate::trace::now_ms(),
        variants,
        samples: Vec::new(),
    };
    store.put_experiment(&record)?;
    store.flush()?;
    Ok(record)
}

/// The newest experiment of this spec's name, to resume; its spec must be this one.
pub fn resumable(store: &Store, spec: &Spec, text: &str) -> Result<ExperimentRecord> {
    let found = find(store, &spec.name).map_err(|_| {
        Error::Resume(format!(
            "no experiment named '{}' in this store to resume; run it without --resume",
            spec.name
        ))
    })?;
    if found.spec.trim() != text.trim() {
        return Err(Error::Resume(format!(
            "the spec of experiment '{}' ('{}') changed since it started; resuming would mix \
             two experiments (run it without --resume to start a new one)",
            shown_id(found.id),
            found.name
        )));
    }
    Ok(found)
}

/// A new experiment (`resume` false) or the one of this spec's name to resume, and the
/// (variant, sample) pairs it still has to run: what both front ends do before running.
pub fn prepare(
    store: &Store,
    spec: &Spec,
    text: &str,
    path: &str,
    resume: bool,
) -> Result<(ExperimentRecord, Vec<(usize, usize)>)> {
    let mut record =
        if resume { resumable(store, spec, text)? } else { begin(store, spec, text, path)? };
    let todo = pending(store, spec, &mut record)?;
    Ok((record, todo))
}

/// The (variant, sample) pairs still to run, sample-major (sample 0 of every variant first),
/// after removing the runs that did not complete.
pub fn pending(
    store: &Store,
    spec: &Spec,
    record: &mut ExperimentRecord,
) -> Result<Vec<(usize, usize)>> {
    let mut todo = Vec::new();
    let mut changed = false;
    for i in 0..spec.samples {
        for v in 0..spec.variants.len() {
            match record.run_of(v, i) {
                Some(id) => match store.run(id)? {
                    Some(run) if is_complete(&run) => {}
                    Some(_) => {
                        tracing::info!(run = %id, "experiment sample left unfinished: redone");
                        store.remove_run(id)?;
                        record.samples.retain(|e| e.run != id);
                        changed = true;
                        todo.push((v, i));
                    }
                    None => {
                        record.samples.retain(|e| e.run != id);
                        changed = true;
                        todo.push((v, i));
                    }
                },
                None => todo.push((v, i)),
            }
        }
    }
    if changed {
        store.put_experiment(record)?;
        store.flush()?;
    }
    Ok(todo)
}

/// A new run (status `Recording`) for sample `i` of variant `v`, in the variant's session
/// (made again if every run of it was removed), recorded in the experiment's record.
fn new_sample_run(
    store: &Store,
    spec: &Spec,
    record: &mut ExperimentRecord,
    v: usize,
    i: usize,
) -> Result<Run> {
    let variant = &spec.variants[v];
    let session_id = record.variants.get(v).map(|(_, s)| *s).ok_or_else(|| {
        Error::Resume(format!("experiment '{}' has no variant {}", shown_id(record.id), v + 1))
    })?;
    let mut session = store.session(session_id)?.unwrap_or_else(|| Session {
        id: session_id,
        title: format!("experiment {}: {}", spec.name, variant.name),
        created_at: crate::trace::now_ms(),
        tags: vec![
            format!("experiment:{}", shown_id(record.id)),
            format!("variant:{}", variant.name),
        ],
        runs: Vec::new(),
    });
    let mut sampler = spec.sampler.clone();
    sampler.seed = spec.seed_of(i);
    let mut run = Run::new_recording(RunId(store.new_id()?), session.id, sampler);
    run.label = Some(format!("{} #{i}", variant.name));
    match &variant.prompt {
        Prompt::Chat(m) => run.messages = m.clone(),
        Prompt::Raw(t) => run.rendered_prompt = t.clone(),
    }
    session.runs.push(run.id);
    store.put_session(&session)?;
    record.set_run(v, i, run.id);
    store.put_experiment(record)?;
    Ok(run)
}

/// Runs the pending samples on the embedded engine (already loaded, on the caller's thread),
/// a variant's samples up to `BATCH` at a time, round-robin over the variants so that a
/// stopped experiment has paired samples. Returns early when `cancel` is set.
#[allow(clippy::too_many_arguments)]
pub fn run_embedded(
    store: &Arc<Store>,
    spec: &Spec,
    record: &mut ExperimentRecord,
    todo: &[(usize, usize)],
    engine: &mut Engine,
    progress: &Arc<Progress>,
    cancel: &AtomicBool,
    cfg: &AnalysisConfig,
) -> Result<()> {
    let mut per_variant: Vec<Vec<usize>> = vec![Vec::new(); spec.variants.len()];
    for &(v, i) in todo {
        per_variant[v].push(i);
    }
    let rounds = per_variant.iter().map(|s| s.len().div_ceil(BATCH)).max().unwrap_or(0);
    for r in 0..rounds {
        for (v, samples) in per_variant.iter().enumerate() {
            let chunk = samples.iter().skip(r * BATCH).take(BATCH).copied().collect::<Vec<_>>();
            if chunk.is_empty() {
                continue;
            }
            if cancel.load(Ordering::Relaxed) {
                return Ok(());
            }
            run_batch(store, spec, record, v, &chunk, engine, progress, cancel, cfg)?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_batch(
    store: &Arc<Store>,
    spec: &Spec,
    record: &mut ExperimentRecord,
    v: usize,
    samples: &[usize],
    engine: &mut Engine,
    progress: &Arc<Progress>,
    cancel: &AtomicBool,
    cfg: &AnalysisConfig,
) -> Result<()> {
    let mut recorders = Vec::with_capacity(samples.len());
    let mut handles = Vec::with_capacity(samples.len());
    for &i in samples {
        let run = new_sample_run(store, spec, record, v, i)?;
        let id = run.id;
        let (w, h) = writer::start(store.clone(), run)?;
        let mut rec = Counting { inner: w, progress: progress.clone(), variant: v };
        rec.record(Event::Loaded {
            model: engine.info.clone(),
            load_ms: engine.load_ms,
            warnings: Vec::new(),
        });
        recorders.push(rec);
        handles.push((id, h));
    }
    store.flush()?;
    let request = RunRequest {
        prompt: spec.variants[v].prompt.clone(),
        sampler: spec.sampler.clone(),
        top_logprobs: spec.top_logprobs,
        forced: Vec::new(),
        forced_text: None,
        routing: RoutingDetail::Selected,
        prompt_routing: true,
    };
    let seeds: Vec<u64> = samples.iter().map(|&i| spec.seed_of(i)).collect();
    let result = {
        let mut dyns: Vec<&mut dyn Recorder> =
            recorders.iter_mut().map(|r| r as &mut dyn Recorder).collect();
        engine.generate_many(&request, &seeds, &mut dyns, cancel)
    };
    drop(recorders);
    for (id, h) in handles {
        let outcome = h.join().map_err(|_| Error::Writer(id))??;
        finish_sample(store, &outcome.run, v, progress, cfg)?;
    }
    result?;
    Ok(())
}

/// Counts an ended sample and analyses it when it completed.
fn finish_sample(
    store: &Store,
    run: &Run,
    v: usize,
    progress: &Progress,
    cfg: &AnalysisConfig,
) -> Result<()> {
    let Some(p) = progress.variants.get(v) else { return Ok(()) };
    if is_complete(run) {
        crate::runs::analysis::ensure(store, run.id, cfg, true)?;
        p.done.fetch_add(1, Ordering::Relaxed);
        tracing::info!(run = %run.id, variant = v, "experiment sample complete");
    } else if run.stop != Some(StopReason::User) {
        p.failed.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(n) = &progress.notify {
        (n.0)(run.id, is_complete(run));
    }
    Ok(())
}

/// The endpoint of a remote spec, with the options of `record --endpoint`.
pub fn endpoint(spec: &Spec) -> Option<Endpoint> {
    match &spec.source {
        Source::Model(_) => None,
        Source::Endpoint {
            url,
            remote_model,
            api_key_env,
            retries,
            idle_timeout_s,
            starts_thinking,
        } => Some(Endpoint {
            api_key_env: api_key_env.clone(),
            retries: *retries,
            idle_timeout: Duration::from_secs(*idle_timeout_s),
            starts_thinking: *starts_thinking,
            ..Endpoint::new(url.clone(), remote_model.clone())
        }),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs the pending samples against the spec's endpoint, `concurrency` requests at a time.
/// A store error stops every worker; a sample the server fails is counted and left for a
/// resume. Returns early when `cancel` is set.
#[allow(clippy::too_many_arguments)]
pub fn run_remote(
    store: &Arc<Store>,
    spec: &Spec,
    record: &mut ExperimentRecord,
    todo: &[(usize, usize)],
    concurrency: usize,
    progress: &Arc<Progress>,
    cancel: &AtomicBool,
    cfg: &AnalysisConfig,
) -> Result<()> {
    let ep = endpoint(spec).ok_or_else(|| Error::Spec("the spec names no 'endpoint'".into()))?;
    let opts = ep.options()?;
    let queue: Mutex<VecDeque<(usize, usize)>> = Mutex::new(todo.iter().copied().collect());
    let shared = Mutex::new(record);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let stop = AtomicBool::new(false);
    let one = |v: usize, i: usize| -> Result<()> {
        let Prompt::Chat(messages) = &spec.variants[v].prompt else {
            return Err(Error::Spec("a raw prompt cannot be sent to an endpoint".into()));
        };
        let mut run = new_sample_run(store, spec, &mut lock(&shared), v, i)?;
        ep.prepare(&mut run);
        let mut sampler = spec.sampler.clone();
        sampler.seed = spec.seed_of(i);
        let req =
            RemoteRequest { messages: messages.clone(), sampler, top_logprobs: spec.top_logprobs };
        let counter = Counting { inner: Discard, progress: progress.clone(), variant: v };
        let rec = remote_run::record(store, run, &opts, &req, Some(Box::new(counter)), cancel)?;
        if let crate::remote::Ended::Failed(e) | crate::remote::Ended::Interrupted(e) =
            &rec.outcome.ended
        {
            tracing::warn!(run = %rec.run.id, "experiment sample did not complete: {e}");
        }
        finish_sample(store, &rec.run, v, progress, cfg)
    };
    std::thread::scope(|s| {
        for _ in 0..concurrency.max(1).min(todo.len()) {
            s.spawn(|| loop {
                if cancel.load(Ordering::Relaxed) || stop.load(Ordering::Relaxed) {
                    break;
                }
                let Some((v, i)) = lock(&queue).pop_front() else { break };
                if let Err(e) = one(v, i) {
                    stop.store(true, Ordering::Relaxed);
                    lock(&first_error).get_or_insert(e);
                    break;
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
