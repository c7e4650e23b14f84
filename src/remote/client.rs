//! The HTTP side: one streamed chat-completions request over `ureq` (rustls), an idle timeout
//! as the socket read timeout (never a total one: reasoning models stay silent through long
//! prefills), retries only before the first token, and the events sent to the `Recorder`.

use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::chunk::Assembler;
use super::error::{quote, Error, Result};
use super::routing;
use super::sse::{ReadError, SseReader};
use crate::record::{Event, Recorder};
use crate::trace::{
    Message, ModelInfo, Phase, RemoteInfo, Routing, SamplerSpec, StopReason, Timings,
};

/// Where and how to record. `Debug` never shows the API key.
#[derive(Clone)]
pub struct RemoteOptions {
    pub endpoint: String,
    pub api_key: Option<String>,
    /// The `model` sent in the request.
    pub model: String,
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    /// Attempts after the first, only while no token has arrived.
    pub retries: u32,
    /// Ask for routed experts (`return_routed_experts`; vLLM needs a server flag instead).
    pub routed_experts: bool,
    /// Experts per token, to unflatten SGLang's shapeless int32 routing.
    pub routing_top_k: usize,
    /// The prompt already opened `<think>` (DeepSeek-R1's template), for inline splitting.
    pub starts_in_think: bool,
}

impl std::fmt::Debug for RemoteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteOptions")
            .field("endpoint", &super::redact(&self.endpoint))
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("model", &self.model)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct RemoteRequest {
    pub messages: Vec<Message>,
    pub sampler: SamplerSpec,
    pub top_logprobs: usize,
}

/// How the recording ended.
#[derive(Debug)]
pub enum Ended {
    Complete(StopReason),
    /// The stream broke (or went wrong) after tokens arrived, or the user stopped it; the run
    /// is `Interrupted` with what arrived.
    Interrupted(Error),
    /// Nothing usable came before the stream ended or went wrong; the run is `Failed`.
    Failed(Error),
}

#[derive(Debug)]
pub struct RemoteOutcome {
    pub info: RemoteInfo,
    /// Routing by step index, when the server returned routed experts.
    pub routing: Vec<(u32, Routing)>,
    pub steps: u32,
    pub ended: Ended,
}

/// The request body: greedy or sampled, logprobs and top-k alternatives, usage in the stream.
pub fn body(opts: &RemoteOptions, req: &RemoteRequest) -> Value {
    let s = &req.sampler;
    let mut b = json!({
        "model": opts.model,
        "messages": req.messages.iter().map(|m| json!({"role": m.role, "content": m.content})).collect::<Vec<_>>(),
        "stream": true,
        "stream_options": {"include_usage": true},
        "temperature": s.temperature,
        "top_p": s.top_p,
        "seed": s.seed,
        "logprobs": true,
        "top_logprobs": req.top_logprobs,
    });
    // Without a cap the server's own default applies: until the end of the turn or the
    // context.
    if s.capped() {
        b["max_tokens"] = json!(s.max_tokens);
    }
    if s.top_k > 0 {
        b["top_k"] = json!(s.top_k);
    }
    if s.min_p > 0.0 {
        b["min_p"] = json!(s.min_p);
    }
    if (s.repeat_penalty - 1.0).abs() > f32::EPSILON {
        b["repetition_penalty"] = json!(s.repeat_penalty);
        b["repeat_penalty"] = json!(s.repeat_penalty);
    }
    if s.ignore_eos {
        b["ignore_eos"] = json!(true);
    }
    if opts.routed_experts {
        b["return_routed_experts"] = json!(true);
    }
    b
}

fn transport_message(t: &ureq::Transport) -> String {
    let mut m = t.kind().to_string();
    if let Some(msg) = t.message() {
        m.push_str(&format!(": {msg}"));
    }
    if let Some(src) = std::error::Error::source(t) {
        m.push_str(&format!(" ({src})"));
    }
    m
}

/// The server's own words from an error body: `error.message`, `detail`, `message`, or text.
fn server_message(body: &str) -> String {
    let v: Option<Value> = serde_json::from_str(body).ok();
    let from_json = v.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("error").filter(|e| e.is_string()))
            .or_else(|| v.get("detail"))
            .or_else(|| v.get("message"))
            .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_string))
    });
    let text = from_json.unwrap_or_else(|| body.trim().to_string());
    if text.is_empty() {
        "(no message)".into()
    } else {
        quote(&text, 500)
    }
}

fn open(
    agent: &ureq::Agent,
    url: &str,
    shown: &str,
    opts: &RemoteOptions,
    body: &str,
) -> Result<Box<dyn BufRead + Send>> {
    let mut r =
        agent.post(url).set("Content-Type", "application/json").set("Accept", "text/event-stream");
    if let Some(key) = &opts.api_key {
        r = r.set("Authorization", &format!("Bearer {key}"));
    }
    match r.send_string(body) {
        Ok(resp) => {
            let ct = resp.content_type().to_string();
            if ct != "text/event-stream" {
                return Err(Error::NotStreaming { endpoint: shown.into(), content_type: ct });
            }
            Ok(Box::new(BufReader::with_capacity(64 * 1024, resp.into_reader())))
        }
        Err(ureq::Error::Status(status, resp)) => {
            let mut text = String::new();
            let _ = resp.into_reader().take(64 * 1024).read_to_string(&mut text);
            Err(Error::Http { endpoint: shown.into(), status, message: server_message(&text) })
        }
        Err(ureq::Error::Transport(t)) => {
            let (endpoint, message) = (shown.into(), transport_message(&t));
            use ureq::ErrorKind as K;
            Err(match t.kind() {
                K::Dns | K::ConnectionFailed | K::ProxyConnect => {
                    Error::Connect { endpoint, message }
                }
                // Connected, then no (or no readable) response: not a refused connection.
                _ => Error::NoResponse { endpoint, message },
            })
        }
    }
}

/// Retried before the first token: a refused connection (or DNS), HTTP 429/502/503/504, and a
/// stream that opened and broke before its first token. A server that accepted the connection
/// and never answered is not retried (it would hang again).
fn retryable(e: &Error) -> bool {
    match e {
        Error::Connect { .. } | Error::Broken { .. } => true,
        Error::Http { status, .. } => matches!(status, 429 | 502 | 503 | 504),
        _ => false,
    }
}

fn stop_of(finish: Option<&str>) -> StopReason {
    match finish {
        Some("length") => StopReason::MaxTokens,
        Some("abort" | "cancelled") => StopReason::User,
        _ => StopReason::Eos,
    }
}

/// State of one recording across attempts.
struct Session<'a> {
    opts: &'a RemoteOptions,
    shown: String,
    asm: Assembler,
    recorder: &'a mut dyn Recorder,
    loaded: bool,
    found: Option<routing::Found>,
    first_us: Option<u64>,
    last_us: u64,
    done: bool,
    /// Steps recorded; the server is not trusted to honour `max_tokens`: a step past it ends
    /// the stream (`capped`).
    recorded: u32,
    max_steps: u32,
    capped: bool,
}

impl Session<'_> {
    /// Reads the stream until `[DONE]` or its end. Errors carry whether a token had arrived.
    fn stream(
        &mut self,
        reader: Box<dyn BufRead + Send>,
        t0: Instant,
        cancel: &AtomicBool,
    ) -> Result<bool> {
        let mut sse = SseReader::new(reader);
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Ok(true);
            }
            let ev = match sse.next_event() {
                Ok(Some(ev)) => ev,
                Ok(None) => return Ok(false),
                Err(ReadError::Bad(e)) => return Err(e),
                Err(ReadError::Io(e)) => {
                    return Err(match e.kind() {
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                            Error::Idle {
                                endpoint: self.shown.clone(),
                                secs: self.opts.idle_timeout.as_secs(),
                            }
                        }
                        _ => Error::Broken { endpoint: self.shown.clone(), message: e.to_string() },
                    })
                }
            };
            if ev.data.trim() == "[DONE]" {
                self.done = true;
                return Ok(false);
            }
            // Whole-value parsing only for the rare chunks that need it (errors, routing).
            if ev.data.contains("\"error\"") || ev.data.contains("routed_experts") {
                let v: Value = serde_json::from_str(&ev.data).map_err(|e| Error::Sse {
                    line: ev.line,
                    message: format!("not JSON ({e})"),
                    content: quote(&ev.data, 200),
                })?;
                if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
                    let message = server_message(&json!({ "error": err }).to_string());
                    return Err(Error::Server { line: ev.line, message });
                }
                if let Some(f) = routing::find(&v) {
                    self.found = Some(f);
                }
            }
            let t_us = t0.elapsed().as_micros() as u64;
            let steps = self.asm.chunk_str(&ev.data, ev.line, t_us)?;
            if !self.loaded {
                if let Some(name) = &self.asm.model {
                    self.loaded = true;
                    let model = ModelInfo { name: name.clone(), ..ModelInfo::default() };
                    self.recorder.record(Event::Loaded { model, load_ms: 0, warnings: Vec::new() });
                }
            }
            for step in steps {
                // Every step is at least one token: more steps than `max_tokens` means the
                // server ignores it (a stream that would never end).
                if self.max_steps > 0 && self.recorded >= self.max_steps {
                    self.capped = true;
                    return Ok(false);
                }
                self.first_us.get_or_insert(t_us);
                self.last_us = t_us;
                self.recorded += 1;
                self.recorder.record(Event::Step { step, routing: None });
            }
        }
    }

    fn timings(&self) -> Timings {
        let usage = self.asm.usage.unwrap_or_default();
        Timings {
            load_ms: 0,
            prompt_tokens: usage.prompt_tokens.unwrap_or(0),
            prefill_us: self.first_us.unwrap_or(0),
            generated_tokens: self.recorded,
            decode_us: self.last_us.saturating_sub(self.first_us.unwrap_or(0)),
        }
    }

    fn routing(&self, info: &mut RemoteInfo) -> Vec<(u32, Routing)> {
        let Some(found) = &self.found else { return Vec::new() };
        let usage = self.asm.usage.unwrap_or_default();
        let steps = self.asm.steps() as usize;
        let generated = usage.completion_tokens.map_or(steps, |c| c as usize);
        let prompt = usage.prompt_tokens.map(|p| p as usize);
        let rows = prompt.map(|p| (p + generated).saturating_sub(1));
        match routing::decode(found, rows, self.opts.routing_top_k) {
            Ok(e) => {
                info.routing_format =
                    format!("{} [{}, {}, {}]", e.format, e.rows, e.layers, e.top_k);
                let (per_step, note) = routing::per_step(&e, prompt, steps);
                info.notes.extend(note);
                per_step
            }
            Err(err) => {
                info.notes.push(format!("routed experts found but not decoded: {err}"));
                Vec::new()
            }
        }
    }
}

/// Records one generation from the server into `recorder`, ending with `Finished`, `Failed` or
/// `Interrupted` (what arrived is kept) as `RemoteOutcome::ended` says.
pub fn record(
    opts: &RemoteOptions,
    req: &RemoteRequest,
    recorder: &mut dyn Recorder,
    cancel: &AtomicBool,
) -> RemoteOutcome {
    let shown = super::redact(&opts.endpoint);
    let mut s = Session {
        opts,
        shown: shown.clone(),
        asm: Assembler::new(req.top_logprobs, opts.starts_in_think),
        recorder,
        loaded: false,
        found: None,
        first_us: None,
        last_us: 0,
        done: false,
        recorded: 0,
        max_steps: u32::try_from(req.sampler.max_tokens).unwrap_or(u32::MAX),
        capped: false,
    };
    let ended = match super::chat_url(&opts.endpoint) {
        Err(e) => Ended::Failed(e),
        Ok(url) => {
            let phase = if opts.starts_in_think { Phase::Think } else { Phase::Answer };
            s.recorder.record(Event::Started {
                rendered_prompt: String::new(),
                prompt_tokens: Vec::new(),
                phase,
                stop_ids: Vec::new(),
            });
            let agent = ureq::AgentBuilder::new()
                .timeout_connect(opts.connect_timeout)
                .timeout_read(opts.idle_timeout)
                .build();
            let body = body(opts, req).to_string();
            let mut attempt = 0;
            loop {
                let t0 = Instant::now();
                let result =
                    open(&agent, &url, &shown, opts, &body).and_then(|r| s.stream(r, t0, cancel));
                let got_tokens = s.asm.steps() > 0;
                match result {
                    Err(_) if cancel.load(Ordering::Relaxed) => {
                        break Ended::Interrupted(Error::Cancelled)
                    }
                    Err(e) if !got_tokens && attempt < opts.retries && retryable(&e) => {
                        attempt += 1;
                        tracing::warn!(endpoint = %shown, attempt, "retrying before the first token: {e}");
                        std::thread::sleep(Duration::from_millis(500 << attempt.min(5)));
                    }
                    // Steps arrived: whatever cut the stream, they are kept.
                    Err(e) if got_tokens => break Ended::Interrupted(e),
                    Err(e) => break Ended::Failed(e),
                    // The user stopped it: what arrived is kept, as for a broken stream.
                    Ok(true) => break Ended::Interrupted(Error::Cancelled),
                    Ok(false) if s.capped => break Ended::Complete(StopReason::MaxTokens),
                    Ok(false) if s.done || s.asm.finish.is_some() => {
                        break Ended::Complete(stop_of(s.asm.finish.as_deref()))
                    }
                    Ok(false) if got_tokens => {
                        break Ended::Interrupted(Error::Broken {
                            endpoint: shown.clone(),
                            message: "the server closed the stream before finishing".into(),
                        })
                    }
                    Ok(false) => {
                        break Ended::Failed(Error::Broken {
                            endpoint: shown.clone(),
                            message: "the stream ended without a token".into(),
                        })
                    }
                }
            }
        }
    };
    let mut info = s.asm.info(&opts.model);
    if s.capped {
        info.notes.push(format!(
            "the server kept streaming past max_tokens ({}): the client stopped reading there",
            s.max_steps
        ));
    }
    let routing = s.routing(&mut info);
    match &ended {
        Ended::Complete(stop) => {
            s.recorder.record(Event::Finished { stop: *stop, timings: s.timings() })
        }
        Ended::Failed(e) => s.recorder.record(Event::Failed(e.to_string())),
        Ended::Interrupted(e) => s.recorder.record(Event::Interrupted(e.to_string())),
    }
    RemoteOutcome { info, routing, steps: s.recorded, ended }
}
