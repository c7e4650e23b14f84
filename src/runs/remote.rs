//! Recording one run from an OpenAI-compatible server into the store: the run's source and
//! logprob kind before the stream, the store writer during it (so an interrupted stream keeps
//! what arrived), the server's provenance and routed experts after it. Shared by
//! `thinkdbg record --endpoint` and the terminal UI's run dialog.
//!
//! Depends on `remote`, `store`, `record` and `trace`; never on `cli` or `tui`.
//! The API key is read from the environment when a recording starts and lives only in the
//! `RemoteOptions` of that recording: never stored, shown or logged.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::record::{Event, Recorder};
use crate::remote::{self, Ended, RemoteOptions, RemoteOutcome, RemoteRequest};
use crate::store::{writer, Store};
use crate::trace::{LogprobKind, RemoteInfo, Run, RunSource, RunStatus, StopReason};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Remote(#[from] remote::Error),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("'{0}' must name an environment variable (letters, digits, '_'), not hold the key")]
    KeyEnvName(&'static str),
    #[error("the store writer panicked")]
    Writer,
}

pub type Result<T> = std::result::Result<T, Error>;

/// Where to record from, as given on the command line or in the run dialog. `Debug` shows the
/// URL without credentials.
#[derive(Clone, PartialEq)]
pub struct Endpoint {
    /// A server root, a `/v1` base or the full chat-completions URL (may hold credentials).
    pub url: String,
    /// The model name to request.
    pub model: String,
    /// The environment variable holding the API key (its name only).
    pub api_key_env: Option<String>,
    pub logprob_kind: LogprobKind,
    pub idle_timeout: Duration,
    pub retries: u32,
    pub routed_experts: bool,
    pub routing_top_k: usize,
    pub starts_thinking: bool,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.shown())
            .field("model", &self.model)
            .field("api_key_env", &self.api_key_env)
            .field("logprob_kind", &self.logprob_kind)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// The defaults of `thinkdbg record --endpoint`.
    pub fn new(url: impl Into<String>, model: impl Into<String>) -> Endpoint {
        Endpoint {
            url: url.into(),
            model: model.into(),
            api_key_env: None,
            logprob_kind: LogprobKind::Raw,
            idle_timeout: Duration::from_secs(600),
            retries: 2,
            routed_experts: false,
            routing_top_k: 8,
            starts_thinking: false,
        }
    }

    /// The endpoint as stored and shown: no user info, query or fragment.
    pub fn shown(&self) -> String {
        remote::redact(self.url.trim())
    }

    /// Checks the URL and the key variable's name without reading the key.
    pub fn check(&self) -> Result<()> {
        remote::chat_url(&self.url)?;
        if let Some(var) = &self.api_key_env {
            let ok = var.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(Error::KeyEnvName("api_key_env"));
            }
        }
        Ok(())
    }

    /// The client's options, the API key read from the environment now.
    pub fn options(&self) -> Result<RemoteOptions> {
        self.check()?;
        let api_key = match &self.api_key_env {
            Some(var) => {
                Some(std::env::var(var).map_err(|_| remote::Error::NoApiKey(var.clone()))?)
            }
            None => None,
        };
        Ok(RemoteOptions {
            endpoint: self.url.trim().to_string(),
            api_key,
            model: self.model.clone(),
            idle_timeout: self.idle_timeout.max(Duration::from_secs(1)),
            connect_timeout: Duration::from_secs(10),
            retries: self.retries,
            routed_experts: self.routed_experts,
            routing_top_k: self.routing_top_k,
            starts_in_think: self.starts_thinking,
        })
    }

    /// Marks `run` (about to be recorded) as coming from this endpoint.
    pub fn prepare(&self, run: &mut Run) {
        run.source = RunSource::Remote {
            endpoint: self.shown(),
            server: RemoteInfo { model: self.model.clone(), ..RemoteInfo::default() },
        };
        run.logprob_kind = self.logprob_kind;
    }
}

/// The endpoint a remote run was recorded from and the model it asked for: what a re-run
/// starts from.
pub fn provenance(run: &Run) -> Option<(String, String)> {
    match &run.source {
        RunSource::Remote { endpoint, server } => Some((endpoint.clone(), server.model.clone())),
        _ => None,
    }
}

/// A finished recording.
#[derive(Debug)]
pub struct Recorded {
    /// The run as stored, provenance included.
    pub run: Run,
    pub steps_written: usize,
    pub outcome: RemoteOutcome,
}

impl Recorded {
    /// Whether the user stopped it.
    pub fn cancelled(&self) -> bool {
        matches!(self.outcome.ended, Ended::Interrupted(remote::Error::Cancelled))
    }

    /// Every step came without a logprob.
    pub fn no_logprobs(&self) -> bool {
        let n = self.outcome.steps;
        n > 0 && self.outcome.info.missing.contains(&format!("logprobs on {n} of {n} steps"))
    }
}

/// Sends every event to the store writer at once and to a second recorder (the UI), except
/// the end of the run, which the second recorder gets only after the server's provenance and
/// routed experts are stored (so whoever reacts to the end reads the finished run).
struct EndLast {
    store: writer::StoreRecorder,
    also: Option<Box<dyn Recorder>>,
    end: Option<Event>,
}

impl Recorder for EndLast {
    fn record(&mut self, event: Event) {
        self.store.record(event.clone());
        if event.is_end() {
            self.end = Some(event);
        } else if let Some(also) = &mut self.also {
            also.record(event);
        }
    }
}

/// Records `req` from the server into `run` (a new run, status `Recording`, already made
/// remote by `Endpoint::prepare`): every event also goes to `also`, the end of the run last,
/// after the server's provenance and routed experts are added to the stored run. A cancelled or
/// broken stream leaves the run `Interrupted` with the steps that arrived.
pub fn record(
    store: &Arc<Store>,
    run: Run,
    opts: &RemoteOptions,
    req: &RemoteRequest,
    also: Option<Box<dyn Recorder>>,
    cancel: &AtomicBool,
) -> Result<Recorded> {
    let run_id = run.id;
    let shown = remote::redact(&opts.endpoint);
    tracing::info!(run = %run_id, endpoint = %shown, "recording from a server");
    let (writer, handle) = writer::start(store.clone(), run)?;
    let mut tee = EndLast { store: writer, also, end: None };
    let outcome = remote::record(opts, req, &mut tee, cancel);
    let EndLast { store: writer, also, end } = tee;
    drop(writer);
    let written = handle.join().map_err(|_| Error::Writer)??;
    let mut run = written.run;
    run.source = RunSource::Remote { endpoint: shown, server: outcome.info.clone() };
    if matches!(outcome.ended, Ended::Interrupted(remote::Error::Cancelled)) {
        run.stop = Some(StopReason::User);
        run.status = RunStatus::Cancelled;
    }
    store.put_run(&run)?;
    if !outcome.routing.is_empty() {
        let read = store.steps(run_id)?;
        let mut routing = outcome.routing.iter().cloned().peekable();
        let mut pairs = Vec::new();
        for step in read.steps {
            while routing.next_if(|(i, _)| *i < step.index).is_some() {}
            let r = routing.next_if(|(i, _)| *i == step.index).map(|(_, r)| r);
            pairs.push((step, r));
        }
        store.put_steps(run_id, &pairs)?;
    }
    store.flush()?;
    if let (Some(mut also), Some(end)) = (also, end) {
        also.record(end);
    }
    Ok(Recorded { run, steps_written: written.steps_written, outcome })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_variable_names_are_checked_without_echoing_them() {
        let mut e = Endpoint::new("http://127.0.0.1:1/v1", "m");
        e.api_key_env = Some("OPENAI_API_KEY".into());
        assert!(e.check().is_ok());
        e.api_key_env = Some("sk-secret value".into());
        let msg = e.check().unwrap_err().to_string();
        assert!(!msg.contains("sk-secret"), "{msg}");
        e.api_key_env = Some("THINKDBG_TEST_SURELY_UNSET_VAR".into());
        let msg = e.options().unwrap_err().to_string();
        assert!(msg.contains("'THINKDBG_TEST_SURELY_UNSET_VAR'"), "{msg}");
        assert!(Endpoint::new("127.0.0.1:1", "m").check().is_err());
    }

    #[test]
    fn prepare_stores_the_endpoint_without_credentials() {
        let mut run = Run::new_recording(
            crate::trace::RunId(1),
            crate::trace::SessionId(1),
            crate::trace::SamplerSpec::default(),
        );
        let mut e = Endpoint::new("https://u:pw@h:8443/v1?api_key=s3", "r1");
        e.logprob_kind = LogprobKind::PostSampling;
        e.prepare(&mut run);
        assert_eq!(provenance(&run), Some(("https://h:8443/v1".into(), "r1".into())));
        assert_eq!(run.logprob_kind, LogprobKind::PostSampling);
        assert!(!format!("{e:?}").contains("pw"), "{e:?}");
    }
}
