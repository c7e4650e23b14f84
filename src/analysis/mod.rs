//! Analysis of recorded runs: segmentation (think/answer, words, sentences, reasoning steps),
//! automatic flags (language switch, low confidence, entropy spike, repetition at token and
//! sentence level with the spikes inside a loop folded into it, backtracking,
//! think integrity, answer mismatch), run statistics, DeepConf confidence (`confidence`) and
//! forking tokens (`forks`), cognitive experts (`experts`), under thresholds from the config
//! file. Pure functions over `trace` types; must not depend on `store`, `tui` or `engine`.

pub mod answer;
pub mod confidence;
pub mod config;
pub mod error;
pub mod experts;
pub mod flags;
pub mod forks;
pub mod integrity;
pub mod language;
pub mod loops;
pub mod segment;
pub mod stats;
#[cfg(test)]
pub(crate) mod test_util;
pub mod text;

use serde::{Deserialize, Serialize};

pub use config::AnalysisConfig;
pub use error::{Error, Result};
pub use segment::{segment, ReasoningStep, Segments};
pub use stats::RunStats;

use crate::trace::{Flag, FlagKind, Origin, Routing, Run, Severity, Step};
use text::StepText;

/// Everything the analysis finds in one run.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub segments: Segments,
    /// Automatic flags, ordered by start step.
    pub flags: Vec<Flag>,
    pub stats: RunStats,
}

/// What the store keeps beside a run's flags: the statistics and the fingerprint of the
/// settings they were computed under (`AnalysisConfig::fingerprint`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAnalysis {
    pub fingerprint: String,
    /// Steps the analysis saw; a run with more steps now is analysed again.
    pub steps: usize,
    pub stats: RunStats,
}

/// The text a run's target language is read from: its last user message, else the last user
/// turn of its rendered prompt (see `user_text_of_rendered`).
pub fn prompt_text(run: &Run) -> String {
    if let Some(m) = run.messages.iter().rev().find(|m| m.role == "user") {
        return m.content.clone();
    }
    user_text_of_rendered(&run.rendered_prompt)
}

/// Where a user turn opens and ends in the chat formats models are prompted in by hand
/// (`--raw`): ChatML (Qwen, SmolLM), Llama 3, DeepSeek (R1 and its distills), Gemma,
/// Phi-3, and Llama 2 / Mistral `[INST]`.
const USER_TURNS: &[(&str, &[&str])] = &[
    ("<|im_start|>user", &["<|im_end|>", "<|im_start|>"]),
    ("<|start_header_id|>user<|end_header_id|>", &["<|eot_id|>", "<|start_header_id|>"]),
    ("<｜User｜>", &["<｜Assistant｜>", "<｜end▁of▁sentence｜>"]),
    ("<start_of_turn>user", &["<end_of_turn>", "<start_of_turn>"]),
    ("<|user|>", &["<|end|>", "<|assistant|>"]),
    ("[INST]", &["[/INST]"]),
];

/// The last user turn of a rendered prompt (the text a `--raw` run was given), without its
/// special tokens; the whole text without them when no user turn is recognised.
pub fn user_text_of_rendered(rendered: &str) -> String {
    let last = USER_TURNS
        .iter()
        .filter_map(|(open, closes)| rendered.rfind(open).map(|at| (at + open.len(), *closes)))
        .max_by_key(|(at, _)| *at);
    let turn = match last {
        Some((from, closes)) => {
            let rest = &rendered[from..];
            let end = closes.iter().filter_map(|c| rest.find(c)).min().unwrap_or(rest.len());
            &rest[..end]
        }
        None => rendered,
    };
    without_special_tokens(turn).trim().to_string()
}

/// `text` with special tokens (`<|...|>`, `<｜...｜>`, `<think>`, `</think>`) replaced by spaces.
fn without_special_tokens(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('<') {
        out.push_str(&rest[..at]);
        let tag_end = rest[at..].find('>').filter(|e| {
            let tag = &rest[at..at + e + 1];
            tag.starts_with("<|") || tag.starts_with("<｜") || tag == "<think>" || tag == "</think>"
        });
        match tag_end {
            Some(e) => {
                out.push(' ');
                rest = &rest[at + e + 1..];
            }
            None => {
                out.push('<');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Analyses a run: segments it, flags it and computes its statistics. `prompt_text` is read
/// for the target language (see `prompt_text`); `routing` is empty for dense runs.
pub fn analyze(
    run: &Run,
    prompt_text: &str,
    steps: &[Step],
    routing: &[(u32, Routing)],
    cfg: &AnalysisConfig,
) -> Analysis {
    let text = StepText::new(steps);
    let segments = segment::segment_text(&text, steps);
    let cot = segments.think.clone().unwrap_or(0..steps.len());
    let lang_cfg = &cfg.language;
    let target = if lang_cfg.target.is_empty() {
        let p = language::chunks(prompt_text, 0..prompt_text.len(), lang_cfg, None);
        language::dominant(&p)
    } else {
        Some(lang_cfg.target.clone())
    };
    let cot_bytes = text.bytes_of(cot.clone());
    let mut target = target;
    let cot_chunks = language::chunks(&text.text, cot_bytes, lang_cfg, target.as_deref());
    if target.is_none() {
        target = language::dominant(&cot_chunks);
    }
    let mut flags = Vec::new();
    if let Some(t) = &target {
        let mut regions = vec![(cot.clone(), cot_chunks.clone())];
        if let Some(a) =
            segments.answer.clone().filter(|a| segments.think.is_some() && !a.is_empty())
        {
            let ch = language::chunks(&text.text, text.bytes_of(a.clone()), lang_cfg, Some(t));
            regions.push((a, ch));
        }
        for (_, chunks) in &regions {
            for sw in language::switches(chunks, t, lang_cfg.min_switch_words) {
                let detail = format!(
                    "{} → {}, {} words: {}",
                    language::lang_name(t),
                    language::lang_name(&sw.to),
                    sw.words,
                    flags::quote(&text.text[sw.bytes.clone()], 40)
                );
                let span = text.steps_of(sw.bytes.clone());
                flags.push(flags::auto(span, FlagKind::LanguageSwitch, Severity::Warn, detail));
            }
        }
    }
    flags.extend(flags::low_confidence(steps, &cfg.confidence));
    flags.extend(flags::entropy_spikes(steps, &cfg.entropy));
    flags.extend(loops::repetition(steps, &text, &segments, &cfg.repetition));
    flags.extend(flags::backtracks(&text, &segments));
    flags.extend(integrity::think_integrity(run, steps, &text, &segments));
    if cfg.answer.check_mismatch {
        flags.extend(integrity::answer_mismatch(&text, &segments));
    }
    flags.sort_by_key(|f| (f.start, f.end));
    let flags = loops::fold_spikes(flags);
    let mut stats = stats::basic(run, steps, &flags, routing);
    // Backtracks per 1k count the chain of thought only.
    stats.backtracks = flags
        .iter()
        .filter(|f| f.kind == FlagKind::Backtrack && (f.start as usize) < cot.end)
        .count();
    let cot_tokens = cot.len().max(1);
    stats.backtracks_per_1k = stats.backtracks as f64 * 1000.0 / cot_tokens as f64;
    stats.words = segments.words.len();
    stats.sentences = segments.sentences.len();
    stats.reasoning_steps = segments.steps.len();
    stats.language_mix = language::mix(&cot_chunks);
    let total: usize = stats.language_mix.iter().map(|(_, n)| n).sum();
    stats.target_language_ratio = target.as_ref().filter(|_| total > 0).map(|t| {
        let hit = stats.language_mix.iter().find(|(l, _)| l == t).map_or(0, |(_, n)| *n);
        hit as f64 / total as f64
    });
    stats.target_language = target;
    Analysis { segments, flags, stats }
}

/// A run's flags after a new analysis: the new automatic flags and every user flag kept.
pub fn merge_flags(old: &[Flag], auto: &[Flag]) -> Vec<Flag> {
    let mut out: Vec<Flag> = old.iter().filter(|f| f.origin == Origin::User).cloned().collect();
    out.extend(auto.iter().cloned());
    out.sort_by_key(|f| (f.start, f.end));
    out
}

#[cfg(test)]
#[path = "analysis_tests.rs"]
mod tests;
