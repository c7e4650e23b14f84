//! The decode attention kernel against direct computations.

use super::*;

/// A deterministic value in [-1, 1) for index `i` of stream `salt`.
fn val(i: usize, salt: usize) -> f32 {
    (((i * 7919 + salt * 104_729) % 1000) as f32 / 500.0) - 1.0
}

/// `attend_rows` against a direct f64 computation of softmax(q·K/sqrt(d))·V over the
/// cache's values as stored (`T`), for several sequences in one buffer.
fn check<T: CacheValue>(heads: Heads, cap: usize, lens: &[usize], from: fn(f32) -> T) {
    let seqs = lens.len();
    let per_seq = heads.n_kv * cap * heads.dim;
    // Scores of a few units, as real ones are, so the softmax is not flat.
    let k: Vec<T> = (0..seqs * per_seq).map(|i| from(2.0 * val(i, 1))).collect();
    let v: Vec<T> = (0..seqs * per_seq).map(|i| from(val(i, 2))).collect();
    let qs: Vec<Vec<f32>> = (0..seqs)
        .map(|s| (0..heads.n_head * heads.dim).map(|i| 2.0 * val(i, 3 + s)).collect())
        .collect();
    let rows: Vec<Row<'_>> =
        (0..seqs).map(|s| Row { q: &qs[s], offset: s * per_seq, cap, len: lens[s] }).collect();
    let got = attend_rows(heads, &rows, &k, &v).unwrap();
    let d = heads.dim;
    let f = |x: T| x.to_f64();
    for (s, row) in rows.iter().enumerate() {
        for h in 0..heads.n_head {
            let kv = h / (heads.n_head / heads.n_kv);
            let base = row.offset + kv * cap * d;
            let q = &row.q[h * d..(h + 1) * d];
            let scores: Vec<f64> = (0..row.len)
                .map(|j| {
                    let key = &k[base + j * d..base + (j + 1) * d];
                    q.iter().zip(key).map(|(a, &b)| f64::from(*a) * f(b)).sum::<f64>()
                        / (d as f64).sqrt()
                })
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = scores.iter().map(|x| (x - max).exp()).sum();
            for l in 0..d {
                let want: f64 = (0..row.len)
                    .map(|j| (scores[j] - max).exp() / total * f(v[base + j * d + l]))
                    .sum();
                let at = (s * heads.n_head + h) * d + l;
                let err = (f64::from(got[at]) - want).abs();
                assert!(err < 2e-5, "seq {s} head {h} [{l}]: {} against {want}", got[at]);
            }
        }
    }
    // A row that reads past the buffer is refused, not read.
    let bad = [Row { q: &qs[0], offset: per_seq * (seqs - 1), cap: cap + 1, len: 2 }];
    assert!(attend_rows(heads, &bad, &k, &v).is_err());
}

/// Grouped heads (3 and 6 per KV head: the four-head and the smaller register blocks), a
/// head size with a tail past the sixteen columns, sequences of one position, of part of a
/// span and of several spans (merged), in f32 and f16 caches.
#[test]
fn matches_a_direct_computation() {
    let lens = [5usize, 1, 2 * SPAN + 37];
    for heads in [
        Heads { n_head: 6, n_kv: 2, dim: 20 },
        Heads { n_head: 12, n_kv: 2, dim: 64 },
        Heads { n_head: 3, n_kv: 3, dim: 48 },
    ] {
        check::<f32>(heads, 2 * SPAN + 40, &lens, |x| x);
        check::<f16>(heads, 2 * SPAN + 40, &lens, f16::from_f32);
    }
}

/// The vectorizable `exp` against the standard one over a softmax's range.
#[test]
fn exp_is_within_two_ulp() {
    let mut worst = 0u32;
    for i in 0..=200_000 {
        let x = -87.0 * i as f32 / 200_000.0;
        let (got, want) = (exp(x), x.exp());
        worst = worst.max(got.to_bits().abs_diff(want.to_bits()));
    }
    assert!(worst <= 2, "{worst} ulp");
    assert_eq!(exp(-87.5), 0.0);
    assert_eq!(exp(f32::NEG_INFINITY), 0.0);
    assert!(exp(f32::NAN).is_nan());
    assert_eq!(exp(0.0), 1.0);
}

/// Spans merge to the same numbers as one pass would give, to rounding: a long row with
/// its scores peaked in its last span (the merge must rescale the earlier ones).
#[test]
fn spans_merge_as_one_softmax() {
    let heads = Heads { n_head: 2, n_kv: 1, dim: 16 };
    let len = 3 * SPAN;
    let mut k = vec![0f32; len * 16];
    let v: Vec<f32> = (0..len * 16).map(|i| val(i, 5)).collect();
    // Key `len - 1` matches the query strongly; the rest are orthogonal to it.
    k[(len - 1) * 16] = 8.0;
    let mut q = vec![0f32; 32];
    q[0] = 8.0;
    q[16] = 8.0;
    let rows = [Row { q: &q, offset: 0, cap: len, len }];
    let got = attend_rows(heads, &rows, &k, &v).unwrap();
    // softmax: e^16 against (len - 1) ones.
    let big = 16f64.exp();
    let total = big + (len - 1) as f64;
    for l in 0..16 {
        let rest: f64 = (0..len - 1).map(|j| f64::from(v[j * 16 + l])).sum();
        let want = (big * f64::from(v[(len - 1) * 16 + l]) + rest) / total;
        assert!((f64::from(got[l]) - want).abs() < 1e-5, "[{l}] {} against {want}", got[l]);
    }
}

/// A short row's attention has the same bits alone (a task per query head) as in a batch long
/// enough that each task is a KV head's group of query heads: the lone and the batched decode
/// of a sequence agree.
#[test]
fn a_rows_numbers_do_not_depend_on_how_its_heads_are_split() {
    let heads = Heads { n_head: 9, n_kv: 3, dim: 64 };
    let (cap, len) = (4 * SPAN, 40);
    let threads = candle_core::utils::barrier_pool().n_workers() + 1;
    // Enough rows that the batch has `TASKS_PER_THREAD` tasks per thread at KV-head grain.
    let seqs = (TASKS_PER_THREAD * threads).div_ceil(heads.n_kv) + 1;
    let per_seq = heads.n_kv * cap * heads.dim;
    let k: Vec<f16> = (0..seqs * per_seq).map(|i| f16::from_f32(2.0 * val(i, 5))).collect();
    let v: Vec<f16> = (0..seqs * per_seq).map(|i| f16::from_f32(val(i, 6))).collect();
    let q: Vec<f32> = (0..heads.n_head * heads.dim).map(|i| 2.0 * val(i, 7)).collect();
    let row = |s: usize| Row { q: &q, offset: s * per_seq, cap, len };
    let alone = attend_rows(heads, &[row(0)], &k, &v).unwrap();
    let batch: Vec<Row<'_>> = (0..seqs).map(row).collect();
    let together = attend_rows(heads, &batch, &k, &v).unwrap();
    assert_eq!(alone, together[..alone.len()]);
}

/// `dot4` sums each of its four products within 1e-5 of an f64 sum, for head sizes with and
/// without a tail past the eight-lane chunks, in every instruction set this CPU has; and a
/// key's sum is the same bits in whichever of the four places it is.
#[test]
fn dot4_sums_each_key_alike_wherever_it_is() {
    for dim in [64, 80, 37, 8, 3] {
        let a: Vec<f32> = (0..dim).map(|i| val(i, 11)).collect();
        let keys: Vec<Vec<f32>> =
            (0..4).map(|k| (0..dim).map(|i| 2.0 * val(i, 12 + k)).collect()).collect();
        for simd in [Simd::detect(), Simd::Portable] {
            let got = simd.dot4(&a, [&keys[0], &keys[1], &keys[2], &keys[3]]);
            for (k, key) in keys.iter().enumerate() {
                let want: f64 = a.iter().zip(key).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
                assert!((f64::from(got[k]) - want).abs() < 1e-5, "dim {dim} key {k}");
                let mut moved = [&keys[(k + 1) % 4][..]; 4];
                moved[(k + 2) % 4] = key;
                let alone = simd.dot4(&a, moved)[(k + 2) % 4];
                assert_eq!(alone.to_bits(), got[k].to_bits(), "dim {dim} key {k}");
            }
        }
    }
}
