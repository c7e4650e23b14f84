//! The step map: two runs' reasoning steps (`analysis::segment`) aligned by content. Steps
//! with the same text pair first (Myers over the whitespace-normalized texts); within each
//! stretch that differs, steps pair by word-set similarity (the cosine of the two sets, so a
//! short step inside a long one of the other run still pairs) with a weighted
//! alignment that keeps their order, leaving the steps only one run took unpaired. Each step
//! carries its flags (backtrack, language switch, low confidence, loop) and its mean
//! confidence. Depends on `analysis` and `trace`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::time::Instant;

use similar::{capture_diff_slices_deadline, Algorithm, DiffOp};

use crate::analysis::segment::MARKERS;
use crate::analysis::text::{is_ideographic, StepText};
use crate::analysis::Segments;
use crate::trace::{Flag, FlagKind, Step};

/// Least similarity for two different steps to pair.
pub const MIN_SIMILARITY: f64 = 0.3;

/// Largest stretch (steps of A × steps of B) aligned by similarity; past it steps pair by
/// position.
const MAX_CELLS: usize = 4_000_000;

/// What a reasoning step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StepFlag {
    Backtrack,
    LanguageSwitch,
    LowConfidence,
    Loop,
}

impl StepFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            StepFlag::Backtrack => "backtrack",
            StepFlag::LanguageSwitch => "language_switch",
            StepFlag::LowConfidence => "low_confidence",
            StepFlag::Loop => "loop",
        }
    }

    /// One character for tables: `↩` backtrack, `文` language switch, `?` low confidence,
    /// `⟳` loop.
    pub fn symbol(self) -> &'static str {
        match self {
            StepFlag::Backtrack => "↩",
            StepFlag::LanguageSwitch => "文",
            StepFlag::LowConfidence => "?",
            StepFlag::Loop => "⟳",
        }
    }
}

/// One reasoning step of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct StepInfo {
    /// Its half-open range of token steps.
    pub span: Range<usize>,
    pub marker: Option<String>,
    pub flags: Vec<StepFlag>,
    /// Mean probability of its tokens (`None` without logprobs).
    pub confidence: Option<f64>,
}

/// A row of the step map: a step of A and one of B that match, or a step only one run took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepMatch {
    /// Indices into each run's `StepInfo` list.
    pub a: Option<usize>,
    pub b: Option<usize>,
    /// Word-set similarity of the two steps (1 for equal text, 0 for a step on one side).
    pub similarity: f64,
}

impl StepMatch {
    /// Both runs took this step, word for word.
    pub fn same(&self) -> bool {
        self.a.is_some() && self.b.is_some() && self.similarity >= 1.0
    }
}

/// The reasoning steps of a run with their flags and confidence.
pub fn step_infos(steps: &[Step], seg: &Segments, flags: &[Flag]) -> Vec<StepInfo> {
    seg.steps
        .iter()
        .map(|st| {
            let (s, e) = (st.span.start, st.span.end);
            let mut out: Vec<StepFlag> = Vec::new();
            let backtracking = st
                .marker
                .as_ref()
                .is_some_and(|m| MARKERS.iter().any(|k| k.text == m && k.backtrack));
            if backtracking {
                out.push(StepFlag::Backtrack);
            }
            for f in flags {
                let (fs, fe) = (f.start as usize, f.end as usize);
                let overlaps = fs < e && fe > s;
                let kind = match f.kind {
                    FlagKind::Backtrack if (s..e).contains(&fs) => StepFlag::Backtrack,
                    FlagKind::LanguageSwitch if overlaps => StepFlag::LanguageSwitch,
                    FlagKind::LowConfidence if overlaps => StepFlag::LowConfidence,
                    FlagKind::Repetition if overlaps => StepFlag::Loop,
                    _ => continue,
                };
                out.push(kind);
            }
            out.sort();
            out.dedup();
            let probs: Vec<f64> = steps
                .get(s..e)
                .unwrap_or(&[])
                .iter()
                .filter(|x| !x.logprob.is_nan())
                .map(|x| f64::from(x.logprob).exp())
                .collect();
            let confidence =
                (!probs.is_empty()).then(|| probs.iter().sum::<f64>() / probs.len() as f64);
            StepInfo { span: st.span.clone(), marker: st.marker.clone(), flags: out, confidence }
        })
        .collect()
}

/// The words of a text as a sorted set of hashes: lower-case alphanumeric runs, and each
/// ideograph on its own (Chinese has no spaces).
fn word_set(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let mut word = String::new();
    let hash = |w: &str| {
        let mut h = DefaultHasher::new();
        w.hash(&mut h);
        h.finish()
    };
    for c in text.chars().chain(std::iter::once(' ')) {
        if is_ideographic(c) {
            if !word.is_empty() {
                out.push(hash(&word));
                word.clear();
            }
            out.push(hash(c.encode_utf8(&mut [0; 4])));
        } else if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if !word.is_empty() {
            out.push(hash(&word));
            word.clear();
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The similarity of two sorted sets: shared words over the geometric mean of their sizes
/// (1 for equal sets, 0 for disjoint ones).
fn similarity(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut both) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                both += 1;
                i += 1;
                j += 1;
            }
        }
    }
    both as f64 / ((a.len() * b.len()) as f64).sqrt()
}

/// Aligns the reasoning steps of two runs by content; the similarity alignment of a
/// differing stretch gives way to pairing by position past `deadline`.
pub fn align(
    ta: &StepText,
    sa: &Segments,
    tb: &StepText,
    sb: &Segments,
    deadline: Instant,
) -> Vec<StepMatch> {
    let texts = |t: &StepText, s: &Segments| -> Vec<String> {
        s.steps
            .iter()
            .map(|r| {
                t.text[t.bytes_of(r.span.clone())].split_whitespace().collect::<Vec<_>>().join(" ")
            })
            .collect()
    };
    let (xa, xb) = (texts(ta, sa), texts(tb, sb));
    let mut out = Vec::new();
    for op in capture_diff_slices_deadline(Algorithm::Myers, &xa, &xb, Some(deadline)) {
        let (ra, rb) = (op.old_range(), op.new_range());
        if matches!(op, DiffOp::Equal { .. }) {
            for k in 0..ra.len() {
                out.push(StepMatch {
                    a: Some(ra.start + k),
                    b: Some(rb.start + k),
                    similarity: 1.0,
                });
            }
            continue;
        }
        let wa: Vec<Vec<u64>> = xa[ra.clone()].iter().map(|s| word_set(s)).collect();
        let wb: Vec<Vec<u64>> = xb[rb.clone()].iter().map(|s| word_set(s)).collect();
        let pairs = if wa.len() * wb.len() <= MAX_CELLS && Instant::now() < deadline {
            best_pairs(&wa, &wb)
        } else {
            by_position(&wa, &wb)
        };
        let (mut i, mut j) = (0, 0);
        for (pi, pj, sim) in pairs {
            out.extend((i..pi).map(|x| StepMatch {
                a: Some(ra.start + x),
                b: None,
                similarity: 0.0,
            }));
            out.extend((j..pj).map(|y| StepMatch {
                a: None,
                b: Some(rb.start + y),
                similarity: 0.0,
            }));
            out.push(StepMatch { a: Some(ra.start + pi), b: Some(rb.start + pj), similarity: sim });
            (i, j) = (pi + 1, pj + 1);
        }
        out.extend((i..wa.len()).map(|x| StepMatch {
            a: Some(ra.start + x),
            b: None,
            similarity: 0.0,
        }));
        out.extend((j..wb.len()).map(|y| StepMatch {
            a: None,
            b: Some(rb.start + y),
            similarity: 0.0,
        }));
    }
    out
}

/// The pairs `(i, j, similarity)`, in order, of greatest total similarity, each at least
/// `MIN_SIMILARITY` (a weighted longest common subsequence).
fn best_pairs(wa: &[Vec<u64>], wb: &[Vec<u64>]) -> Vec<(usize, usize, f64)> {
    let (n, m) = (wa.len(), wb.len());
    let w = m + 1;
    let mut score = vec![0f32; (n + 1) * w];
    let mut sims = vec![0f32; n * m];
    for i in 1..=n {
        for j in 1..=m {
            let s = similarity(&wa[i - 1], &wb[j - 1]) as f32;
            sims[(i - 1) * m + j - 1] = s;
            let mut best = score[(i - 1) * w + j].max(score[i * w + j - 1]);
            if f64::from(s) >= MIN_SIMILARITY {
                best = best.max(score[(i - 1) * w + j - 1] + s);
            }
            score[i * w + j] = best;
        }
    }
    let (mut i, mut j) = (n, m);
    let mut out = Vec::new();
    while i > 0 && j > 0 {
        let s = sims[(i - 1) * m + j - 1];
        if f64::from(s) >= MIN_SIMILARITY && score[i * w + j] == score[(i - 1) * w + j - 1] + s {
            out.push((i - 1, j - 1, f64::from(s)));
            i -= 1;
            j -= 1;
        } else if score[(i - 1) * w + j] >= score[i * w + j - 1] {
            i -= 1;
        } else {
            j -= 1;
        }
    }
    out.reverse();
    out
}

/// Steps paired by position where similar enough (for stretches too long to align).
fn by_position(wa: &[Vec<u64>], wb: &[Vec<u64>]) -> Vec<(usize, usize, f64)> {
    wa.iter()
        .zip(wb)
        .enumerate()
        .filter_map(|(k, (x, y))| {
            let s = similarity(x, y);
            (s >= MIN_SIMILARITY).then_some((k, k, s))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_sets_and_similarity() {
        let a = word_set("Let me add 2 and 2.");
        let b = word_set("let me ADD 2, and 2!");
        assert_eq!(similarity(&a, &b), 1.0);
        let c = word_set("等等，我再检查一下");
        assert_eq!(c.len(), 7, "等 twice, the comma no word");
        assert_eq!(similarity(&a, &c), 0.0);
        let d = word_set("Let me add 3 and 3.");
        assert!((similarity(&a, &d) - 4.0 / 5.0).abs() < 1e-9);
        // A short step inside a long one still pairs.
        let long =
            word_set("first we list the numbers then we add them all up and check the sum twice");
        let short = word_set("add them up");
        assert!(similarity(&long, &short) > MIN_SIMILARITY);
    }

    #[test]
    fn best_pairs_keep_order_and_skip_dissimilar_steps() {
        let s = |t: &str| word_set(t);
        let wa = vec![s("first compute the sum"), s("then halve it"), s("answer is ten")];
        let wb =
            vec![s("first compute the total sum"), s("wait this is wrong"), s("answer is ten")];
        let p = best_pairs(&wa, &wb);
        assert_eq!(p.iter().map(|x| (x.0, x.1)).collect::<Vec<_>>(), vec![(0, 0), (2, 2)]);
        assert!(p[0].2 > 0.5 && p[1].2 == 1.0);
    }
}
