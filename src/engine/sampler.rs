//! Turning logits into a recorded choice: statistics of the raw distribution (logprob,
//! entropy, top-k alternatives) and a seeded sampler (greedy, repetition penalty, top-k, top-p,
//! min-p, temperature).
//!
//! The statistics are always of the *unmodified* logits, so a recorded logprob says what the
//! model believed, not what the sampling filters left. The filters run in llama.cpp's default
//! order: penalties, top-k, top-p, min-p, temperature, then a draw. Depends on `trace`, and on
//! candle for its thread pool.

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
    /// Computes the statistics in one pass for the normaliser and one for the entropy, plus a
    /// top-k selection that rejects most tokens with one comparison. A vocabulary of at least
    /// `PARALLEL_MIN` tokens is split between the threads of candle's pool (the decode's
    /// matmuls have just finished there, and the step waits on this).
    pub fn of(logits: &[f32], k: usize) -> Self {
        RawStats::split(logits, k, true)
    }

    /// `of` computed on the calling thread alone, for a caller that is itself a task of
    /// candle's pool (the pool runs one job at a time: a nested job waits for itself
    /// forever). The vocabulary is split into the same parts, combined the same way, so the
    /// statistics are `of`'s bit for bit.
    pub fn of_in_task(logits: &[f32], k: usize) -> Self {
        RawStats::split(logits, k, false)
    }

    /// The statistics from one part per thread of candle's pool (one part under
    /// `PARALLEL_MIN` tokens), the parts computed on the pool if `pooled`.
    fn split(logits: &[f32], k: usize, pooled: bool) -> Self {
        let pool = candle_core::utils::barrier_pool();
        let n = match logits.len() >= PARALLEL_MIN {
            true => pool.n_workers() + 1,
            false => 1,
        };
        if n == 1 {
            return RawStats::combine(vec![Part::of(logits, 0, k)], k);
        }
        let per = logits.len().div_ceil(n);
        if !pooled {
            let parts = (0..n)
                .map(|i| {
                    let start = (i * per).min(logits.len());
                    let end = (start + per).min(logits.len());
                    Part::of(&logits[start..end], start, k)
                })
                .collect();
            return RawStats::combine(parts, k);
        }
        let slots: Vec<std::sync::Mutex<Option<Part>>> =
            (0..n).map(|_| std::sync::Mutex::new(None)).collect();
        pool.execute(|tid| {
            let start = (tid * per).min(logits.len());
            let end = (start + per).min(logits.len());
            if let Some(Ok(mut slot)) = slots.get(tid).map(|s| s.lock()) {
                *slot = Some(Part::of(&logits[start..end], start, k));
            }
        });
        let parts = slots.into_iter().filter_map(|s| s.into_inner().ok().flatten()).collect();
        RawStats::combine(parts, k)
    }

    /// The statistics of the whole from those of its parts: the exponential sums rescaled
    /// from each part's maximum to the overall one, the top `k` of the parts' top `k`.
    fn combine(parts: Vec<Part>, k: usize) -> Self {
        let max = parts.iter().map(|p| p.max).fold(f64::NEG_INFINITY, f64::max);
        let (mut sum, mut weighted) = (0f64, 0f64);
        let mut top = Vec::new();
        for p in parts {
            // A part of -inf logits only adds nothing (its own sums are NaN).
            if p.max > f64::NEG_INFINITY {
                let scale = exp(p.max - max);
                sum += p.sum * scale;
                weighted += p.weighted * scale;
            }
            top.extend(p.top);
        }
        let log_norm = max + sum.ln();
        // H = -Σ p (l - log_norm) = log_norm - Σ p l
        let entropy = (log_norm - weighted / sum).max(0.0) as f32;
        top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        top.truncate(k);
        let top = top.into_iter().map(|(id, l)| (id, (l as f64 - log_norm) as f32)).collect();
        RawStats { log_norm, entropy, top }
    }

    pub fn logprob(&self, logit: f32) -> f32 {
        (logit as f64 - self.log_norm) as f32
    }
}

/// The smallest vocabulary whose statistics are computed on several threads.
const PARALLEL_MIN: usize = 16_384;

/// The statistics of a run of logits: its maximum, `Σ e^(l - max)` and `Σ e^(l - max) l`, and
/// its top `k` (ids of the whole vocabulary).
struct Part {
    max: f64,
    sum: f64,
    weighted: f64,
    top: Vec<(u32, f32)>,
}

impl Part {
    /// The part `logits` of a vocabulary, its first id `first`.
    fn of(logits: &[f32], first: usize, k: usize) -> Self {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        // In blocks: the exponentials first (a plain map, which vectorizes with `exp` inlined),
        // then eight partial sums of them (lane by lane, which vectorizes too).
        const BLOCK: usize = 256;
        let mut sums = [0f64; 8];
        let mut weighted_sums = [0f64; 8];
        let mut e = [0f64; BLOCK];
        let mut el = [0f64; BLOCK];
        for chunk in logits.chunks(BLOCK) {
            for ((e, el), &l) in e.iter_mut().zip(el.iter_mut()).zip(chunk) {
                let l = l as f64;
                *e = exp(l - max);
                // e is 0 for a -inf logit, whose product would be NaN.
                *el = if *e > 0.0 { *e * l } else { 0.0 };
            }
            let n = chunk.len();
            for (i, (&e, &el)) in e[..n].iter().zip(&el[..n]).enumerate() {
                sums[i % 8] += e;
                weighted_sums[i % 8] += el;
            }
        }
        let mut top = top_k(logits, k);
        for (id, _) in &mut top {
            *id += first as u32;
        }
        Part { max, sum: sums.iter().sum(), weighted: weighted_sums.iter().sum(), top }
    }
}

/// `e^x` for the shifted logits of a distribution (`x <= 0` in practice), in straight-line
/// arithmetic that vectorizes, where the C library's `exp` is a call per value (a sampled
/// decode takes two per vocabulary entry per step). Cody-Waite reduction `x = n ln 2 + r`,
/// `|r| <= ln 2 / 2`, and the Taylor polynomial of `e^r` to degree 13 (truncation below
/// 1e-17): within a few ulps of `f64::exp`. Values under `e^-708` (past the normal range)
/// are 0, which changes no sum they are part of, and `-inf` gives 0.
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // 1.5 * 2^52: adding and subtracting it rounds to the nearest integer.
    const ROUND: f64 = 6_755_399_441_055_744.0;
    let clamped = x.clamp(-708.0, 709.0);
    let n = (clamped * std::f64::consts::LOG2_E + ROUND) - ROUND;
    let r = (clamped - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 6_227_020_800.0;
    for k in (1..13u32).rev() {
        // Horner on 1/k! down to 1/1!, then + 1.
        p = p * r + INV_FACT[k as usize];
    }
    let p = p * r + 1.0;
    let scale = f64::from_bits(((n as i64 + 1023) as u64) << 52);
    if x < -708.0 {
        0.0
    } else {
        p * scale
    }
}

/// 1/k! for k = 0..=12.
const INV_FACT: [f64; 13] = [
    1.0,
    1.0,
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5_040.0,
    1.0 / 40_320.0,
    1.0 / 362_880.0,
    1.0 / 3_628_800.0,
    1.0 / 39_916_800.0,
    1.0 / 479_001_600.0,
];

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

/// Every logit as `(id, logit)` into `out`, largest first, ties by the lower id: the order of
/// a comparison sort by `f32::total_cmp` (descending) then id, computed by a stable LSD radix
/// sort on the logit's bits in three passes of 11, 11 and 10 bits. The input is in id order
/// and every pass is stable, so equal logits stay in id order. On a 49k vocabulary this is
/// several times cheaper than the comparison sort, and a sampled decode pays it every step.
pub fn sorted_desc(logits: &[f32], out: &mut Vec<(u32, f32)>, scratch: &mut Vec<(u32, f32)>) {
    // `total_cmp`'s order as an unsigned key, inverted so that ascending keys are descending
    // logits.
    fn key(l: f32) -> u32 {
        let bits = l.to_bits();
        let ordered = if bits & 0x8000_0000 != 0 { !bits } else { bits | 0x8000_0000 };
        !ordered
    }
    out.clear();
    out.extend(logits.iter().enumerate().map(|(i, &l)| (i as u32, l)));
    scratch.clear();
    scratch.resize(out.len(), (0, 0.0));
    for (shift, bits) in [(0u32, 11u32), (11, 11), (22, 10)] {
        let mask = (1u32 << bits) - 1;
        let digit = |l: f32| ((key(l) >> shift) & mask) as usize;
        let mut starts = vec![0usize; 1 << bits];
        for &(_, l) in out.iter() {
            starts[digit(l)] += 1;
        }
        let mut at = 0;
        for s in starts.iter_mut() {
            let n = *s;
            *s = at;
            at += n;
        }
        for &c in out.iter() {
            let d = digit(c.1);
            scratch[starts[d]] = c;
            starts[d] += 1;
        }
        std::mem::swap(out, scratch);
    }
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
    /// The radix sort's second buffer (kept, as `candidates` is, from draw to draw).
    scratch: Vec<(u32, f32)>,
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
            scratch: Vec::new(),
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
        if k == logits.len() {
            sorted_desc(logits, &mut self.candidates, &mut self.scratch);
        } else {
            self.candidates = top_k(logits, k);
        }
        let cands = &mut self.candidates;
        let max = cands.first().map(|c| c.1).unwrap_or(0.0);
        // top-p over the softmax of the remaining candidates (before temperature, as llama.cpp).
        if s.top_p < 1.0 {
            let probs: Vec<f64> = cands.iter().map(|c| exp((c.1 - max) as f64)).collect();
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
        let weights: Vec<f64> = cands.iter().map(|c| exp((c.1 - max) as f64 / t)).collect();
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
    /// Statistics combined from parts (as the threads compute them) are those of the whole:
    /// the same top k (ties by the lower id across parts) and the same normaliser and entropy
    /// to f64 rounding, also with a part of -inf logits.
    #[test]
    fn statistics_of_parts_combine_to_those_of_the_whole() {
        let mut logits: Vec<f32> =
            (0..50_000).map(|i| ((i * 7_919) % 10_007) as f32 * 0.003 - 12.0).collect();
        logits[49_990] = 30.0;
        logits[3] = 30.0; // a tie across parts: id 3 comes first
        for l in &mut logits[20_000..30_000] {
            *l = f32::NEG_INFINITY;
        }
        let k = 20;
        let whole = super::RawStats::combine(vec![super::Part::of(&logits, 0, k)], k);
        let parts = logits
            .chunks(10_000)
            .enumerate()
            .map(|(i, c)| super::Part::of(c, i * 10_000, k))
            .collect();
        let split = super::RawStats::combine(parts, k);
        assert_eq!(split.top, whole.top);
        assert_eq!(split.top[..2].iter().map(|t| t.0).collect::<Vec<_>>(), vec![3, 49_990]);
        assert!((split.log_norm - whole.log_norm).abs() < 1e-12);
        assert!((split.entropy - whole.entropy).abs() < 1e-6);
        // And `of`, on the pool, agrees.
        let pooled = super::RawStats::of(&logits, k);
        assert_eq!(pooled.top, whole.top);
        assert!((pooled.log_norm - whole.log_norm).abs() < 1e-12);
        // Inside a task of the pool (a batched decode's draws) `of_in_task` returns, with
        // `of`'s bits.
        let inside = std::sync::Mutex::new(None);
        candle_core::utils::barrier_pool().execute(|tid| {
            if tid == 0 {
                *inside.lock().unwrap() = Some(super::RawStats::of_in_task(&logits, k));
            }
        });
        let inside = inside.into_inner().unwrap().unwrap();
        assert_eq!(inside.top, pooled.top);
        assert_eq!(inside.log_norm.to_bits(), pooled.log_norm.to_bits());
        assert_eq!(inside.entropy.to_bits(), pooled.entropy.to_bits());
    }

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
    fn exp_is_within_a_few_ulps_of_the_library() {
        let mut x = -708.0f64;
        while x <= 5.0 {
            let (got, want) = (exp(x), x.exp());
            assert!((got - want).abs() <= 4.0 * f64::EPSILON * want, "{x}: {got} vs {want}");
            x += 0.0137;
        }
        for x in [0.0, -0.0, 1e-300, -1e-12, -0.34657359, 0.34657359, -745.0, -1e9] {
            let (got, want) = (exp(x), x.exp());
            assert!((got - want).abs() <= 4.0 * f64::EPSILON * want + 1e-307, "{x}: {got}");
        }
        assert_eq!(exp(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn radix_order_is_the_comparison_order() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut logits: Vec<f32> = (0..5000).map(|_| (rng.random::<f32>() - 0.5) * 60.0).collect();
        // Ties, signed zeros, infinities, tiny and huge values, and NaN.
        logits.extend([
            1.5,
            1.5,
            -1.5,
            -1.5,
            0.0,
            -0.0,
            0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            f32::MAX,
            f32::MIN,
            f32::NAN,
        ]);
        logits.extend_from_within(..100);
        let mut want: Vec<(u32, f32)> =
            logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
        want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let (mut got, mut scratch) = (Vec::new(), Vec::new());
        sorted_desc(&logits, &mut got, &mut scratch);
        let bits = |v: &[(u32, f32)]| v.iter().map(|c| (c.0, c.1.to_bits())).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want));
        sorted_desc(&[], &mut got, &mut scratch);
        assert!(got.is_empty());
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
