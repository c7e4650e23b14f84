//! `thinkdbg record --endpoint URL`: record from an OpenAI-compatible server through the same
//! store writer as the embedded engine, then add the server's provenance and routed experts to
//! the run. The API key is read from the environment variable named by `--api-key-env` and
//! goes nowhere but the request header. The recording itself is `crate::runs::remote`, shared
//! with the terminal UI's run dialog.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use clap::{Args, ValueEnum};

use super::record::{new_run, RecordArgs};
use crate::engine::generate::Prompt;
use crate::remote::{Ended, RemoteRequest};
use crate::runs::remote::{self as remote_run, Endpoint};
use crate::sanitize::for_terminal;
use crate::trace::LogprobKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// Before temperature and filters (llama.cpp's chat endpoint; vLLM's default raw_logprobs).
    Raw,
    /// After sampling filters (vLLM --logprobs-mode processed_logprobs).
    PostSampling,
}

#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// Record from this OpenAI-compatible server (SGLang, vLLM, llama.cpp server) instead of
    /// the embedded engine: a server root, a /v1 base or the full chat-completions URL.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Read the API key (sent as a Bearer token) from this environment variable.
    #[arg(long, value_name = "VAR", requires = "endpoint")]
    pub api_key_env: Option<String>,
    /// The model name to request from the server.
    #[arg(long, value_name = "NAME", requires = "endpoint")]
    pub remote_model: Option<String>,
    /// Give up when the server sends nothing for this long (not a total limit).
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub idle_timeout: u64,
    /// Retries on refused connections and 429/502/503/504, only before the first token.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub retries: u32,
    /// Ask for routed experts (SGLang: return_routed_experts; vLLM needs its server flag).
    #[arg(long)]
    pub routed_experts: bool,
    /// Experts per token, to unflatten SGLang's routed experts (8 for DeepSeek-V3/R1).
    #[arg(long, default_value_t = 8, value_name = "K")]
    pub routing_top_k: usize,
    /// The chat template already opens <think> (DeepSeek-R1), for servers without a
    /// reasoning parser: text before </think> is thinking.
    #[arg(long)]
    pub starts_thinking: bool,
    /// What the server's logprobs are.
    #[arg(long, value_enum, default_value_t = KindArg::Raw)]
    pub logprob_kind: KindArg,
}

pub fn run(args: &RecordArgs, store_flag: Option<&Path>) -> Result<ExitCode> {
    let r = &args.remote;
    let endpoint = r.endpoint.clone().ok_or_else(|| anyhow!("'--endpoint' is missing"))?;
    let model = r
        .remote_model
        .clone()
        .ok_or_else(|| anyhow!("'--remote-model' is required with '--endpoint'"))?;
    let request = args.gen.request()?;
    let Prompt::Chat(messages) = &request.prompt else {
        bail!("'--raw' cannot be used with '--endpoint' (the server applies its chat template)");
    };
    let ep = Endpoint {
        api_key_env: r.api_key_env.clone(),
        logprob_kind: match r.logprob_kind {
            KindArg::Raw => LogprobKind::Raw,
            KindArg::PostSampling => LogprobKind::PostSampling,
        },
        idle_timeout: Duration::from_secs(r.idle_timeout.max(1)),
        retries: r.retries,
        routed_experts: r.routed_experts,
        routing_top_k: r.routing_top_k,
        starts_thinking: r.starts_thinking,
        ..Endpoint::new(endpoint, model)
    };
    let opts = ep.options()?;
    let req = RemoteRequest {
        messages: messages.clone(),
        sampler: request.sampler.clone(),
        top_logprobs: request.top_logprobs,
    };
    let store = super::store_args::open(store_flag)?;
    let mut run = new_run(&store, args, &request.prompt, request.sampler.clone())?;
    ep.prepare(&mut run);
    let run_id = run.id;
    let cancel = Arc::new(AtomicBool::new(false));
    let interrupt = super::interrupt::Interrupt::cancels(&cancel)?;
    let rec = remote_run::record(&store, run, &opts, &req, None, &cancel)?;
    let (run, outcome, steps_written) = (&rec.run, &rec.outcome, rec.steps_written);
    let info = &outcome.info;
    for line in info
        .notes
        .iter()
        .chain(std::iter::once(&format!("not supplied: {}", info.missing.join(", "))))
    {
        errln!("note: {}", for_terminal(line, false));
    }
    if !info.routing_format.is_empty() {
        errln!("routed experts: {}", for_terminal(&info.routing_format, false));
    }
    let code = match &outcome.ended {
        Ended::Complete(stop) => {
            errln!(
                "{} steps, stop: {}, {:.1} tok/s, model {}, session {}",
                steps_written,
                stop.as_str(),
                run.timings.decode_tok_s(),
                for_terminal(&info.model, false),
                run.session
            );
            ExitCode::SUCCESS
        }
        Ended::Interrupted(_) if interrupt.seen() => {
            errln!("stopped: run '{run_id}' is kept as cancelled, {steps_written} steps");
            ExitCode::from(super::interrupt::INTERRUPTED)
        }
        Ended::Interrupted(e) => {
            errln!("error: {e} (run '{run_id}' kept as interrupted, {steps_written} steps)");
            ExitCode::FAILURE
        }
        Ended::Failed(e) => {
            errln!("error: {e} (run '{run_id}' kept as failed, {steps_written} steps)");
            return Ok(ExitCode::FAILURE);
        }
    };
    outln!("{run_id}");
    Ok(code)
}
