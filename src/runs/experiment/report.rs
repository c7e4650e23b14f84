//! The report of an experiment, computed from its stored runs' analysis: per variant the
//! completed samples, the answer distribution, accuracy against `expect`, the shares of runs
//! with a language switch, a repetition loop, a think-integrity error and an answer mismatch
//! (each with a 95% Wilson interval), mean target-language ratio, backtracks per 1k tokens,
//! tokens (think/answer) and logprob; then each variant against the first: differences with
//! 95% intervals (Newcombe's hybrid score interval for rates, Welch's normal approximation for
//! means) and, for the paired binary outcomes, the exact McNemar test.

use serde_json::{json, Value};

use super::runner::{is_complete, shown_id};
use super::spec::{Expect, Spec};
use super::stats::{mcnemar_exact, mean_difference, mean_var, newcombe, Rate};
use super::Result;
use crate::analysis::answer::{agree, extract};
use crate::analysis::confidence::{run_confidence, vote_weight, weighted_vote, VoteMeasure};
use crate::analysis::AnalysisConfig;
use crate::runs::resample::FinalAnswer;
use crate::store::experiments::ExperimentRecord;
use crate::store::Store;
use crate::trace::{FlagKind, RunId, Severity};

/// What one completed sample contributes.
#[derive(Debug, Clone)]
pub struct Sample {
    pub sample: usize,
    pub run: RunId,
    pub answer: String,
    pub correct: Option<bool>,
    pub language_switch: bool,
    pub target_language_ratio: Option<f64>,
    pub looped: bool,
    pub integrity_error: bool,
    pub mismatch: bool,
    pub backtracks_per_1k: f64,
    pub tokens: usize,
    pub think_tokens: usize,
    pub answer_tokens: usize,
    pub mean_logprob: Option<f64>,
    /// Flag kinds with counts, most first (`flags_by_kind`).
    pub flags: Vec<(String, usize)>,
    /// The run's weight in the confidence-weighted vote: DeepConf's bottom-10% group
    /// confidence (0 when the run recorded no alternatives).
    pub confidence: f64,
}

/// The binary outcomes the report counts, in table order: key, label.
pub const RATES: &[(&str, &str)] = &[
    ("accuracy", "accuracy"),
    ("language_switch_rate", "language switch"),
    ("loop_rate", "repetition loop"),
    ("integrity_error_rate", "think-integrity error"),
    ("mismatch_rate", "answer mismatch"),
];

/// The means the report gives, in table order: key, label.
pub const MEANS: &[(&str, &str)] = &[
    ("target_language_ratio", "target-language ratio"),
    ("backtracks_per_1k", "backtracks / 1k tokens"),
    ("mean_tokens", "tokens"),
    ("mean_think_tokens", "think tokens"),
    ("mean_answer_tokens", "answer tokens"),
    ("mean_logprob", "mean logprob"),
];

impl Sample {
    /// The sample's value of a binary outcome (`RATES` key); `None` when it has none
    /// (accuracy without `expect`).
    pub fn outcome(&self, key: &str) -> Option<bool> {
        match key {
            "accuracy" => self.correct,
            "language_switch_rate" => Some(self.language_switch),
            "loop_rate" => Some(self.looped),
            "integrity_error_rate" => Some(self.integrity_error),
            "mismatch_rate" => Some(self.mismatch),
            _ => None,
        }
    }

    /// The sample's value of a mean (`MEANS` key).
    pub fn value(&self, key: &str) -> Option<f64> {
        match key {
            "target_language_ratio" => self.target_language_ratio,
            "backtracks_per_1k" => Some(self.backtracks_per_1k),
            "mean_tokens" => Some(self.tokens as f64),
            "mean_think_tokens" => Some(self.think_tokens as f64),
            "mean_answer_tokens" => Some(self.answer_tokens as f64),
            "mean_logprob" => self.mean_logprob,
            _ => None,
        }
    }
}

/// One variant's samples.
#[derive(Debug, Clone)]
pub struct VariantReport {
    pub name: String,
    /// Completed samples, by sample index.
    pub samples: Vec<Sample>,
    /// Samples the spec asks for.
    pub planned: usize,
    /// Answers (shortened) with their counts, most first; equal answers are grouped as
    /// `FinalAnswer::changed` compares them.
    pub answers: Vec<(String, usize)>,
    /// The plain majority vote: the most frequent answer and its share of the samples.
    pub majority: Option<(String, f64)>,
    /// DeepConf's confidence-weighted vote: each sample adds its bottom-10% group confidence
    /// to its answer; the answer with the most weight and its share of the weight.
    pub weighted: Option<(String, f64)>,
}

impl VariantReport {
    pub fn n(&self) -> usize {
        self.samples.len()
    }

    /// A binary outcome's rate over the samples that have it.
    pub fn rate(&self, key: &str) -> Option<Rate> {
        let vals: Vec<bool> = self.samples.iter().filter_map(|s| s.outcome(key)).collect();
        if vals.is_empty() && key == "accuracy" {
            return None;
        }
        Some(Rate::new(vals.iter().filter(|b| **b).count(), vals.len()))
    }

    pub fn values(&self, key: &str) -> Vec<f64> {
        self.samples.iter().filter_map(|s| s.value(key)).collect()
    }

    pub fn mean(&self, key: &str) -> Option<f64> {
        mean_var(&self.values(key)).map(|(m, _, _)| m)
    }
}

/// One metric of a variant against the first.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub key: &'static str,
    pub label: &'static str,
    /// The first variant's value and this one's.
    pub base: f64,
    pub value: f64,
    /// `value − base` with its 95% interval.
    pub diff: f64,
    pub lo: f64,
    pub hi: f64,
    /// `newcombe` (rates) or `welch` (means).
    pub interval: &'static str,
    /// Exact McNemar over the pairs (same sample index) both variants completed: pairs,
    /// only-base, only-this, p-value. Binary outcomes only.
    pub mcnemar: Option<(usize, usize, usize, f64)>,
}

impl Difference {
    /// Whether the 95% interval leaves out zero.
    pub fn significant(&self) -> bool {
        self.lo > 0.0 || self.hi < 0.0
    }
}

#[derive(Debug, Clone)]
pub struct Comparison {
    pub variant: String,
    pub against: String,
    pub metrics: Vec<Difference>,
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct Report {
    pub id: u64,
    pub name: String,
    pub expect: Option<String>,
    pub model: String,
    pub variants: Vec<VariantReport>,
    pub comparisons: Vec<Comparison>,
}

/// Whether `answer` is the expected one: a `/regex/` must match the final answer found (or,
/// when none was found, the answer text); a value must agree with it as `diff` compares
/// answers (numbers by value, yes/no, text normalized).
pub fn correct(expect: &Expect, answer: &FinalAnswer) -> bool {
    let got = answer.answer.as_ref().map_or(answer.text.as_str(), |a| a.value.as_str());
    match expect {
        Expect::Regex(re) => re.is_match(got),
        Expect::Value(v) => match (extract(v, 0..v.len()), &answer.answer) {
            (Some(want), Some(got)) => agree(&want, got),
            _ => false,
        },
    }
}

/// Reads one completed run's outcome (analysing it if its analysis is stale).
pub fn sample(
    store: &Store,
    run: RunId,
    index: usize,
    expect: Option<&Expect>,
    cfg: &AnalysisConfig,
) -> Result<(Sample, FinalAnswer)> {
    let a = crate::runs::analysis::ensure(store, run, cfg, false)?;
    let answer = FinalAnswer::of(&a.steps);
    let has = |k: FlagKind| a.flags.iter().any(|f| f.kind == k);
    let s = Sample {
        sample: index,
        run,
        answer: answer.short(),
        correct: expect.map(|e| correct(e, &answer)),
        language_switch: has(FlagKind::LanguageSwitch),
        target_language_ratio: a.stats.target_language_ratio,
        looped: has(FlagKind::Repetition),
        integrity_error: a
            .flags
            .iter()
            .any(|f| f.kind == FlagKind::ThinkIntegrity && f.severity == Severity::Error),
        mismatch: has(FlagKind::AnswerMismatch),
        backtracks_per_1k: a.stats.backtracks_per_1k,
        tokens: a.stats.tokens,
        think_tokens: a.stats.think_tokens,
        answer_tokens: a.stats.answer_tokens,
        mean_logprob: a.stats.mean_logprob,
        flags: a.stats.flags_by_kind.clone(),
        confidence: vote_weight(&run_confidence(&a.steps, &cfg.deepconf), VoteMeasure::Bottom10),
    };
    Ok((s, answer))
}

/// The plain and the confidence-weighted majority votes over one variant's samples; answers
/// that agree (`FinalAnswer::changed`) vote together.
type Votes = (Option<(String, f64)>, Option<(String, f64)>);

fn votes(samples: &[Sample], answers: &[FinalAnswer]) -> Votes {
    // Each answer's group: the index of the first answer it agrees with.
    let group: Vec<usize> = answers
        .iter()
        .enumerate()
        .map(|(i, a)| answers[..i].iter().position(|r| !r.changed(a)).unwrap_or(i))
        .collect();
    let plain: Vec<(usize, f64)> = group.iter().map(|&g| (g, 1.0)).collect();
    let weighted: Vec<(usize, f64)> =
        group.iter().zip(samples).map(|(&g, s)| (g, s.confidence)).collect();
    let total_weight: f64 = weighted.iter().map(|(_, w)| w).sum();
    let shown = |v: Option<(usize, f64)>| v.map(|(i, share)| (answers[i].short(), share));
    (
        shown(weighted_vote(&plain)),
        if total_weight > 0.0 { shown(weighted_vote(&weighted)) } else { None },
    )
}

/// Groups answers that agree, most frequent first (ties in order of appearance).
fn distribution(answers: &[FinalAnswer]) -> Vec<(String, usize)> {
    let mut reps: Vec<(&FinalAnswer, String, usize)> = Vec::new();
    for a in answers {
        match reps.iter_mut().find(|(r, _, _)| !r.changed(a)) {
            Some(g) => g.2 += 1,
            None => reps.push((a, a.short(), 1)),
        }
    }
    let mut out: Vec<(String, usize)> = reps.into_iter().map(|(_, s, n)| (s, n)).collect();
    out.sort_by_key(|g| std::cmp::Reverse(g.1));
    out
}

fn vote_json(v: &Option<(String, f64)>) -> Value {
    v.as_ref().map_or(Value::Null, |(answer, share)| json!({"answer": answer, "share": share}))
}

/// Compares `b` with the first variant `a`.
pub fn compare(a: &VariantReport, b: &VariantReport) -> Comparison {
    let mut metrics = Vec::new();
    for &(key, label) in RATES {
        let (Some(ra), Some(rb)) = (a.rate(key), b.rate(key)) else { continue };
        let Some((diff, lo, hi)) = newcombe(ra, rb) else { continue };
        let (mut pairs, mut only_a, mut only_b) = (0, 0, 0);
        for sa in &a.samples {
            let Some(sb) = b.samples.iter().find(|s| s.sample == sa.sample) else { continue };
            if let (Some(x), Some(y)) = (sa.outcome(key), sb.outcome(key)) {
                pairs += 1;
                only_a += usize::from(x && !y);
                only_b += usize::from(!x && y);
            }
        }
        metrics.push(Difference {
            key,
            label,
            base: ra.p().unwrap_or(0.0),
            value: rb.p().unwrap_or(0.0),
            diff,
            lo,
            hi,
            interval: "newcombe",
            mcnemar: Some((pairs, only_a, only_b, mcnemar_exact(only_a, only_b))),
        });
    }
    for &(key, label) in MEANS {
        let (va, vb) = (a.values(key), b.values(key));
        let Some((diff, lo, hi)) = mean_difference(&va, &vb) else { continue };
        metrics.push(Difference {
            key,
            label,
            base: a.mean(key).unwrap_or(0.0),
            value: b.mean(key).unwrap_or(0.0),
            diff,
            lo,
            hi,
            interval: "welch",
            mcnemar: None,
        });
    }
    Comparison { variant: b.name.clone(), against: a.name.clone(), metrics }
}

impl Report {
    /// The report of an experiment from its stored runs (completed samples only).
    pub fn build(
        store: &Store,
        record: &ExperimentRecord,
        spec: &Spec,
        cfg: &AnalysisConfig,
    ) -> Result<Report> {
        let mut variants = Vec::new();
        let mut model = String::new();
        for (v, var) in spec.variants.iter().enumerate() {
            let mut samples = Vec::new();
            let mut answers = Vec::new();
            for i in 0..spec.samples {
                let Some(id) = record.run_of(v, i) else { continue };
                let Some(run) = store.run(id)? else { continue };
                if !is_complete(&run) {
                    continue;
                }
                if model.is_empty() {
                    model = match crate::runs::remote::provenance(&run) {
                        Some((endpoint, m)) => format!("{m} at {endpoint}"),
                        None => run.model.name.clone(),
                    };
                }
                let (s, answer) = sample(store, id, i, spec.expect.as_ref(), cfg)?;
                samples.push(s);
                answers.push(answer);
            }
            let (majority, weighted) = votes(&samples, &answers);
            variants.push(VariantReport {
                name: var.name.clone(),
                samples,
                planned: spec.samples,
                answers: distribution(&answers),
                majority,
                weighted,
            });
        }
        let comparisons = match variants.split_first() {
            Some((first, rest)) => rest.iter().map(|b| compare(first, b)).collect(),
            None => Vec::new(),
        };
        Ok(Report {
            id: record.id,
            name: record.name.clone(),
            expect: spec.expect.as_ref().map(Expect::shown),
            model,
            variants,
            comparisons,
        })
    }

    /// `--json`: one object per variant, then one `{"comparison": …}` per variant after the
    /// first.
    pub fn json_lines(&self) -> Vec<Value> {
        let num = |v: Option<f64>| v.map_or(Value::Null, |x| json!(x));
        let mut out = Vec::new();
        for v in &self.variants {
            let answers: serde_json::Map<String, Value> =
                v.answers.iter().map(|(a, n)| (a.clone(), json!(n))).collect();
            let mut o = json!({
                "experiment": shown_id(self.id),
                "variant": v.name,
                "runs": v.samples.iter().map(|s| s.run.to_string()).collect::<Vec<_>>(),
                "n": v.n(),
                "planned": v.planned,
                "answers": answers,
                "target_language_ratio": num(v.mean("target_language_ratio")),
                "backtracks_per_1k": num(v.mean("backtracks_per_1k")),
                "mean_tokens": num(v.mean("mean_tokens")),
                "mean_think_tokens": num(v.mean("mean_think_tokens")),
                "mean_answer_tokens": num(v.mean("mean_answer_tokens")),
                "mean_logprob": num(v.mean("mean_logprob")),
                "majority_vote": vote_json(&v.majority),
                "confidence_weighted_vote": vote_json(&v.weighted),
            });
            for &(key, _) in RATES {
                let rate = v.rate(key);
                o[key] = num(rate.and_then(|r| r.p()));
                o[format!("{key}_ci95")] = match rate.filter(|r| r.n > 0) {
                    Some(r) => json!([r.wilson().0, r.wilson().1]),
                    None => Value::Null,
                };
            }
            out.push(o);
        }
        for c in &self.comparisons {
            let metrics: serde_json::Map<String, Value> = c
                .metrics
                .iter()
                .map(|d| {
                    let mut m = json!({
                        "base": d.base,
                        "value": d.value,
                        "difference": d.diff,
                        "ci95": [d.lo, d.hi],
                        "interval": d.interval,
                        "significant": d.significant(),
                    });
                    if let Some((pairs, b, c, p)) = d.mcnemar {
                        m["mcnemar"] =
                            json!({"pairs": pairs, "only_base": b, "only_variant": c, "p": p});
                    }
                    (d.key.to_string(), m)
                })
                .collect();
            out.push(json!({"comparison": {
                "variant": c.variant,
                "against": c.against,
                "metrics": metrics,
            }}));
        }
        out
    }
}
