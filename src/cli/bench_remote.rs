//! `thinkdbg bench remote`: the cost of recording from a server, per token. The same greedy
//! request is (a) read to the end as raw bytes and (b) recorded into a scratch store, in turns,
//! against the real server; then the captured stream is replayed from a loopback socket as fast
//! as it can be read, raw and recorded, which isolates the client's own work from the server.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use clap::Args;

use crate::remote::{self, Ended, RemoteOptions, RemoteRequest};
use crate::store::{writer, Store};
use crate::trace::{Message, Run, RunId, SamplerSpec, SessionId};

#[derive(Debug, Clone, Args)]
pub struct RemoteBenchArgs {
    /// The server (as for `record --endpoint`).
    #[arg(long, value_name = "URL")]
    pub endpoint: String,
    #[arg(long, value_name = "NAME", default_value = "bench")]
    pub remote_model: String,
    /// Tokens per request.
    #[arg(short = 'n', long, default_value_t = 256)]
    pub max_tokens: usize,
    #[arg(long, default_value_t = 20)]
    pub top_logprobs: usize,
    /// Rounds of (raw, recorded) against the server, and of the replay.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    #[arg(long, default_value = "Count from 1 to 500, separated by commas.")]
    pub prompt: String,
}

fn options(endpoint: &str, model: &str) -> RemoteOptions {
    RemoteOptions {
        endpoint: endpoint.into(),
        api_key: None,
        model: model.into(),
        idle_timeout: Duration::from_secs(600),
        connect_timeout: Duration::from_secs(10),
        retries: 0,
        routed_experts: false,
        routing_top_k: 8,
        starts_in_think: false,
    }
}

/// Reads the whole streamed answer as bytes: the floor any client pays.
fn raw(url: &str, body: &str) -> Result<(f64, Vec<u8>)> {
    let t0 = Instant::now();
    let resp = ureq::post(url).set("Content-Type", "application/json").send_string(body)?;
    let mut bytes = Vec::new();
    resp.into_reader().read_to_end(&mut bytes)?;
    Ok((t0.elapsed().as_secs_f64(), bytes))
}

/// Records one request into a fresh run of `store`; returns seconds (writer done) and steps.
fn recorded(store: &Arc<Store>, opts: &RemoteOptions, req: &RemoteRequest) -> Result<(f64, u32)> {
    let run = Run::new_recording(RunId(store.new_id()?), SessionId(0), req.sampler.clone());
    let t0 = Instant::now();
    let (mut rec, handle) = writer::start(store.clone(), run)?;
    let out = remote::record(opts, req, &mut rec, &AtomicBool::new(false));
    drop(rec);
    handle.join().map_err(|_| anyhow!("the store writer panicked"))??;
    let secs = t0.elapsed().as_secs_f64();
    if let Ended::Failed(e) | Ended::Interrupted(e) = out.ended {
        bail!("{e}");
    }
    Ok((secs, out.steps))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub fn bench(a: &RemoteBenchArgs, dir: &Path) -> Result<serde_json::Value> {
    let opts = options(&a.endpoint, &a.remote_model);
    let req = RemoteRequest {
        messages: vec![Message::new("user", a.prompt.clone())],
        sampler: SamplerSpec { max_tokens: a.max_tokens, seed: 7, ..SamplerSpec::default() },
        top_logprobs: a.top_logprobs,
    };
    let url = remote::chat_url(&a.endpoint)?;
    let body = remote::client::body(&opts, &req).to_string();
    let store = Arc::new(Store::open_scratch(&dir.join("store"))?);
    let (mut raw_s, mut rec_s, mut steps, mut capture) = (vec![], vec![], 0, Vec::new());
    for _ in 0..a.repeat.max(1) {
        let (s, bytes) = raw(&url, &body)?;
        raw_s.push(s);
        capture = bytes;
        let (s, n) = recorded(&store, &opts, &req)?;
        rec_s.push(s);
        steps = n;
    }
    let reps = 20 * a.repeat.max(1);
    let response = [remote::loopback::SSE_HEAD, &capture].concat();
    let server = remote::loopback::serve(vec![response; 2 * reps])?;
    let replay_opts = options(&server, &a.remote_model);
    let replay_url = remote::chat_url(&server)?;
    let (mut rraw, mut rrec) = (vec![], vec![]);
    for _ in 0..reps {
        rraw.push(raw(&replay_url, &body)?.0);
        rrec.push(recorded(&store, &replay_opts, &req)?.0);
    }
    let per = |s: f64| s * 1e6 / f64::from(steps.max(1));
    let (r, c, rr, rc) = (median(raw_s), median(rec_s), median(rrec.clone()), median(rraw.clone()));
    outln!(
        "bench remote: {steps} tokens, top-{} logprobs, {} bytes of SSE",
        a.top_logprobs,
        capture.len()
    );
    outln!("  real server, raw stream     {:>9.1} us/token (median of {})", per(r), a.repeat);
    outln!("  real server, recorded       {:>9.1} us/token", per(c));
    outln!("  replay, raw stream          {:>9.1} us/token (median of {reps})", per(rc));
    outln!("  replay, recorded            {:>9.1} us/token", per(rr));
    outln!("  recording overhead (replay) {:>9.1} us/token", per(rr - rc));
    Ok(serde_json::json!({
        "part": "remote", "steps": steps, "top_logprobs": a.top_logprobs, "sse_bytes": capture.len(),
        "server_raw_us_per_token": per(r), "server_recorded_us_per_token": per(c),
        "replay_raw_us_per_token": per(rc), "replay_recorded_us_per_token": per(rr),
        "overhead_us_per_token": per(rr - rc),
    }))
}
