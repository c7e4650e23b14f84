//! Repetition loops at every level: token n-grams (`flags::repetition`) and whole sentences or
//! lines compared with their whitespace collapsed, which catch a loop whose token period is
//! not constant (the same sentence separated sometimes by a space, sometimes by a blank line).
//! Entropy spikes inside a loop (each cycle's first token) are folded into it. Pure functions
//! over steps, their text and segmentation; depends on `trace` only.

use std::collections::HashMap;
use std::ops::Range;

use super::config::RepetitionConfig;
use super::flags::{auto, quote, repetition as token_loops};
use super::segment::Segments;
use super::text::StepText;
use crate::trace::{Flag, FlagKind, Origin, Severity, Step};

/// Every repetition loop of a run: token n-gram loops and sentence or line loops, the longest
/// kept where they overlap.
pub fn repetition(
    steps: &[Step],
    text: &StepText,
    seg: &Segments,
    cfg: &RepetitionConfig,
) -> Vec<Flag> {
    let mut cands = token_loops(steps, cfg);
    cands.extend(sentence_loops(text, seg, steps.len(), cfg));
    // Longest first; a token loop wins a tie (it is the more precise description).
    cands.sort_by_key(|f| std::cmp::Reverse(f.end - f.start));
    let mut taken: Vec<Flag> = Vec::new();
    for c in cands {
        if taken.iter().all(|t| c.end <= t.start || t.end <= c.start) {
            taken.push(c);
        }
    }
    taken.sort_by_key(|f| (f.start, f.end));
    taken
}

/// A sentence (or line) as compared: its words joined by single spaces, without the think
/// tags a first or last sentence may hold.
fn normalized(s: &str) -> String {
    let s = s.replace("<think>", " ").replace("</think>", " ");
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One repeated sentence: the sentences (indices into `Segments::sentences`) where it occurs,
/// each at most `sentence_window` sentences after the one before.
struct Repeat<'a> {
    key: &'a str,
    at: Vec<usize>,
}

/// Sentences and lines (whitespace-insensitive) repeated at least `min_repeats` times in a
/// row or at most `sentence_window` sentences apart; overlapping repeats (a loop of several
/// sentences) form one loop.
pub fn sentence_loops(
    text: &StepText,
    seg: &Segments,
    n_steps: usize,
    cfg: &RepetitionConfig,
) -> Vec<Flag> {
    let keys: Vec<String> =
        seg.sentences.iter().map(|r| normalized(&text.text[text.bytes_of(r.clone())])).collect();
    let mut seen: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, k) in keys.iter().enumerate() {
        if k.chars().count() >= cfg.min_sentence_chars {
            seen.entry(k.as_str()).or_default().push(i);
        }
    }
    let window = cfg.sentence_window.max(1);
    let mut repeats: Vec<Repeat> = Vec::new();
    for (key, at) in seen {
        for group in at.chunk_by(|a, b| b - a <= window) {
            if group.len() >= cfg.min_repeats {
                repeats.push(Repeat { key, at: group.to_vec() });
            }
        }
    }
    repeats.sort_by_key(|r| r.at[0]);
    // Overlapping repeats (sentence indices interleaved) are one loop.
    let mut loops: Vec<Vec<Repeat>> = Vec::new();
    for r in repeats {
        match loops.last_mut() {
            Some(l) if l.iter().any(|o| o.at.last().is_some_and(|&e| r.at[0] <= e)) => l.push(r),
            _ => loops.push(vec![r]),
        }
    }
    loops
        .into_iter()
        .filter_map(|l| {
            let first = l.iter().filter_map(|r| r.at.first()).min()?;
            let last = l.iter().filter_map(|r| r.at.last()).max()?;
            let main = l.iter().max_by_key(|r| (r.at.len(), std::cmp::Reverse(r.at[0])))?;
            let mut span = seg.sentences[*first].start..seg.sentences[*last].end;
            // A copy cut off by the end of the output is part of the loop.
            if *last + 2 == keys.len()
                && !keys[last + 1].is_empty()
                && main.key.starts_with(keys[last + 1].as_str())
            {
                span.end = seg.sentences[last + 1].end;
            }
            Some(loop_flag(span, main, l.len(), n_steps, cfg))
        })
        .collect()
}

fn loop_flag(
    span: Range<usize>,
    main: &Repeat,
    sentences: usize,
    n_steps: usize,
    cfg: &RepetitionConfig,
) -> Flag {
    let repeats = main.at.len();
    let period = (span.end - span.start) / repeats.max(1);
    // Ending less than one cycle before the end: the loop ran until the output stopped.
    let to_end = n_steps - span.end.min(n_steps) < period.max(1);
    let severity =
        if repeats >= cfg.error_repeats || to_end { Severity::Error } else { Severity::Warn };
    let ends_sentence = main.key.ends_with(['.', '!', '?', '…', '。', '！', '？', '；', ':']);
    let what = match (sentences, ends_sentence) {
        (1, true) => "sentence".to_string(),
        (1, false) => "line".to_string(),
        (n, _) => format!("{n} sentences"),
    };
    let detail = format!(
        "{what} repeated {repeats}×{}: {}",
        if to_end { " until the output ends" } else { "" },
        quote(main.key, 40)
    );
    auto(span, FlagKind::Repetition, severity, detail)
}

/// Drops the automatic entropy spikes that start inside an automatic repetition loop (each
/// cycle's first token is surprising once more) and says in the loop's detail how many.
pub fn fold_spikes(flags: Vec<Flag>) -> Vec<Flag> {
    let loops: Vec<Range<u32>> = flags
        .iter()
        .filter(|f| f.kind == FlagKind::Repetition && f.origin == Origin::Auto)
        .map(|f| f.start..f.end)
        .collect();
    let mut folded = vec![0usize; loops.len()];
    let mut out: Vec<Flag> = Vec::with_capacity(flags.len());
    for f in flags {
        if f.kind == FlagKind::EntropySpike && f.origin == Origin::Auto {
            if let Some(k) = loops.iter().position(|l| l.contains(&f.start)) {
                folded[k] += 1;
                continue;
            }
        }
        out.push(f);
    }
    let mut k = 0;
    for f in &mut out {
        if f.kind == FlagKind::Repetition && f.origin == Origin::Auto {
            let n = folded[k];
            k += 1;
            if n > 0 {
                let s = if n == 1 { "" } else { "s" };
                f.detail.push_str(&format!(" ({n} entropy spike{s} folded in)"));
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "loops_tests.rs"]
mod tests;
