//! `thinkdbg lens RUN --at STEP [--json]`: the logit lens at a step of a recorded run. The
//! prefix is replayed once; each block's residual stream goes through the final norm and the
//! output head: its top tokens and the rank and log-probability of the token the run chose.
//! `--count N` shows N neighbouring steps from STEP on (one token's forward pass each).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;

use super::replay::Parent;
use crate::engine::lens::LensLayer;
use crate::engine::source::ModelSource;
use crate::engine::{Engine, LoadOptions};
use crate::sanitize::visible_token;

#[derive(Debug, Clone, Args)]
pub struct LensArgs {
    /// The run (recorded with the embedded engine).
    pub run: String,
    /// The step whose token the layers predict (0 is the first generated token).
    #[arg(long, value_name = "STEP")]
    pub at: usize,
    /// Also the following steps: this many in all.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub count: usize,
    /// Tokens listed per layer.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub top: usize,
    /// JSON lines: one object per layer (and step).
    #[arg(long)]
    pub json: bool,
    /// The model file (default: 'demo'); it must be the one the run was recorded with.
    #[arg(short, long, env = "THINKDBG_MODEL", value_name = "MODEL")]
    pub model: Option<String>,
    /// Use a model other than the run's.
    #[arg(long)]
    pub any_model: bool,
}

impl LensArgs {
    pub fn for_each_path(&mut self, f: &mut dyn FnMut(&mut std::path::PathBuf)) {
        super::args::model_path(&mut self.model, f);
    }
}

fn layer_json(step: usize, l: &LensLayer) -> serde_json::Value {
    let top: Vec<serde_json::Value> =
        l.top.iter().map(|(id, text, lp)| json!({"id": id, "text": text, "logprob": lp})).collect();
    json!({
        "step": step,
        "layer": l.layer,
        "top": top,
        "chosen_rank": l.chosen_rank,
        "chosen_logprob": l.chosen_logprob,
    })
}

pub fn run(args: &LensArgs, store_flag: Option<&Path>, offline: bool) -> Result<ExitCode> {
    if args.count == 0 || args.top == 0 {
        bail!("'--count' and '--top' must be at least 1");
    }
    let store = super::store_args::open(store_flag)?;
    let parent = Parent::load(&store, &args.run)?;
    let n = parent.steps.len();
    if args.at >= n {
        bail!("run '{}' has {n} steps; there is no step {}", parent.run.id, args.at);
    }
    let path = ModelSource::parse(args.model.as_deref())?.resolve(offline)?;
    parent.check_model(&path, args.any_model)?;
    let mut engine = Engine::load(&path, &LoadOptions::default(), &mut |_, _| {})
        .with_context(|| format!("loading '{}'", path.display()))?;
    let tokens: Vec<u32> = parent.steps.iter().map(|s| s.token_id).collect();
    let mut st = engine.lens_begin(&parent.prompt()?, &tokens)?;
    let end = (args.at + args.count).min(n);
    for step in args.at..end {
        let t = Instant::now();
        let layers = engine.lens_at(&mut st, step, args.top)?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if args.json {
            for l in &layers {
                outln!("{}", crate::sanitize::json_line(&layer_json(step, l))?);
            }
            continue;
        }
        let s = &parent.steps[step];
        outln!(
            "step {step}: chosen {} (logprob {:.3}); {} layers ({ms:.1} ms)",
            visible_token(&s.text),
            s.logprob,
            layers.len()
        );
        outln!("  {:>5}  {:>5}  {:>8}  top", "layer", "rank", "logprob");
        for l in &layers {
            let top: Vec<String> = l
                .top
                .iter()
                .map(|(_, text, lp)| format!("{} {:.2}", visible_token(text), lp))
                .collect();
            outln!(
                "  {:>5}  {:>5}  {:>8.3}  {}",
                l.layer,
                l.chosen_rank,
                l.chosen_logprob,
                top.join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
