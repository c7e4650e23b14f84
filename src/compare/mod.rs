//! Comparison of two runs: what differs before the first token (`setup`: prompt word diff,
//! system message, sampler, model, source), an alignment that knows how the runs are related
//! (a fork or resampled child matches its parent position by position up to its fork step;
//! other runs align with `similar` by token ids when they share a tokenizer, else by words,
//! under a time budget), the first divergence with both choices, their top-k lists and
//! whether the child's token was forced, the step map of the reasoning steps (`steps`),
//! statistics side by side, both final answers and whether they agree and, for two MoE runs,
//! per-layer expert-usage differences. Depends on `analysis` and `trace`; must not depend on
//! `store` or `tui`.

pub mod setup;
pub mod steps;

use std::ops::Range;
use std::time::{Duration, Instant};

use similar::{capture_diff_slices_deadline, Algorithm, DiffOp};

use crate::analysis::answer::{agree, extract, Answer};
use crate::analysis::stats::MoeStats;
use crate::analysis::text::StepText;
use crate::analysis::{analyze, prompt_text, AnalysisConfig, RunStats, Segments};
use crate::trace::{Routing, Run, Step, TopToken};

pub use setup::{Change, Setup};
pub use steps::{StepFlag, StepInfo, StepMatch};

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
    /// The rank of the chosen token among the step's alternatives (1 = most likely), when it
    /// is among them.
    pub rank: Option<usize>,
}

/// Where the two runs first part; `None` on a side that has ended there.
#[derive(Debug, Clone, PartialEq)]
pub struct Divergence {
    pub a_step: usize,
    pub b_step: usize,
    pub a: Option<Choice>,
    pub b: Option<Choice>,
    /// The child's token here was forced (a fork's fork step).
    pub forced: bool,
}

/// How the two runs are related.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// Neither is the other's child.
    Unrelated,
    /// One is a fork of the other at `at`: the tokens before were replayed and the one at
    /// `at` forced. `child_is_b` tells which side the child is.
    Fork { at: usize, child_is_b: bool },
    /// One is a resampled continuation of the other from `at`: the tokens before were
    /// replayed, the rest sampled.
    Resample { at: usize, child_is_b: bool },
    /// One re-ran the other's edited prompt: nothing replayed.
    Edit { child_is_b: bool },
    /// One is the other's text scored under a local model (`thinkdbg score`): every token
    /// forced, nothing sampled.
    Scored { child_is_b: bool },
}

impl Relation {
    /// How the relation reads in a header: `B forks A at step 30`.
    pub fn describe(&self) -> String {
        let who = |b: bool| if b { ("B", "A") } else { ("A", "B") };
        match *self {
            Relation::Unrelated => "unrelated runs".into(),
            Relation::Fork { at, child_is_b } => {
                let (c, p) = who(child_is_b);
                format!("{c} forks {p} at step {at}")
            }
            Relation::Resample { at, child_is_b } => {
                let (c, p) = who(child_is_b);
                format!("{c} resamples {p} from step {at}")
            }
            Relation::Edit { child_is_b } => {
                let (c, p) = who(child_is_b);
                format!("{c} re-runs {p} with an edited prompt")
            }
            Relation::Scored { child_is_b } => {
                let (c, p) = who(child_is_b);
                format!("{c} scores {p}'s text under a local model")
            }
        }
    }

    /// The step up to which a child replayed its parent (`None` for unrelated or edited
    /// runs).
    pub fn replayed_prefix(&self) -> Option<usize> {
        self.replayed().map(|r| r.0)
    }

    /// The step up to which the runs align position by position (the fork step included for
    /// a fork, excluded for a resample).
    fn replayed(&self) -> Option<(usize, bool)> {
        match *self {
            Relation::Fork { at, .. } => Some((at, true)),
            Relation::Resample { at, .. } => Some((at, false)),
            _ => None,
        }
    }
}

/// How `b` relates to `a`.
pub fn relation(a: &Run, b: &Run) -> Relation {
    let of = |child: &Run, parent: &Run, child_is_b: bool| -> Option<Relation> {
        let (p, at) = child.parent?;
        if p != parent.id || child.id == parent.id {
            return None;
        }
        let at = at as usize;
        let resampled = child.label.as_deref().is_some_and(|l| l.starts_with("resample@"));
        Some(if child.is_scored() {
            Relation::Scored { child_is_b }
        } else if child.forced_step().is_some() {
            Relation::Fork { at, child_is_b }
        } else if resampled {
            Relation::Resample { at, child_is_b }
        } else {
            Relation::Edit { child_is_b }
        })
    };
    of(b, a, true).or_else(|| of(a, b, false)).unwrap_or(Relation::Unrelated)
}

/// The label of a forced token: `forced · rank 6 · p 0.5%` (its rank among the step's
/// alternatives and its probability under the model).
pub fn forced_label(step: &Step) -> String {
    let rank = match rank_of(step) {
        Some(r) => format!(" · rank {r}"),
        None if step.top.is_empty() => String::new(),
        None => format!(" · rank >{}", step.top.len()),
    };
    let p = if step.logprob.is_nan() {
        String::new()
    } else {
        format!(" · p {}", percent(f64::from(step.logprob).exp()))
    };
    format!("forced{rank}{p}")
}

/// A probability as a percentage with the digits it needs: `45%`, `0.5%`, `0.03%`.
pub fn percent(p: f64) -> String {
    let x = p * 100.0;
    if x >= 9.95 {
        format!("{x:.0}%")
    } else if x >= 0.095 {
        format!("{x:.1}%")
    } else {
        format!("{x:.2}%")
    }
}

/// The rank of the chosen token among the step's alternatives, 1 for the most likely.
pub fn rank_of(step: &Step) -> Option<usize> {
    let unknown = step.token_id == crate::trace::UNKNOWN_TOKEN;
    let chosen = |t: &TopToken| if unknown { t.text == step.text } else { t.id == step.token_id };
    let at = step.top.iter().find(|t| chosen(t))?;
    Some(1 + step.top.iter().filter(|t| t.logprob > at.logprob).count())
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
    pub relation: Relation,
    /// What differs before the first token.
    pub setup: Setup,
    pub by: AlignBy,
    pub ops: Vec<AlignOp>,
    /// The alignment hit its time budget; `ops` is then valid but not minimal.
    pub budget_exceeded: bool,
    pub first_divergence: Option<Divergence>,
    /// The step map: the reasoning steps of both runs aligned by content.
    pub steps: Vec<StepMatch>,
    /// Each run's reasoning steps with their flags and confidence (`steps` indexes them).
    pub step_info: (Vec<StepInfo>, Vec<StepInfo>),
    /// How long the step map took.
    pub step_map_time: Duration,
    pub segments: (Segments, Segments),
    pub stats: (RunStats, RunStats),
    /// The final answers of each run (`analysis::answer`).
    pub answers: (Option<Answer>, Option<Answer>),
    /// Whether the answers agree; `None` when either run has none.
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

    /// Where each stretch that differs starts: `(a_step, b_step)`, in order.
    pub fn divergences(&self) -> Vec<(usize, usize)> {
        self.ops
            .iter()
            .filter(|o| !matches!(o, AlignOp::Equal { .. }))
            .map(|o| (o.a().start, o.b().start))
            .collect()
    }

    /// Step-map rows of each kind: same text, changed, only in A, only in B.
    pub fn step_counts(&self) -> (usize, usize, usize, usize) {
        let mut n = (0, 0, 0, 0);
        for p in &self.steps {
            match (p.a, p.b) {
                (Some(_), Some(_)) if p.same() => n.0 += 1,
                (Some(_), Some(_)) => n.1 += 1,
                (Some(_), None) => n.2 += 1,
                _ => n.3 += 1,
            }
        }
        n
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
    let relation = relation(a.run, b.run);
    // Runs from servers have no token ids (every id unknown): they align by words.
    let ids = |s: &[Step]| s.iter().all(|x| x.token_id != crate::trace::UNKNOWN_TOKEN);
    let by = if same_tokenizer(a.run, b.run) && ids(a.steps) && ids(b.steps) {
        AlignBy::Tokens
    } else {
        AlignBy::Words
    };
    // A child replayed its parent's tokens before its fork step: those align position by
    // position (a diff could pair the forced token with a later one), the rest by a diff.
    let replayed = relation.replayed().filter(|&(at, _)| same_prefix(a.steps, b.steps, at));
    let mut ops = Vec::new();
    let from = match replayed {
        Some((at, forced)) => {
            let at = at.min(a.steps.len()).min(b.steps.len());
            if at > 0 {
                ops.push(AlignOp::Equal { a: 0..at, b: 0..at });
            }
            let differs = |i: usize| match (a.steps.get(i), b.steps.get(i)) {
                (Some(x), Some(y)) => x.token_id != y.token_id || x.text != y.text,
                _ => false,
            };
            if forced && differs(at) {
                ops.push(AlignOp::Replace { a: at..at + 1, b: at..at + 1 });
                at + 1
            } else {
                at
            }
        }
        None => 0,
    };
    let (ra, rb) = (&a.steps[from.min(a.steps.len())..], &b.steps[from.min(b.steps.len())..]);
    let rest = match by {
        AlignBy::Tokens => {
            let ia: Vec<u32> = ra.iter().map(|s| s.token_id).collect();
            let ib: Vec<u32> = rb.iter().map(|s| s.token_id).collect();
            capture_diff_slices_deadline(Algorithm::Myers, &ia, &ib, Some(deadline))
                .iter()
                .map(|op| to_align(op, |r| r, |r| r))
                .collect()
        }
        AlignBy::Words if from == 0 => {
            let words = (&an_a.segments.words[..], &an_b.segments.words[..]);
            word_ops(ra, rb, Some(words), deadline)
        }
        AlignBy::Words => word_ops(ra, rb, None, deadline),
    };
    for op in rest {
        let shift = |r: Range<usize>| r.start + from..r.end + from;
        let op = match op {
            AlignOp::Equal { a, b } => AlignOp::Equal { a: shift(a), b: shift(b) },
            AlignOp::Delete { a, b_at } => AlignOp::Delete { a: shift(a), b_at: b_at + from },
            AlignOp::Insert { a_at, b } => AlignOp::Insert { a_at: a_at + from, b: shift(b) },
            AlignOp::Replace { a, b } => AlignOp::Replace { a: shift(a), b: shift(b) },
        };
        if op.a().is_empty() && op.b().is_empty() {
            continue;
        }
        match (ops.last_mut(), &op) {
            (Some(AlignOp::Equal { a: pa, b: pb }), AlignOp::Equal { a, b }) => {
                pa.end = a.end;
                pb.end = b.end;
            }
            _ => ops.push(op),
        }
    }
    let budget_exceeded = Instant::now() > deadline;
    let mut first_divergence = divergence(&ops, a.steps, b.steps);
    if let (Some(d), Relation::Fork { at, child_is_b }) = (&mut first_divergence, relation) {
        let child_step = if child_is_b { d.b_step } else { d.a_step };
        d.forced = child_step == at && replayed.is_some();
    }
    let t = Instant::now();
    let steps =
        steps::align(&ta, &an_a.segments, &tb, &an_b.segments, deadline.max(t + budget / 4));
    let step_info = (
        steps::step_infos(a.steps, &an_a.segments, &an_a.flags),
        steps::step_infos(b.steps, &an_b.segments, &an_b.flags),
    );
    let step_map_time = t.elapsed();
    let answer_of = |t: &StepText, s: &Segments| {
        let r = s.answer.clone().or_else(|| (!t.is_empty()).then(|| 0..t.len()))?;
        extract(&t.text, t.bytes_of(r))
    };
    let (sa, sb) = (answer_of(&ta, &an_a.segments), answer_of(&tb, &an_b.segments));
    let answers_agree = match (&sa, &sb) {
        (Some(x), Some(y)) => Some(agree(x, y)),
        _ => None,
    };
    let moe = match (&an_a.stats.moe, &an_b.stats.moe) {
        (Some(x), Some(y)) => Some(moe_diff(x, y)),
        _ => None,
    };
    Comparison {
        relation,
        setup: setup::setup(a.run, b.run),
        by,
        ops,
        budget_exceeded,
        first_divergence,
        steps,
        step_info,
        step_map_time,
        segments: (an_a.segments, an_b.segments),
        stats: (an_a.stats, an_b.stats),
        answers: (sa, sb),
        answers_agree,
        moe,
    }
}

/// Whether the runs hold the same tokens before `at` (a replayed prefix).
fn same_prefix(a: &[Step], b: &[Step], at: usize) -> bool {
    let n = at.min(a.len()).min(b.len());
    a[..n].iter().zip(&b[..n]).all(|(x, y)| x.token_id == y.token_id && x.text == y.text)
}

/// Both runs' word ranges.
type WordPair<'a> = (&'a [Range<usize>], &'a [Range<usize>]);

/// The alignment of two runs' words (`words`: their segmentation when already known), as
/// step ranges.
fn word_ops(sa: &[Step], sb: &[Step], words: Option<WordPair>, deadline: Instant) -> Vec<AlignOp> {
    let (ta, tb) = (StepText::new(sa), StepText::new(sb));
    let (wa, wb) = match words {
        Some((x, y)) => (x.to_vec(), y.to_vec()),
        None => (crate::analysis::segment(sa).words, crate::analysis::segment(sb).words),
    };
    let words = |t: &StepText, w: &[Range<usize>]| -> Vec<String> {
        w.iter().map(|r| t.text[t.bytes_of(r.clone())].trim().to_string()).collect()
    };
    let (xa, xb) = (words(&ta, &wa), words(&tb, &wb));
    let ops = capture_diff_slices_deadline(Algorithm::Myers, &xa, &xb, Some(deadline));
    let to_steps = |w: &[Range<usize>], n: usize, r: Range<usize>| -> Range<usize> {
        // A word range covers the steps up to the next word, so ranges tile the run.
        let start = if r.start == 0 { 0 } else { w.get(r.start).map_or(n, |x| x.start) };
        let end = w.get(r.end).map_or(n, |x| x.start);
        start..end.max(start)
    };
    ops.iter()
        .map(|op| to_align(op, |r| to_steps(&wa, sa.len(), r), |r| to_steps(&wb, sb.len(), r)))
        .collect()
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
        rank: rank_of(s),
    })
}

fn divergence(ops: &[AlignOp], a: &[Step], b: &[Step]) -> Option<Divergence> {
    let op = ops.iter().find(|o| !matches!(o, AlignOp::Equal { .. }))?;
    let (ia, ib) = (op.a().start, op.b().start);
    Some(Divergence { a_step: ia, b_step: ib, a: choice(a, ia), b: choice(b, ib), forced: false })
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
