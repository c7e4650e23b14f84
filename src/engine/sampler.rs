//! Turning logits into a recorded choice: statistics of the raw distribution (logprob,
//! entropy, top-k alternatives) and a seeded sampler (greedy, repetition penalty, top-k, top-p,
//! min-p, temperature).
//!
//! The statistics are always of the *unmodified* logits, so a recorded logprob says what the
//! model believed, not what the sampling filters left. The filters run in llama.cpp's default
//! order: penalties, top-k, top-p, min-p, temperature, then a draw. Depends on `trace` only.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::error::{Error, Result};
use crate::trace::SamplerSpec;

/// Statistics of one raw distribution over the vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct RawStats {
    /// log Σ exp(logits): subtracting it from a logit gives a log-probability.
    pub log_norm: f64,
    /// Entropy in nats.
    pub entropy: f32,
    /// The `k` most likely tokens as `(id, logprob)`, most likely first (ties by lower id).
    pub top: Vec<(u32, f32)>,
}

impl RawStats {
    /// Computes the statistics of `logits` in one pass for the normaliser and one for the
    /// entropy, plus a top-k selection that rejects most tokens with one comparison.
    pub fn of(logits: &[f32], k: usize) -> Self {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let mut sum = 0f64;
        let mut weighted = 0f64;
        for &l in logits {
            let l = l as f64;
            if l == f64::NEG_INFINITY {
                continue;
            }
            let e = (l - max).exp();
            sum += e;
            weighted += e * l;
        }
        let log_norm = max + sum.ln();
        // H = -Σ p (l - log_norm) = log_norm - Σ p l
        let entropy = (log_norm - weighted / sum).max(0.0) as f32;
        let top = top_k(logits, k)
            .into_iter()
            .map(|(id, l)| (id, (l as f64 - log_norm) as f32))
            .collect();
        RawStats { log_norm, entropy, top }
    }

    pub fn logprob(&self, logit: f32) -> f32 {
        (logit as f64 - self.log_norm) as f32
    }
}

/// The `k` largest logits as `(id, logit)`, largest first, ties broken by the lower id.
pub fn top_k(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    for (i, &l) in logits.iter().enumerate() {
        if best.len() == k {
            // `best` is sorted descending; its last entry is the current threshold.
            if let Some(&(_, min)) = best.last() {
                if l <= min {
                    continue;
                }
            }
        }
        let pos = best.partition_point(|&(_, b)| b >= l);
        best.insert(pos, (i as u32, l));
        best.truncate(k);
    }
    best
}

/// Index of the largest value; the first one wins a tie, as in llama.cpp's greedy sampler.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// A seeded sampler. Same spec, same seed and same logits give the same choices.
#[derive(Debug)]
pub struct Sampler {
    spec: SamplerSpec,
    rng: ChaCha20Rng,
    work: Vec<f32>,
    candidates: Vec<(u32, f32)>,
}

impl Sampler {
    pub fn new(spec: &SamplerSpec) -> Result<Self> {
        let bad = |what: &str| Err(Error::Sampler(what.to_string()));
        if !(spec.temperature >= 0.0 && spec.temperature.is_finite()) {
            return bad("'temperature' must be a finite number >= 0");
        }
        if !(spec.top_p > 0.0 && spec.top_p <= 1.0) {
            return bad("'top-p' must be in (0, 1]");
        }
        if !(0.0..=1.0).contains(&spec.min_p) {
            return bad("'min-p' must be in [0, 1]");
        }
        if !(spec.repeat_penalty > 0.0 && spec.repeat_penalty.is_finite()) {
            return bad("'repeat-penalty' must be a finite number > 0");
        }
        Ok(Sampler {
            spec: spec.clone(),
            rng: ChaCha20Rng::seed_from_u64(spec.seed),
            work: Vec::new(),
            candidates: Vec::new(),
        })
    }

    pub fn spec(&self) -> &SamplerSpec {
        &self.spec
    }

    /// Chooses the next token from `logits`, given the tokens so far (for the repetition
    /// penalty). `logits` is not modified.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let penalised = self.spec.repeat_penalty != 1.0 && self.spec.repeat_last_n > 0;
        let logits: &[f32] = if penalised {
            self.work.clear();
            self.work.extend_from_slice(logits);
            let start = history.len().saturating_sub(self.spec.repeat_last_n);
            let mut seen: Vec<u32> = history[start..].to_vec();
            seen.sort_unstable();
            seen.dedup();
            for id in seen {
                if let Some(l) = self.work.get_mut(id as usize) {
                    // llama.cpp's rule: shrink positive logits, push negative ones further down.
                    *l = if *l > 0.0 {
                        *l / self.spec.repeat_penalty
                    } else {
                        *l * self.spec.repeat_penalty
                    };
                }
            }
            &self.work
        } else {
            logits
        };
        if self.spec.temperature <= 0.0 {
            return argmax(logits);
        }
        let s = &self.spec;
        // Candidates sorted by logit, descending; top-k keeps at most k of them.
        let k = if s.top_k == 0 { logits.len() } else { s.top_k.min(logits.len()) };
        self.candidates = if k == logits.len() {
            let mut all: Vec<(u32, f32)> =
                logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            all
        } else {
            top_k(logits, k)
        };
        let cands = &mut self.candidates;
        let max = cands.first().map(|c| c.1).unwrap_or(0.0);
        // top-p over the softmax of the remaining candidates (before temperature, as llama.cpp).
        if s.top_p < 1.0 {
            let probs: Vec<f64> = cands.iter().map(|c| ((c.1 - max) as f64).exp()).collect();
            let total: f64 = probs.iter().sum();
            let mut cum = 0.0;
            let mut keep = cands.len();
            for (i, p) in probs.iter().enumerate() {
                cum += p / total;
                if cum >= s.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
            cands.truncate(keep.max(1));
        }
        // min-p: drop tokens whose probability is below min_p times the best one's.
        if s.min_p > 0.0 {
            let floor = max + (s.min_p as f64).ln() as f32;
            let keep = cands.iter().take_while(|c| c.1 >= floor).count();
            cands.truncate(keep.max(1));
        }
        let t = s.temperature as f64;
        let weights: Vec<f64> = cands.iter().map(|c| ((c.1 - max) as f64 / t).exp()).collect();
        let total: f64 = weights.iter().sum();
        let mut u: f64 = self.rng.random::<f64>() * total;
        for (c, w) in cands.iter().zip(&weights) {
            if u < *w {
                return c.0;
            }
            u -= w;
        }
        cands.last().map(|c| c.0).unwrap_or_else(|| argmax(logits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(temperature: f32) -> SamplerSpec {
        SamplerSpec { temperature, seed: 7, ..SamplerSpec::default() }
    }

    #[test]
    fn stats_form_a_distribution() {
        let logits = [1.0f32, 2.0, 3.0, 0.5, -1.0];
        let st = RawStats::of(&logits, 3);
        let total: f64 = logits.iter().map(|&l| (st.logprob(l) as f64).exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert_eq!(st.top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![2, 1, 0]);
        let h: f64 = logits
            .iter()
            .map(|&l| {
                let lp = st.logprob(l) as f64;
                -lp.exp() * lp
            })
            .sum();
        assert!((h - st.entropy as f64).abs() < 1e-5);
        // A uniform distribution over n has entropy ln n.
        let u = RawStats::of(&[0.0; 8], 2);
        assert!((u.entropy - 8f32.ln()).abs() < 1e-6);
        assert_eq!(u.top, vec![(0, -(8f32.ln())), (1, -(8f32.ln()))]);
    }

    #[test]
    fn top_k_matches_a_full_sort() {
        let logits: Vec<f32> =
            (0..1000).map(|i| ((i * 7919) % 1009) as f32 * 0.37 - 100.0).collect();
        let mut all: Vec<(u32, f32)> =
            logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        assert_eq!(top_k(&logits, 20), all[..20].to_vec());
        assert_eq!(top_k(&logits, 0), vec![]);
        assert_eq!(top_k(&logits[..3], 10).len(), 3);
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut s = Sampler::new(&spec(0.0)).unwrap();
        assert_eq!(s.sample(&[1.0, 5.0, 5.0, 2.0], &[]), 1);
    }

    #[test]
    fn repetition_penalty_changes_the_greedy_choice() {
        let mut s = Sampler::new(&SamplerSpec { repeat_penalty: 2.0, ..spec(0.0) }).unwrap();
        assert_eq!(s.sample(&[1.0, 5.0, 4.0], &[1]), 2);
        assert_eq!(s.sample(&[1.0, 5.0, 4.0], &[]), 1);
    }

    #[test]
    fn seeded_sampling_is_reproducible_and_follows_filters() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32) * 0.1).collect();
        let draw = |sp: SamplerSpec| {
            let mut s = Sampler::new(&sp).unwrap();
            (0..200).map(|_| s.sample(&logits, &[])).collect::<Vec<_>>()
        };
        let a = draw(spec(1.0));
        assert_eq!(a, draw(spec(1.0)));
        assert_ne!(a, draw(SamplerSpec { seed: 8, ..spec(1.0) }));
        assert!(draw(SamplerSpec { top_k: 3, ..spec(1.0) }).iter().all(|&t| t >= 47));
        // min-p 0.9 keeps only tokens within ln(0.9) of the best: just the best one here.
        assert!(draw(SamplerSpec { min_p: 0.95, ..spec(1.0) }).iter().all(|&t| t == 49));
        // top-p tiny keeps only the most likely token.
        assert!(draw(SamplerSpec { top_p: 0.01, ..spec(1.0) }).iter().all(|&t| t == 49));
    }

    #[test]
    fn invalid_settings_are_rejected() {
        assert!(Sampler::new(&SamplerSpec { top_p: 0.0, ..spec(1.0) }).is_err());
        assert!(Sampler::new(&SamplerSpec { temperature: -1.0, ..spec(1.0) }).is_err());
        assert!(Sampler::new(&SamplerSpec { min_p: 2.0, ..spec(1.0) }).is_err());
    }
}
