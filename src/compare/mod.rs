//! Comparison of two runs: an alignment with `similar` (by token ids when both runs share a
//! tokenizer, else by words) under a time budget, the first divergence with both choices and
//! their top-k lists, aligned reasoning steps, statistics side by side, whether the answers
//! agree and, for two MoE runs, per-layer expert-usage differences. Depends on `analysis` and
//! `trace`; must not depend on `store` or `tui`.

use std::ops::Range;
use std::time::{Duration, Instant};

use similar::{capture_diff_slices_deadline, Algorithm, DiffOp};

use crate::analysis::integrity::{disagree, stated_answer};
use crate::analysis::stats::MoeStats;
use crate::analysis::text::StepText;
use crate::analysis::{analyze, prompt_text, AnalysisConfig, RunStats, Segments};
use crate::trace::{Routing, Run, Step, TopToken};

/// One run as compared: its record, steps and routing (empty for dense runs).
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    pub run: &'a Run,
    pub steps: &'a [Step],
    pub routing: &'a [(u32, Routing)],
}

/// What the alignment compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlignBy {
    /// Token ids: both runs share a tokenizer.
    Tokens,
    /// Words: different tokenizers.
    Words,
}

/// One alignment operation over half-open step ranges of each run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlignOp {
    Equal {
        a: Range<usize>,
        b: Range<usize>,
    },
    /// Only in run A.
    Delete {
        a: Range<usize>,
        b_at: usize,
    },
    /// Only in run B.
    Insert {
        a_at: usize,
        b: Range<usize>,
    },
    Replace {
        a: Range<usize>,
        b: Range<usize>,
    },
}

impl AlignOp {
    pub fn a(&self) -> Range<usize> {
        match self {
            AlignOp::Equal { a, .. } | AlignOp::Delete { a, .. } | AlignOp::Replace { a, .. } => {
                a.clone()
            }
            AlignOp::Insert { a_at, .. } => *a_at..*a_at,
        }
    }

    pub fn b(&self) -> Range<usize> {
        match self {
            AlignOp::Equal { b, .. } | AlignOp::Insert { b, .. } | AlignOp::Replace { b, .. } => {
                b.clone()
            }
            AlignOp::Delete { b_at, .. } => *b_at..*b_at,
        }
    }
}

/// The chosen token of one run where the runs part, with its alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub step: usize,
    pub token_id: u32,
    pub text: String,
    pub logprob: f32,
    pub top: Vec<TopToken>,
}

/// Where the two runs first part; `None` on a side that has ended there.
#[derive(Debug, Clone, PartialEq)]
pub struct Divergence {
    pub a_step: usize,
    pub b_step: usize,
    pub a: Option<Choice>,
    pub b: Option<Choice>,
}

/// A pair of aligned reasoning steps (indices into each run's `Segments::steps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepPair {
    pub a: Option<usize>,
    pub b: Option<usize>,
    pub same: bool,
}

/// Expert usage of one layer in both runs, as shares of that layer's choices.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerDiff {
    pub layer: u16,
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    /// Total variation distance between the two usage distributions (0 to 1).
    pub distance: f64,
}

#[derive(Debug, Clone)]
pub struct Comparison {
    pub by: AlignBy,
    pub ops: Vec<AlignOp>,
    /// The alignment hit its time budget; `ops` is then valid but not minimal.
    pub budget_exceeded: bool,
    pub first_divergence: Option<Divergence>,
    pub steps: Vec<StepPair>,
    pub segments: (Segments, Segments),
    pub stats: (RunStats, RunStats),
    /// The stated final answers (`\boxed{}` or "the answer is ...") of each run.
    pub answers: (Option<String>, Option<String>),
    /// Whether the answers agree; `None` when either run states none.
    pub answers_agree: Option<bool>,
    pub moe: Option<Vec<LayerDiff>>,
}

impl Comparison {
    /// Steps of A and B in equal stretches, and in total.
    pub fn equal_steps(&self) -> (usize, usize) {
        self.ops
            .iter()
            .filter(|o| matches!(o, AlignOp::Equal { .. }))
            .fold((0, 0), |acc, o| (acc.0 + o.a().len(), acc.1 + o.b().len()))
    }
}

/// Whether two runs were tokenized alike: same model fingerprint, or same model name and
/// architecture when a fingerprint is missing.
pub fn same_tokenizer(a: &Run, b: &Run) -> bool {
    let (ma, mb) = (&a.model, &b.model);
    if !ma.fingerprint.is_empty() && !mb.fingerprint.is_empty() {
        return ma.fingerprint == mb.fingerprint;
    }
    !ma.name.is_empty() && ma.name == mb.name && ma.arch == mb.arch
}

/// Compares two dense runs under the default thresholds.
pub fn compare(a: (&Run, &[Step]), b: (&Run, &[Step]), budget: Duration) -> Comparison {
    let cfg = AnalysisConfig::default();
    compare_with(
        Side { run: a.0, steps: a.1, routing: &[] },
        Side { run: b.0, steps: b.1, routing: &[] },
        &cfg,
        budget,
    )
}

/// Compares two runs; the alignment gives up refining after `budget`.
pub fn compare_with(a: Side, b: Side, cfg: &AnalysisConfig, budget: Duration) -> Comparison {
    let deadline = Instant::now() + budget;
    let (ta, tb) = (StepText::new(a.steps), StepText::new(b.steps));
    let an_a = analyze(a.run, &prompt_text(a.run), a.steps, a.routing, cfg);
    let an_b = analyze(b.run, &prompt_text(b.run), b.steps, b.routing, cfg);
    // Runs from servers have no token ids (every id unknown): they align by words.
    let ids = |s: &[Step]| s.iter().all(|x| x.token_id != crate::trace::UNKNOWN_TOKEN);
    let by = if same_tokenizer(a.run, b.run) && ids(a.steps) && ids(b.steps) {
        AlignBy::Tokens
    } else {
        AlignBy::Words
    };
    let ops: Vec<AlignOp> = match by {
        AlignBy::Tokens => {
            let ia: Vec<u32> = a.steps.iter().map(|s| s.token_id).collect();
            let ib: Vec<u32> = b.steps.iter().map(|s| s.token_id).collect();
            capture_diff_slices_deadline(Algorithm::Myers, &ia, &ib, Some(deadline))
                .iter()
                .map(|op| to_align(op, |r| r, |r| r))
                .collect()
        }
        AlignBy::Words => {
            let (wa, wb) = (&an_a.segments.words, &an_b.segments.words);
            let words = |t: &StepText, w: &[Range<usize>]| -> Vec<String> {
                w.iter().map(|r| t.text[t.bytes_of(r.clone())].trim().to_string()).collect()
            };
            let (xa, xb) = (words(&ta, wa), words(&tb, wb));
            let ops = capture_diff_slices_deadline(Algorithm::Myers, &xa, &xb, Some(deadline));
            let to_steps = |w: &[Range<usize>], n: usize, r: Range<usize>| -> Range<usize> {
                // A word range covers the steps up to the next word, so ranges tile the run.
                let start = if r.start == 0 { 0 } else { w.get(r.start).map_or(n, |x| x.start) };
                let end = w.get(r.end).map_or(n, |x| x.start);
                start..end.max(start)
            };
            ops.iter()
                .map(|op| {
                    to_align(
                        op,
                        |r| to_steps(wa, a.steps.len(), r),
                        |r| to_steps(wb, b.steps.len(), r),
                    )
                })
                .collect()
        }
    };
    let budget_exceeded = Instant::now() > deadline;
    let first_divergence = divergence(&ops, a.steps, b.steps);
    let steps = align_steps(&ta, &an_a.segments, &tb, &an_b.segments);
    let answer_of = |t: &StepText, s: &Segments| {
        let r = s.answer.clone().or_else(|| (!t.is_empty()).then(|| 0..t.len()))?;
        stated_answer(&t.text, t.bytes_of(r))
    };
    let (sa, sb) = (answer_of(&ta, &an_a.segments), answer_of(&tb, &an_b.segments));
    let answers_agree = match (&sa, &sb) {
        (Some(x), Some(y)) => Some(!disagree(x, y) && (x.value == y.value || has_digit(&x.value))),
        _ => None,
    };
    let moe = match (&an_a.stats.moe, &an_b.stats.moe) {
        (Some(x), Some(y)) => Some(moe_diff(x, y)),
        _ => None,
    };
    Comparison {
        by,
        ops,
        budget_exceeded,
        first_divergence,
        steps,
        segments: (an_a.segments, an_b.segments),
        stats: (an_a.stats, an_b.stats),
        answers: (sa.map(|s| s.value), sb.map(|s| s.value)),
        answers_agree,
        moe,
    }
}

fn has_digit(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_digit())
}

fn to_align(
    op: &DiffOp,
    ma: impl Fn(Range<usize>) -> Range<usize>,
    mb: impl Fn(Range<usize>) -> Range<usize>,
) -> AlignOp {
    let (a, b) = (ma(op.old_range()), mb(op.new_range()));
    match op {
        DiffOp::Equal { .. } => AlignOp::Equal { a, b },
        DiffOp::Delete { .. } => AlignOp::Delete { a, b_at: b.start },
        DiffOp::Insert { .. } => AlignOp::Insert { a_at: a.start, b },
        DiffOp::Replace { .. } => AlignOp::Replace { a, b },
    }
}

fn choice(steps: &[Step], i: usize) -> Option<Choice> {
    steps.get(i).map(|s| Choice {
        step: i,
        token_id: s.token_id,
        text: s.text.clone(),
        logprob: s.logprob,
        top: s.top.clone(),
    })
}

fn divergence(ops: &[AlignOp], a: &[Step], b: &[Step]) -> Option<Divergence> {
    let op = ops.iter().find(|o| !matches!(o, AlignOp::Equal { .. }))?;
    let (ia, ib) = (op.a().start, op.b().start);
    Some(Divergence { a_step: ia, b_step: ib, a: choice(a, ia), b: choice(b, ib) })
}

/// Reasoning steps paired by their (whitespace-normalized) text.
fn align_steps(ta: &StepText, sa: &Segments, tb: &StepText, sb: &Segments) -> Vec<StepPair> {
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
    for op in capture_diff_slices_deadline(Algorithm::Myers, &xa, &xb, None) {
        let (ra, rb) = (op.old_range(), op.new_range());
        let same = matches!(op, DiffOp::Equal { .. });
        for k in 0..ra.len().max(rb.len()) {
            let a = (k < ra.len()).then(|| ra.start + k);
            let b = (k < rb.len()).then(|| rb.start + k);
            out.push(StepPair { a, b, same });
        }
    }
    out
}

fn moe_diff(a: &MoeStats, b: &MoeStats) -> Vec<LayerDiff> {
    let shares = |c: &[u64], n: usize| -> Vec<f64> {
        let total: u64 = c.iter().sum();
        (0..n).map(|i| c.get(i).map_or(0.0, |&x| x as f64 / total.max(1) as f64)).collect()
    };
    let n = a.experts.max(b.experts) as usize;
    let mut out = Vec::new();
    for la in &a.layers {
        let Some(lb) = b.layers.iter().find(|l| l.layer == la.layer) else { continue };
        let (pa, pb) = (shares(&la.counts, n), shares(&lb.counts, n));
        let distance = pa.iter().zip(&pb).map(|(x, y)| (x - y).abs()).sum::<f64>() / 2.0;
        out.push(LayerDiff { layer: la.layer, a: pa, b: pb, distance });
    }
    out
}

#[cfg(test)]
mod tests;
