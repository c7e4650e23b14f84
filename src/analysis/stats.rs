//! Statistics of one run: token counts by phase, mean logprob, perplexity, mean entropy,
//! flags by kind, language mix and target-language ratio, backtracks per 1k tokens, decode
//! speed and, for MoE runs, expert usage per layer and routing entropy. Depends on `trace`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::language::lang_name;
use crate::trace::{Flag, FlagKind, Phase, Routing, Run, Step};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunStats {
    pub tokens: usize,
    pub think_tokens: usize,
    pub answer_tokens: usize,
    pub words: usize,
    pub sentences: usize,
    pub reasoning_steps: usize,
    /// Mean log-probability of the chosen tokens (finite ones).
    pub mean_logprob: Option<f64>,
    /// `exp(-mean_logprob)`.
    pub perplexity: Option<f64>,
    /// Mean entropy in nats.
    pub mean_entropy: Option<f64>,
    /// Automatic and user flags by kind name, most frequent first.
    pub flags_by_kind: Vec<(String, usize)>,
    /// The language the chain of thought should be in (ISO 639-3).
    pub target_language: Option<String>,
    /// Share of the chain of thought's words in the target language (DeepSeek-R1's
    /// language consistency).
    pub target_language_ratio: Option<f64>,
    /// Words of the chain of thought per language, most first.
    pub language_mix: Vec<(String, usize)>,
    pub backtracks: usize,
    /// Backtracks per 1000 chain-of-thought tokens.
    pub backtracks_per_1k: f64,
    /// Decode speed, from the run's timings or else the steps' timestamps.
    pub tok_s: Option<f64>,
    pub moe: Option<MoeStats>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MoeStats {
    pub experts: u32,
    pub layers: Vec<LayerUsage>,
    /// Mean over tokens and layers of the entropy of the normalized gate weights (nats).
    pub mean_routing_entropy: Option<f64>,
}

/// How often each expert of one layer was chosen.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LayerUsage {
    pub layer: u16,
    /// Choices per expert id.
    pub counts: Vec<u64>,
    /// Entropy (nats) of the usage distribution.
    pub usage_entropy: f64,
    /// `usage_entropy / ln(experts)`: 1 is perfectly balanced.
    pub balance: f64,
    pub mean_gate_entropy: Option<f64>,
}

/// The name of a flag kind as the CLI and JSON spell it.
fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.digits$}"))
}

/// The statistics as label/value pairs: `thinkdbg stats`, `diff --stat` and the Markdown
/// and HTML exports' table.
pub fn rows(s: &RunStats) -> Vec<(&'static str, String)> {
    let mix: Vec<String> =
        s.language_mix.iter().map(|(l, n)| format!("{} {n}", lang_name(l))).collect();
    let flags: Vec<String> = s.flags_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    vec![
        ("tokens", format!("{} (think {}, answer {})", s.tokens, s.think_tokens, s.answer_tokens)),
        ("words / sentences", format!("{} / {}", s.words, s.sentences)),
        ("reasoning steps", s.reasoning_steps.to_string()),
        ("mean logprob", opt(s.mean_logprob, 4)),
        ("perplexity", opt(s.perplexity, 3)),
        ("mean entropy (nats)", opt(s.mean_entropy, 4)),
        ("target language", s.target_language.as_deref().map_or("-".into(), lang_name)),
        ("target-language ratio", opt(s.target_language_ratio, 3)),
        ("language mix (words)", if mix.is_empty() { "-".into() } else { mix.join(", ") }),
        ("backtracks", format!("{} ({:.2} per 1k tokens)", s.backtracks, s.backtracks_per_1k)),
        ("flags", if flags.is_empty() { "none".into() } else { flags.join(", ") }),
        ("decode tok/s", opt(s.tok_s, 1)),
        ("routing entropy", opt(s.moe.as_ref().and_then(|m| m.mean_routing_entropy), 4)),
    ]
}

/// Flags per kind name, most frequent first.
pub fn flags_by_kind(flags: &[Flag]) -> Vec<(String, usize)> {
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for f in flags {
        *by_kind.entry(f.kind.as_str().into_owned()).or_default() += 1;
    }
    let mut out: Vec<(String, usize)> = by_kind.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for v in values.filter(|v| v.is_finite()) {
        sum += v;
        n += 1;
    }
    (n > 0).then(|| sum / n as f64)
}

/// The statistics that depend on steps, flags and routing alone; the caller fills in the
/// segmentation and language figures.
pub fn basic(run: &Run, steps: &[Step], flags: &[Flag], routing: &[(u32, Routing)]) -> RunStats {
    let think_tokens = steps.iter().filter(|s| s.phase == Phase::Think).count();
    let mean_logprob = mean(steps.iter().map(|s| f64::from(s.logprob)));
    let flags_by_kind = flags_by_kind(flags);
    let backtracks = flags.iter().filter(|f| f.kind == FlagKind::Backtrack).count();
    let cot_tokens = if think_tokens > 0 { think_tokens } else { steps.len() };
    let tok_s = Some(run.timings.decode_tok_s()).filter(|v| *v > 0.0).or_else(|| {
        let (first, last) = (steps.first()?, steps.last()?);
        let us = last.t_us.checked_sub(first.t_us).filter(|us| *us > 0)?;
        Some((steps.len() - 1) as f64 / (us as f64 / 1e6))
    });
    RunStats {
        tokens: steps.len(),
        think_tokens,
        answer_tokens: steps.len() - think_tokens,
        mean_logprob,
        perplexity: mean_logprob.map(|m| (-m).exp()),
        mean_entropy: mean(steps.iter().map(|s| f64::from(s.entropy))),
        flags_by_kind,
        backtracks,
        backtracks_per_1k: if cot_tokens == 0 {
            0.0
        } else {
            backtracks as f64 * 1000.0 / cot_tokens as f64
        },
        tok_s,
        moe: moe(run, routing),
        ..RunStats::default()
    }
}

fn entropy_of(p: impl Iterator<Item = f64>) -> f64 {
    -p.filter(|p| *p > 0.0).map(|p| p * p.ln()).sum::<f64>()
}

/// Expert usage per layer and routing entropy; `None` for a run without routing.
pub fn moe(run: &Run, routing: &[(u32, Routing)]) -> Option<MoeStats> {
    if routing.is_empty() {
        return None;
    }
    let max_id = routing
        .iter()
        .flat_map(|(_, r)| r.layers.iter().flat_map(|l| l.experts.iter().copied()))
        .max()
        .map_or(0, |m| u32::from(m) + 1);
    let experts = run.model.experts.max(max_id);
    let mut counts: BTreeMap<u16, (Vec<u64>, f64, usize)> = BTreeMap::new();
    for (_, r) in routing {
        for l in &r.layers {
            let e = counts.entry(l.layer).or_insert_with(|| (vec![0; experts as usize], 0.0, 0));
            for &x in &l.experts {
                if let Some(c) = e.0.get_mut(usize::from(x)) {
                    *c += 1;
                }
            }
            if let Some(w) = &l.weights {
                let sum: f64 = w.iter().map(|v| f64::from(*v)).filter(|v| *v > 0.0).sum();
                if sum > 0.0 {
                    e.1 += entropy_of(w.iter().map(|v| f64::from(*v) / sum));
                    e.2 += 1;
                }
            }
        }
    }
    let (mut gate_sum, mut gate_n) = (0.0, 0usize);
    let layers = counts
        .into_iter()
        .map(|(layer, (counts, g, gn))| {
            gate_sum += g;
            gate_n += gn;
            let total: u64 = counts.iter().sum();
            let usage_entropy = if total == 0 {
                0.0
            } else {
                entropy_of(counts.iter().map(|&c| c as f64 / total as f64))
            };
            let balance = if experts > 1 { usage_entropy / f64::from(experts).ln() } else { 1.0 };
            LayerUsage {
                layer,
                counts,
                usage_entropy,
                balance,
                mean_gate_entropy: (gn > 0).then(|| g / gn as f64),
            }
        })
        .collect();
    Some(MoeStats {
        experts,
        layers,
        mean_routing_entropy: (gate_n > 0).then(|| gate_sum / gate_n as f64),
    })
}
