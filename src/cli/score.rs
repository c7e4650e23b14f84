//! `thinkdbg score RUN --model M`: a local model's view of a recorded run's text. The run's
//! output is forced token by token through one chunked prefill (teacher forcing) and stored as
//! a child run holding M's logprob, entropy, top-k and routing for every token; the summary
//! names the tokens M found least likely. Works on any run: embedded, from a server, imported.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};

use anyhow::{anyhow, bail, Result};
use clap::Args;

use super::progress::LoadProgress;
use crate::engine::source::ModelSource;
use crate::engine::worker::EngineWorker;
use crate::engine::LoadOptions;
use crate::record::Event;
use crate::runs::score::{self, ScoreOptions, Scored};
use crate::sanitize::visible_token;
use crate::trace::{RoutingDetail, Step};

#[derive(Debug, Clone, Args)]
pub struct ScoreArgs {
    /// The run to score (any source: embedded, server, imported).
    pub run: String,
    /// The model that scores it (default: 'demo'); any model, not only the run's own.
    #[arg(short, long, env = "THINKDBG_MODEL", value_name = "MODEL")]
    pub model: Option<String>,
    /// A label for the scored run (default: 'scored by MODEL').
    #[arg(long)]
    pub label: Option<String>,
    /// Alternatives kept per step (default: as many as the run kept, at least 5).
    #[arg(long, value_name = "N")]
    pub top_logprobs: Option<usize>,
    /// Tokens per forward pass of the prefill.
    #[arg(long, value_name = "N", default_value_t = crate::engine::score::DEFAULT_CHUNK)]
    pub chunk: usize,
    /// MoE routing to record: 'off', 'selected' or 'full'.
    #[arg(long, default_value = "selected", value_parser = super::args::parse_routing, value_name = "DETAIL")]
    pub routing: RoutingDetail,
    /// How many of the least likely tokens to list.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub lowest: usize,
}

impl ScoreArgs {
    pub fn for_each_path(&mut self, f: &mut dyn FnMut(&mut PathBuf)) {
        super::args::model_path(&mut self.model, f);
    }
}

pub fn run(args: &ScoreArgs, store_flag: Option<&Path>, offline: bool) -> Result<ExitCode> {
    if args.chunk == 0 {
        bail!("'--chunk' must be at least 1 token");
    }
    let store = super::store_args::open(store_flag)?;
    let parent = score::load(&store, &args.run)?;
    // Fails early (before loading the model) on a run with no prompt.
    let opts = ScoreOptions {
        label: args.label.clone(),
        top_logprobs: args.top_logprobs,
        chunk: args.chunk,
        routing: args.routing,
    };
    score::request(&parent, &opts)?;
    let path = ModelSource::parse(args.model.as_deref())?.resolve(offline)?;
    let progress = LoadProgress::new(&path);
    let (tx, rx) = mpsc::channel::<Event>();
    let worker = EngineWorker::start(path, LoadOptions::default(), Box::new(tx))?;
    for event in rx {
        if let Event::Failed(msg) = &event {
            progress.finish();
            bail!("{msg}");
        }
        progress.show(&event);
    }
    progress.finish();
    errln!("scoring run '{}' ({} steps)", parent.run.id, parent.steps.len());
    let bar = step_bar(parent.steps.len());
    let (watch_tx, watch_rx) = mpsc::channel::<Event>();
    let (done_tx, done_rx) = mpsc::channel();
    let store2 = Arc::clone(&store);
    let parent2 = parent.clone();
    worker.submit_call(Box::new(
        move |engine: std::result::Result<&mut crate::engine::Engine, String>| {
            let result = match engine {
                Ok(engine) => score::score(
                    engine,
                    &store2,
                    &parent2,
                    &opts,
                    Some(Box::new(watch_tx)),
                    &AtomicBool::new(false),
                )
                .map_err(|e| anyhow!(e)),
                Err(msg) => Err(anyhow!(msg)),
            };
            let _ = done_tx.send(result);
        },
    ));
    for event in watch_rx {
        if let Event::Step { .. } = event {
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let scored = done_rx.recv().map_err(|_| anyhow!("the engine stopped while scoring"))??;
    worker.shutdown()?;
    super::analysis::after_record(&store, scored.run);
    report(&store, &parent.steps, &scored, args.lowest)?;
    Ok(ExitCode::SUCCESS)
}

fn step_bar(len: usize) -> indicatif::ProgressBar {
    let target = if super::out::is_redirected() {
        indicatif::ProgressDrawTarget::hidden()
    } else {
        indicatif::ProgressDrawTarget::stderr()
    };
    let bar = indicatif::ProgressBar::with_draw_target(Some(len as u64), target);
    bar.set_style(
        indicatif::ProgressStyle::with_template("scoring {bar:30} {pos}/{len} tokens")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// The summary: how the tokens were chosen, speed, mean logprob, the least likely tokens, then
/// the scored run's id alone on the last line.
fn report(
    store: &crate::store::Store,
    parent: &[Step],
    scored: &Scored,
    lowest: usize,
) -> Result<()> {
    let steps = store.steps(scored.run)?.steps;
    let t = &scored.summary.timings;
    let secs = (t.prefill_us + t.decode_us) as f64 / 1e6;
    let all = t.prompt_tokens as usize + steps.len();
    errln!(
        "{} tokens ({}), {} prompt tokens; {:.0} tokens/s",
        steps.len(),
        scored.plan.tokens.as_str(),
        t.prompt_tokens,
        if secs > 0.0 { all as f64 / secs } else { 0.0 }
    );
    let known: Vec<f32> = steps.iter().map(|s| s.logprob).filter(|l| l.is_finite()).collect();
    if !known.is_empty() {
        let mean = known.iter().sum::<f32>() / known.len() as f32;
        let top1 = steps.iter().filter(|s| s.top.first().is_some_and(|t| t.id == s.token_id));
        outln!(
            "mean logprob {mean:.3} (perplexity {:.2}); the model's top choice at {} of {} tokens",
            (-mean).exp(),
            top1.count(),
            steps.len()
        );
    }
    let run = store.run(scored.run)?.ok_or_else(|| anyhow!("scored run vanished"))?;
    let mut order: Vec<&Step> = steps.iter().filter(|s| s.logprob.is_finite()).collect();
    order.sort_by(|a, b| a.logprob.total_cmp(&b.logprob));
    if lowest > 0 && !order.is_empty() {
        outln!("least likely under the model:");
    }
    for s in order.into_iter().take(lowest) {
        let at = run.scored_parent_step(s.index);
        let was = parent.get(at as usize).map(|p| p.logprob).filter(|l| l.is_finite());
        let best = s.top.first().map(|t| visible_token(&t.text)).unwrap_or_default();
        outln!(
            "  step {:>5} {:<16} logprob {:>8.3}{}  model preferred {}",
            s.index,
            visible_token(&s.text),
            s.logprob,
            was.map(|w| format!(" (run: {w:.3})")).unwrap_or_default(),
            best
        );
    }
    outln!("{}", scored.run);
    Ok(())
}
