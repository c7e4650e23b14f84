//! The statistics of an experiment's report: Wilson score intervals for one rate, Newcombe's
//! hybrid score interval (his method 10, built from the two Wilson intervals) for the
//! difference of two rates, the exact McNemar test (a two-sided binomial test on the discordant
//! pairs) for paired binary outcomes, and a normal-approximation (Welch) interval for the
//! difference of two means. Pure functions.

/// The 97.5% quantile of the standard normal distribution (two-sided 95% intervals).
pub const Z95: f64 = 1.959_963_984_540_054;

/// A rate with its 95% Wilson score interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub k: usize,
    pub n: usize,
}

impl Rate {
    pub fn new(k: usize, n: usize) -> Rate {
        Rate { k, n }
    }

    /// `k / n`; `None` without observations.
    pub fn p(&self) -> Option<f64> {
        (self.n > 0).then(|| self.k as f64 / self.n as f64)
    }

    /// The 95% Wilson score interval; `(0, 1)` without observations.
    pub fn wilson(&self) -> (f64, f64) {
        wilson(self.k, self.n, Z95)
    }
}

/// The Wilson score interval of `k` successes in `n` trials at normal quantile `z`.
pub fn wilson(k: usize, n: usize, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (n, p) = (n as f64, k as f64 / n as f64);
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Newcombe's hybrid score interval (method 10) for `p_b − p_a`, at 95%.
pub fn newcombe(a: Rate, b: Rate) -> Option<(f64, f64, f64)> {
    let (pa, pb) = (a.p()?, b.p()?);
    let ((la, ua), (lb, ub)) = (a.wilson(), b.wilson());
    let d = pb - pa;
    let lower = d - ((pb - lb).powi(2) + (ua - pa).powi(2)).sqrt();
    let upper = d + ((ub - pb).powi(2) + (pa - la).powi(2)).sqrt();
    Some((d, lower.max(-1.0), upper.min(1.0)))
}

/// The exact (binomial) McNemar test: `b` pairs where only the first outcome holds, `c` where
/// only the second does; the two-sided p-value of `min(b, c)` or fewer under Binomial(b + c,
/// 1/2), doubled and capped at 1. With no discordant pairs it is 1.
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // Sum of C(n, i) / 2^n for i ≤ k, in logs so that large n stays finite.
    let ln2n = n as f64 * std::f64::consts::LN_2;
    let mut ln_choose = 0.0f64; // ln C(n, 0)
    let mut tail = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_choose - ln2n).exp();
    }
    (2.0 * tail).min(1.0)
}

/// Mean and sample variance of the finite values, with their count.
pub fn mean_var(values: &[f64]) -> Option<(f64, f64, usize)> {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let n = v.len();
    if n == 0 {
        return None;
    }
    let mean = v.iter().sum::<f64>() / n as f64;
    let var = if n > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
    } else {
        0.0
    };
    Some((mean, var, n))
}

/// `mean(b) − mean(a)` with a 95% normal-approximation interval (Welch's standard error).
pub fn mean_difference(a: &[f64], b: &[f64]) -> Option<(f64, f64, f64)> {
    let (ma, va, na) = mean_var(a)?;
    let (mb, vb, nb) = mean_var(b)?;
    let d = mb - ma;
    let se = (va / na as f64 + vb / nb as f64).sqrt();
    Some((d, d - Z95 * se, d + Z95 * se))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() < tol
    }

    #[test]
    fn wilson_matches_hand_computed_values() {
        // 8 of 10, from the other closed form (2np + z² ± z√(z² + 4np(1−p))) / (2(n + z²)):
        // (19.841459 ∓ 1.959964 × √10.241459) / 27.682918 = 0.490162, 0.943318.
        let (lo, hi) = wilson(8, 10, Z95);
        assert!(close(lo, 0.490162, 1e-6) && close(hi, 0.943318, 1e-6), "{lo} {hi}");
        // 0 of 10: [0, z²/(n + z²)] = [0, 3.841459 / 13.841459].
        let (lo, hi) = wilson(0, 10, Z95);
        assert!(close(lo, 0.0, 1e-12) && close(hi, 0.277533, 1e-5), "{lo} {hi}");
        assert_eq!(wilson(0, 0, Z95), (0.0, 1.0));
    }

    #[test]
    fn newcombe_matches_his_worked_example() {
        // Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 against 48/80,
        // method 10 gives 0.0524 to 0.3339 for the difference 0.2.
        let (d, lo, hi) = newcombe(Rate::new(48, 80), Rate::new(56, 70)).unwrap();
        assert!(close(d, 0.2, 1e-12));
        assert!(close(lo, 0.0524, 5e-4) && close(hi, 0.3339, 5e-4), "{lo} {hi}");
        assert!(newcombe(Rate::new(0, 0), Rate::new(1, 2)).is_none());
    }

    #[test]
    fn exact_mcnemar_is_the_doubled_binomial_tail() {
        // b = 1, c = 9: 2 × (C(10,0) + C(10,1)) / 2^10 = 22/1024.
        assert!(close(mcnemar_exact(1, 9), 22.0 / 1024.0, 1e-12));
        assert!(close(mcnemar_exact(9, 1), 22.0 / 1024.0, 1e-12));
        // b = 0, c = 5: 2 / 32.
        assert!(close(mcnemar_exact(0, 5), 0.0625, 1e-12));
        // b = 2, c = 8: 2 × (1 + 10 + 45) / 1024 = 112/1024.
        assert!(close(mcnemar_exact(2, 8), 112.0 / 1024.0, 1e-12));
        // Balanced and empty: 1.
        assert_eq!(mcnemar_exact(3, 3), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // Large n stays finite: 0 of 2000 discordant pairs on one side.
        assert!(mcnemar_exact(0, 2000) < 1e-300 || mcnemar_exact(0, 2000) == 0.0);
    }

    #[test]
    fn mean_difference_uses_welchs_standard_error() {
        // a: mean 2, var 1; b: mean 4, var 1; n = 3 each: se = √(2/3) = 0.816497.
        let (d, lo, hi) = mean_difference(&[1.0, 2.0, 3.0], &[3.0, 4.0, 5.0]).unwrap();
        assert!(close(d, 2.0, 1e-12));
        assert!(close(hi - d, Z95 * 0.816_496_6, 1e-6) && close(d - lo, hi - d, 1e-12));
        assert!(mean_difference(&[], &[1.0]).is_none());
    }
}
