//! Confidence as DeepConf defines it (Fu et al., "Deep Think with Confidence", 2025): the
//! token confidence `C_i = -(1/k) Σ_{j≤k} log P_i(j)` over the `k` most likely alternatives
//! recorded at step `i`, the group confidence (mean `C_i` over a sliding window of `w` tokens),
//! and per run the lowest group, the mean of the lowest 10% of groups and the tail confidence
//! (mean over the last `tail` tokens); also where an online early stop (the first full window
//! whose group confidence falls below a threshold) would have cut the run, and the weights
//! for confidence-weighted voting. Higher is more confident. Pure functions over `trace`
//! steps; must not depend on `store`, `tui` or `engine`.

use serde::{Deserialize, Serialize};

use super::config::DeepConfConfig;
use crate::trace::Step;

/// A run's confidence summary (`stats --json` as `"confidence"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfidence {
    /// Alternatives averaged per token (at most; a step with fewer recorded uses those).
    pub k: usize,
    /// Tokens per group.
    pub window: usize,
    /// Tokens the tail confidence averages.
    pub tail: usize,
    /// The lowest group confidence; `None` when no step recorded alternatives.
    pub lowest_group: Option<f64>,
    /// The mean of the lowest 10% of group confidences (at least one group).
    pub bottom10_group: Option<f64>,
    /// The mean token confidence over the last `tail` tokens.
    pub tail_confidence: Option<f64>,
    /// The early-stop threshold the marker was computed for (0: off).
    pub stop_threshold: f64,
    /// The step at which an online early stop with `stop_threshold` would have ended the run:
    /// the last step of the first full window whose group confidence is below it.
    pub stop_step: Option<usize>,
}

/// The confidence of one step: minus the mean log-probability of its `k` most likely recorded
/// alternatives (all of them when fewer were recorded); `None` when it recorded none. NaN
/// logprobs (unknown) are skipped.
pub fn token_confidence(step: &Step, k: usize) -> Option<f64> {
    let mut lps: Vec<f64> =
        step.top.iter().map(|t| f64::from(t.logprob)).filter(|l| !l.is_nan()).collect();
    if lps.is_empty() || k == 0 {
        return None;
    }
    // The recorded alternatives are the most likely ones; sort anyway (imports may not be).
    lps.sort_by(|a, b| b.total_cmp(a));
    lps.truncate(k);
    let n = lps.len() as f64;
    // A -inf alternative (probability 0) makes the mean infinite: clamp it to a large finite
    // confidence instead, as a token whose other candidates are impossible is certain.
    Some(lps.iter().map(|l| -l.max(-100.0)).sum::<f64>() / n)
}

/// Every step's token confidence.
pub fn token_confidences(steps: &[Step], k: usize) -> Vec<Option<f64>> {
    steps.iter().map(|s| token_confidence(s, k)).collect()
}

/// Group confidences: for each step `i ≥ w-1`, the mean token confidence of steps
/// `i+1-w ..= i` (steps without one are left out of the mean); a run shorter than `w` is one
/// group. Returned as (last step of the window, group confidence), windows with no known
/// confidence left out.
pub fn group_confidences(conf: &[Option<f64>], window: usize) -> Vec<(usize, f64)> {
    let n = conf.len();
    if n == 0 {
        return Vec::new();
    }
    let w = window.max(1);
    if n <= w {
        return mean_of(conf.iter()).map(|m| vec![(n - 1, m)]).unwrap_or_default();
    }
    let (mut sum, mut cnt) = (0.0f64, 0usize);
    let mut out = Vec::with_capacity(n + 1 - w);
    for i in 0..n {
        if let Some(c) = conf[i] {
            sum += c;
            cnt += 1;
        }
        if i >= w {
            if let Some(c) = conf[i - w] {
                sum -= c;
                cnt -= 1;
            }
        }
        if i + 1 >= w && cnt > 0 {
            out.push((i, sum / cnt as f64));
        }
    }
    out
}

fn mean_of<'a>(values: impl Iterator<Item = &'a Option<f64>>) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for v in values.flatten() {
        sum += v;
        n += 1;
    }
    (n > 0).then(|| sum / n as f64)
}

/// The run's confidence summary under `cfg`.
pub fn run_confidence(steps: &[Step], cfg: &DeepConfConfig) -> RunConfidence {
    let conf = token_confidences(steps, cfg.k);
    let groups = group_confidences(&conf, cfg.window);
    let lowest_group = groups.iter().map(|(_, g)| *g).min_by(f64::total_cmp);
    let mut sorted: Vec<f64> = groups.iter().map(|(_, g)| *g).collect();
    sorted.sort_by(f64::total_cmp);
    let bottom = sorted.len().div_ceil(10).max(1).min(sorted.len());
    let bottom10_group = (bottom > 0).then(|| sorted[..bottom].iter().sum::<f64>() / bottom as f64);
    let tail_from = conf.len().saturating_sub(cfg.tail.max(1));
    let tail_confidence = mean_of(conf[tail_from..].iter());
    RunConfidence {
        k: cfg.k,
        window: cfg.window,
        tail: cfg.tail,
        lowest_group,
        bottom10_group,
        tail_confidence,
        stop_threshold: cfg.stop_threshold,
        stop_step: early_stop(&groups, cfg.window, conf.len(), cfg.stop_threshold),
    }
}

/// Where an online early stop would have cut the run: the last step of the first full window
/// whose group confidence is below `threshold` (a run shorter than the window has no full
/// window and is never cut); `None` when the threshold is 0 (off) or never crossed.
pub fn early_stop(
    groups: &[(usize, f64)],
    window: usize,
    steps: usize,
    threshold: f64,
) -> Option<usize> {
    if threshold <= 0.0 || steps < window.max(1) {
        return None;
    }
    groups.iter().find(|(_, g)| *g < threshold).map(|(i, _)| *i)
}

/// The summary as label/value pairs (`thinkdbg stats`, the Markdown and HTML exports).
pub fn rows(c: &RunConfidence) -> Vec<(&'static str, String)> {
    let f = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |x| format!("{x:.3}"));
    let stop = if c.stop_threshold <= 0.0 {
        "off (analysis.deepconf.stop_threshold)".to_string()
    } else {
        match c.stop_step {
            Some(s) => format!("at step {s} (threshold {:.3})", c.stop_threshold),
            None => format!("never (threshold {:.3})", c.stop_threshold),
        }
    };
    vec![
        ("confidence (DeepConf)", format!("k {}, window {}, tail {}", c.k, c.window, c.tail)),
        ("  lowest group", f(c.lowest_group)),
        ("  bottom 10% groups", f(c.bottom10_group)),
        ("  tail confidence", f(c.tail_confidence)),
        ("  early stop", stop),
    ]
}

/// Which run-level confidence a vote weighs by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteMeasure {
    LowestGroup,
    Bottom10,
    Tail,
}

/// The weight of a run in confidence-weighted voting (DeepConf): its chosen measure, or 0 when
/// unknown. For the experiments' weighted majority vote beside the plain one.
pub fn vote_weight(c: &RunConfidence, measure: VoteMeasure) -> f64 {
    let v = match measure {
        VoteMeasure::LowestGroup => c.lowest_group,
        VoteMeasure::Bottom10 => c.bottom10_group,
        VoteMeasure::Tail => c.tail_confidence,
    };
    v.filter(|v| v.is_finite() && *v > 0.0).unwrap_or(0.0)
}

/// Confidence-weighted majority vote: each (answer, weight) adds its weight to its answer;
/// the answer with the largest total wins (ties: the one seen first). Returns the answer's
/// index in `answers` (its first occurrence) and its share of the total weight.
pub fn weighted_vote<A: PartialEq>(answers: &[(A, f64)]) -> Option<(usize, f64)> {
    let mut totals: Vec<(usize, f64)> = Vec::new();
    for (i, (a, w)) in answers.iter().enumerate() {
        match totals.iter_mut().find(|(j, _)| answers[*j].0 == *a) {
            Some((_, t)) => *t += w,
            None => totals.push((i, *w)),
        }
    }
    let sum: f64 = totals.iter().map(|(_, t)| t).sum();
    let mut best: Option<(usize, f64)> = None;
    for (i, t) in totals {
        if best.is_none_or(|(_, b)| t > b) {
            best = Some((i, t));
        }
    }
    best.map(|(i, t)| (i, if sum > 0.0 { t / sum } else { 0.0 }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Phase, TopToken};

    fn step(i: usize, top: &[f32]) -> Step {
        Step {
            index: i as u32,
            token_id: 0,
            text: "x".into(),
            logprob: top.first().copied().unwrap_or(0.0),
            entropy: 0.0,
            phase: Phase::Think,
            t_us: 0,
            top: top
                .iter()
                .enumerate()
                .map(|(j, l)| TopToken { id: j as u32, text: format!("t{j}"), logprob: *l })
                .collect(),
        }
    }

    /// The definitions written out directly, one window at a time.
    fn direct(steps: &[Step], k: usize, w: usize, tail: usize) -> (f64, f64, f64) {
        let c: Vec<f64> = steps
            .iter()
            .map(|s| {
                let mut l: Vec<f64> = s.top.iter().map(|t| f64::from(t.logprob)).collect();
                l.sort_by(|a, b| b.partial_cmp(a).unwrap());
                let k = k.min(l.len());
                -l[..k].iter().sum::<f64>() / k as f64
            })
            .collect();
        let mut groups = Vec::new();
        if c.len() <= w {
            groups.push(c.iter().sum::<f64>() / c.len() as f64);
        } else {
            for end in w..=c.len() {
                groups.push(c[end - w..end].iter().sum::<f64>() / w as f64);
            }
        }
        groups.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let n10 = ((groups.len() as f64) * 0.1).ceil() as usize;
        let b10 = groups[..n10].iter().sum::<f64>() / n10 as f64;
        let t = &c[c.len().saturating_sub(tail)..];
        (groups[0], b10, t.iter().sum::<f64>() / t.len() as f64)
    }

    fn crafted(n: usize) -> Vec<Step> {
        (0..n)
            .map(|i| {
                // A dip in the middle: flatter alternatives, lower confidence.
                let flat = (40..52).contains(&i);
                let spread = if flat { 1.0 } else { 4.0 + (i % 7) as f32 };
                let top: Vec<f32> =
                    (0..5).map(|j| -(j as f32) * spread - 0.01 * (i % 3) as f32).collect();
                step(i, &top)
            })
            .collect()
    }

    #[test]
    fn summary_matches_the_definitions() {
        let steps = crafted(120);
        for (k, w, tail) in [(5, 16, 32), (3, 1, 1), (2, 200, 500), (20, 10, 10)] {
            let cfg = DeepConfConfig { k, window: w, tail, stop_threshold: 0.0 };
            let got = run_confidence(&steps, &cfg);
            let (low, b10, t) = direct(&steps, k, w, tail);
            assert!((got.lowest_group.unwrap() - low).abs() < 1e-9, "{k} {w}");
            assert!((got.bottom10_group.unwrap() - b10).abs() < 1e-9, "{k} {w}");
            assert!((got.tail_confidence.unwrap() - t).abs() < 1e-9, "{k} {w}");
            assert_eq!(got.stop_step, None);
        }
    }

    #[test]
    fn token_confidence_is_minus_the_mean_top_k_logprob() {
        let s = step(0, &[-0.1, -2.0, -3.0, -7.0]);
        assert!((token_confidence(&s, 2).unwrap() - 1.05).abs() < 1e-6);
        assert!((token_confidence(&s, 20).unwrap() - 3.025).abs() < 1e-6);
        assert_eq!(token_confidence(&step(0, &[]), 5), None);
        // A flatter distribution is less confident.
        let flat = step(0, &[-1.0, -1.1, -1.2, -1.3]);
        assert!(token_confidence(&flat, 4) < token_confidence(&s, 4));
    }

    #[test]
    fn the_early_stop_marks_the_first_low_window() {
        let steps = crafted(120);
        let conf = token_confidences(&steps, 5);
        let groups = group_confidences(&conf, 8);
        let high = groups.iter().map(|g| g.1).fold(f64::MIN, f64::max);
        let cfg = DeepConfConfig { k: 5, window: 8, tail: 32, stop_threshold: 5.0 };
        let c = run_confidence(&steps, &cfg);
        // The dip starts at step 40: the first window below 5 ends inside it.
        let at = c.stop_step.unwrap();
        assert!((40..52).contains(&at), "{at}");
        let first_low = groups.iter().find(|g| g.1 < 5.0).unwrap().0;
        assert_eq!(at, first_low);
        let never = DeepConfConfig { stop_threshold: 0.5, ..cfg.clone() };
        assert_eq!(run_confidence(&steps, &never).stop_step, None);
        assert!(high > 5.0);
        // A run shorter than the window is never cut.
        let short = DeepConfConfig { window: 500, stop_threshold: 100.0, ..cfg };
        assert_eq!(run_confidence(&steps, &short).stop_step, None);
    }

    #[test]
    fn weighted_voting_can_overrule_the_majority() {
        let votes = [("4", 1.0), ("5", 5.0), ("4", 1.0), ("4", 1.0)];
        let (i, share) = weighted_vote(&votes).unwrap();
        assert_eq!(votes[i].0, "5");
        assert!((share - 5.0 / 8.0).abs() < 1e-12);
        let plain: Vec<(&str, f64)> = votes.iter().map(|(a, _)| (*a, 1.0)).collect();
        assert_eq!(plain[weighted_vote(&plain).unwrap().0].0, "4");
        assert_eq!(weighted_vote::<&str>(&[]), None);
        let c = RunConfidence {
            k: 5,
            window: 8,
            tail: 8,
            lowest_group: Some(3.0),
            bottom10_group: None,
            tail_confidence: Some(f64::NAN),
            stop_threshold: 0.0,
            stop_step: None,
        };
        assert_eq!(vote_weight(&c, VoteMeasure::LowestGroup), 3.0);
        assert_eq!(vote_weight(&c, VoteMeasure::Bottom10), 0.0);
        assert_eq!(vote_weight(&c, VoteMeasure::Tail), 0.0);
    }
}
