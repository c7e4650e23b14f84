//! The token-level automatic flags: low confidence, entropy spikes, repetition loops and
//! backtracking. Pure functions over `trace::Step`s and the segmentation; depends on `trace`.

use std::ops::Range;

use super::config::{ConfidenceConfig, EntropyConfig, RepetitionConfig};
use super::segment::{Segments, MARKERS};
use super::text::StepText;
use crate::trace::{Flag, FlagKind, Origin, Severity, Step};

/// An automatic flag over the steps `span`.
pub fn auto(span: Range<usize>, kind: FlagKind, severity: Severity, detail: String) -> Flag {
    Flag {
        start: span.start as u32,
        end: span.end as u32,
        kind,
        severity,
        detail,
        origin: Origin::Auto,
    }
}

/// Up to `max` characters of `text` in single quotes, with an ellipsis when cut.
pub fn quote(text: &str, max: usize) -> String {
    let t = text.trim();
    let mut s: String = t.chars().take(max).collect();
    if t.chars().count() > max {
        s.push('…');
    }
    format!("'{s}'")
}

fn joined(steps: &[Step]) -> String {
    steps.iter().map(|s| s.text.as_str()).collect()
}

/// Indices (sorted) grouped into spans whose members are at most `max_gap` steps apart.
fn clusters(indices: &[usize], max_gap: usize) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    for &i in indices {
        match out.last_mut() {
            Some(c) if c.last().is_some_and(|&l| i - l <= max_gap + 1) => c.push(i),
            _ => out.push(vec![i]),
        }
    }
    out
}

/// Spans of unlikely chosen tokens.
pub fn low_confidence(steps: &[Step], cfg: &ConfidenceConfig) -> Vec<Flag> {
    let low: Vec<usize> = (0..steps.len())
        .filter(|&i| steps[i].logprob.is_finite() && steps[i].logprob < cfg.low_logprob)
        .collect();
    let mut out = Vec::new();
    for c in clusters(&low, cfg.max_gap) {
        let Some(&worst) =
            c.iter().min_by(|&&a, &&b| steps[a].logprob.total_cmp(&steps[b].logprob))
        else {
            continue;
        };
        let min = steps[worst].logprob;
        let severe = min < cfg.severe_logprob;
        if c.len() < cfg.min_tokens && !severe {
            continue;
        }
        let (first, last) = (c[0], c[c.len() - 1]);
        let detail = format!(
            "{} unlikely token{}, lowest p={:.3} at {}",
            c.len(),
            if c.len() == 1 { "" } else { "s" },
            f64::from(min).exp(),
            quote(&steps[worst].text, 20)
        );
        let severity = if severe { Severity::Warn } else { Severity::Info };
        out.push(auto(first..last + 1, FlagKind::LowConfidence, severity, detail));
    }
    out
}

/// Steps whose entropy is far above the rolling mean of the steps before them.
pub fn entropy_spikes(steps: &[Step], cfg: &EntropyConfig) -> Vec<Flag> {
    let mut prefix = Vec::with_capacity(steps.len() + 1);
    prefix.push(0.0f64);
    for s in steps {
        let e = if s.entropy.is_finite() { f64::from(s.entropy) } else { 0.0 };
        prefix.push(prefix[prefix.len() - 1] + e);
    }
    // (step, entropy, rolling mean) of every spike, in order.
    let mut spikes: Vec<(usize, f64, f64)> = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        if i < cfg.warmup.max(1) || !s.entropy.is_finite() {
            continue;
        }
        let from = i.saturating_sub(cfg.window);
        let mean = (prefix[i] - prefix[from]) / (i - from) as f64;
        let e = f64::from(s.entropy);
        if e > f64::from(cfg.min_nats) && e > f64::from(cfg.factor) * mean {
            spikes.push((i, e, mean));
        }
    }
    let mut out = Vec::new();
    let ratio_of = |r: &(usize, f64, f64)| r.1 / r.2.max(1e-6);
    for c in spikes.chunk_by(|a, b| b.0 == a.0 + 1) {
        let Some(&(at, e, mean)) = c.iter().max_by(|a, b| ratio_of(a).total_cmp(&ratio_of(b)))
        else {
            continue;
        };
        let ratio = e / mean.max(1e-6);
        let severity =
            if ratio >= 2.0 * f64::from(cfg.factor) { Severity::Warn } else { Severity::Info };
        let detail = format!(
            "entropy {e:.2} nats at {}, {}× the rolling {mean:.2}",
            quote(&steps[at].text, 20),
            if ratio >= 100.0 { ">100".to_string() } else { format!("{ratio:.1}") }
        );
        out.push(auto(c[0].0..c[c.len() - 1].0 + 1, FlagKind::EntropySpike, severity, detail));
    }
    out
}

/// Token n-grams repeated back to back: for each period `p`, stretches where every token
/// equals the one `p` before; the longest stretches win, shorter periods break ties.
/// What repetition compares: the token id, or for steps whose id the source did not give
/// (servers), a hash of the text (all unknown ids are equal and would look like a loop).
fn token_key(s: &Step) -> u32 {
    if s.token_id != crate::trace::UNKNOWN_TOKEN {
        return s.token_id;
    }
    let h =
        s.text.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    // Kept apart from real ids, which are far below 2^31.
    h | 0x8000_0000
}

pub fn repetition(steps: &[Step], cfg: &RepetitionConfig) -> Vec<Flag> {
    let ids: Vec<u32> = steps.iter().map(token_key).collect();
    let n = ids.len();
    let mut cands: Vec<(usize, usize, usize)> = Vec::new(); // (start, end, period)
    for p in 1..=cfg.max_period.min(n / 2) {
        let mut run_start = None;
        for i in p..=n {
            if i < n && ids[i] == ids[i - p] {
                run_start.get_or_insert(i);
                continue;
            }
            if let Some(s) = run_start.take() {
                let (start, end) = (s - p, i);
                let len = end - start;
                if len >= cfg.min_tokens && len / p >= cfg.min_repeats {
                    cands.push((start, end, p));
                }
            }
        }
    }
    cands.sort_by(|a, b| (b.1 - b.0).cmp(&(a.1 - a.0)).then(a.2.cmp(&b.2)).then(a.0.cmp(&b.0)));
    let mut taken: Vec<(usize, usize, usize)> = Vec::new();
    for c in cands {
        if taken.iter().all(|t| c.1 <= t.0 || t.1 <= c.0) {
            taken.push(c);
        }
    }
    taken.sort();
    taken
        .into_iter()
        .map(|(start, end, p)| {
            let repeats = (end - start) / p;
            // Ending less than one period before the end: the loop ran until the output stopped.
            let to_end = n - end < p;
            let severity = if repeats >= cfg.error_repeats || to_end {
                Severity::Error
            } else {
                Severity::Warn
            };
            let detail = format!(
                "{p}-token phrase {} repeated {repeats}×{}",
                quote(&joined(&steps[start..start + p]), 40),
                if to_end { " until the output ends" } else { "" }
            );
            auto(start..end, FlagKind::Repetition, severity, detail)
        })
        .collect()
}

/// Phrases that take back what came before, wherever they occur in a sentence.
const INLINE_BACKTRACKS: &[&str] = &[
    "i made a mistake",
    "i made an error",
    "that's not right",
    "that is not right",
    "that's wrong",
    "that is wrong",
    "that doesn't seem right",
    "我算错了",
    "我错了",
    "这不对",
];

/// Reversals: reasoning steps opened by a backtracking marker ("Wait", "Actually", "等等")
/// and reversal phrases inside sentences, each flagged once over its sentence.
pub fn backtracks(text: &StepText, seg: &Segments) -> Vec<Flag> {
    let mut found: Vec<(Range<usize>, String)> = Vec::new();
    for st in &seg.steps {
        let Some(m) = &st.marker else { continue };
        if MARKERS.iter().any(|mk| mk.text == m && mk.backtrack) {
            found.push((sentence_at(seg, st.span.start), m.clone()));
        }
    }
    let lower = text.text.to_ascii_lowercase();
    for phrase in INLINE_BACKTRACKS {
        for (at, _) in lower.match_indices(phrase) {
            let span = sentence_at(seg, text.step_at(at));
            if !found.iter().any(|(r, _)| r.start <= span.start && span.start < r.end) {
                found.push((span, text.text[at..at + phrase.len()].to_string()));
            }
        }
    }
    found.sort_by_key(|(r, _)| r.start);
    let total = found.len();
    found
        .into_iter()
        .enumerate()
        .map(|(k, (span, what))| {
            let detail = format!("backtrack {} ({} of {total})", quote(&what, 30), k + 1);
            auto(span, FlagKind::Backtrack, Severity::Info, detail)
        })
        .collect()
}

/// The sentence holding step `i` (the step alone when none does).
pub fn sentence_at(seg: &Segments, i: usize) -> Range<usize> {
    let k = seg.sentences.partition_point(|r| r.end <= i);
    seg.sentences.get(k).filter(|r| r.start <= i).cloned().unwrap_or(i..i + 1)
}

#[cfg(test)]
#[path = "flags_tests.rs"]
mod tests;
