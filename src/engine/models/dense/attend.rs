//! Attention of one new token per sequence against that sequence's KV cache, on the CPU, in
//! plain loops rather than candle's general matmul: a decode step's attention is a few small
//! matrix-vector products per head, where candle's strided batched matmul spent more time
//! packing operands than multiplying (an eighth of a batched decode step on the demo model,
//! measured at positions under 100). A lone decode and a batched one both come here, so a
//! sequence sees the same numbers either way.
//!
//! The work is split over candle's thread pool by (sequence, KV head): the query heads that
//! share a KV head (grouped-query attention) read each cached key and value once. `Dense`'s
//! `cached_attention` is the entry point from the lone and the batched decode.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use candle_core::{Device, Storage, Tensor};

use super::Dense;
use crate::engine::error::{Error, Result};

/// The shape of the attention: heads, KV heads, head size.
#[derive(Debug, Clone, Copy)]
pub(super) struct Heads {
    pub n_head: usize,
    pub n_kv: usize,
    pub dim: usize,
}

/// One sequence's query and cache: its queries (`n_head * dim` values), the sequence's cache
/// buffers (`(n_kv, cap, dim)` each, `k` and `v`, starting at `offset` in the buffers), and
/// how many positions are cached (the new one included).
#[derive(Debug, Clone, Copy)]
pub(super) struct Row<'a> {
    pub q: &'a [f32],
    pub offset: usize,
    pub cap: usize,
    pub len: usize,
}

/// `f` of the f32 values of a CPU tensor that is its whole buffer (contiguous from the
/// buffer's start, as the KV caches are), or `None` for other tensors.
pub(super) fn with_cpu_buffer<T>(t: &Tensor, f: impl FnOnce(&[f32]) -> T) -> Option<T> {
    let (storage, layout) = t.storage_and_layout();
    if !layout.is_contiguous() || layout.start_offset() != 0 {
        return None;
    }
    match &*storage {
        Storage::Cpu(cpu) => cpu.as_slice::<f32>().ok().map(f),
        _ => None,
    }
}

/// Attention output of every row, `rows * n_head * dim` values (row-major, heads in order),
/// scaled by `1/sqrt(dim)` and softmax-normalised as candle's `matmul` + `softmax_last_dim`
/// path does it.
pub(super) fn attend_rows(
    heads: Heads,
    rows: &[Row<'_>],
    k: &[f32],
    v: &[f32],
) -> Result<Vec<f32>> {
    let Heads { n_head, n_kv, dim } = heads;
    if n_kv == 0 || n_head % n_kv != 0 || dim == 0 {
        return Err(Error::Worker(format!("attention of {n_head} heads over {n_kv} KV heads")));
    }
    let n_rep = n_head / n_kv;
    for r in rows {
        let end = r.offset + n_kv * r.cap * dim;
        if r.q.len() != n_head * dim || r.len > r.cap || r.len == 0 || end > k.len().min(v.len()) {
            return Err(Error::Worker(format!(
                "attention row of {} queries over {} of {} cached positions past the cache",
                r.q.len(),
                r.len,
                r.cap
            )));
        }
    }
    let scale = 1.0 / (dim as f32).sqrt();
    let mut out = vec![0f32; rows.len() * n_head * dim];
    // One output slice per (row, KV head): its n_rep query heads, side by side.
    let slots: Vec<Mutex<&mut [f32]>> = out.chunks_mut(n_rep * dim).map(Mutex::new).collect();
    let cursor = AtomicUsize::new(0);
    candle_core::utils::barrier_pool().execute(|_| loop {
        let at = cursor.fetch_add(1, Ordering::Relaxed);
        let (Some(slot), Some(row)) = (slots.get(at), rows.get(at / n_kv)) else { break };
        let Ok(mut o) = slot.lock() else { break };
        let h = at % n_kv;
        let base = row.offset + h * row.cap * dim;
        let keys = &k[base..base + row.len * dim];
        let values = &v[base..base + row.len * dim];
        let q = &row.q[h * n_rep * dim..(h + 1) * n_rep * dim];
        head_group(q, keys, values, dim, scale, &mut o);
    });
    drop(slots);
    Ok(out)
}

/// The query heads `q` (`n_rep * dim`) of one KV head against its `keys` and `values`
/// (`len * dim` each) into `out` (`n_rep * dim`).
fn head_group(q: &[f32], keys: &[f32], values: &[f32], dim: usize, scale: f32, out: &mut [f32]) {
    thread_local! {
        static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    }
    let n_rep = q.len() / dim;
    let len = keys.len() / dim;
    SCORES.with(|cell| {
        let mut scores = cell.borrow_mut();
        scores.clear();
        scores.resize(n_rep * len, 0.0);
        for (j, key) in keys.chunks_exact(dim).enumerate() {
            for (r, qr) in q.chunks_exact(dim).enumerate() {
                scores[r * len + j] = dot(qr, key) * scale;
            }
        }
        for (s, o) in scores.chunks_exact_mut(len).zip(out.chunks_exact_mut(dim)) {
            let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for x in s.iter_mut() {
                *x = (*x - max).exp();
                sum += *x;
            }
            for x in s.iter_mut() {
                *x /= sum;
            }
            weighted_sum(s, values, o);
        }
    });
}

impl Dense {
    /// Whether a decode step's attention runs in `attend`'s CPU kernel: f32 caches in main
    /// memory.
    pub(super) fn cpu_attention(&self) -> bool {
        matches!(self.device, Device::Cpu)
    }

    /// One new token's attention per sequence (`attend_rows`): `q` holds each
    /// sequence's queries (`n_head * head_dim` values each), `seqs` each sequence's offset in
    /// the cache buffers `k`/`v` (`(.., n_head_kv, cap, head_dim)`, written up to the new
    /// position) and its cached positions. Returns `(1, seqs, n_head * head_dim)`, or `None`
    /// where the buffers are not f32 in main memory (candle's path then).
    pub(super) fn cached_attention(
        &self,
        q: &[f32],
        (k, v): (&Tensor, &Tensor),
        seqs: &[(usize, usize)],
        cap: usize,
    ) -> Result<Option<Tensor>> {
        let hp = &self.hp;
        let heads = Heads { n_head: hp.n_head, n_kv: hp.n_head_kv, dim: hp.head_dim };
        let width = hp.n_head * hp.head_dim;
        let rows: Vec<Row<'_>> = seqs
            .iter()
            .zip(q.chunks_exact(width))
            .map(|(&(offset, len), q)| Row { q, offset, cap, len })
            .collect();
        let out =
            with_cpu_buffer(k, |kb| with_cpu_buffer(v, |vb| attend_rows(heads, &rows, kb, vb)));
        match out.flatten() {
            Some(out) => Ok(Some(Tensor::from_vec(out?, (1, rows.len(), width), &self.device)?)),
            None => Ok(None),
        }
    }
}

/// `out = Σ_j p[j] · values[j]` (`values` holds one row of `out.len()` per `p`): with AVX2,
/// 32 columns at a time in four accumulators that stay in registers over all the rows; else
/// row by row into `out`.
#[inline]
fn weighted_sum(p: &[f32], values: &[f32], out: &mut [f32]) {
    let dim = out.len();
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        return simd.vectorize(|| weighted_sum_avx2(simd, p, values, out));
    }
    out.fill(0.0);
    for (&p, value) in p.iter().zip(values.chunks_exact(dim)) {
        for (a, &b) in out.iter_mut().zip(value) {
            *a += p * b;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn weighted_sum_avx2(simd: pulp::x86::V3, p: &[f32], values: &[f32], out: &mut [f32]) {
    let dim = out.len();
    for (g, o) in out.chunks_mut(32).enumerate() {
        let at = g * 32;
        if o.len() < 32 {
            o.fill(0.0);
            for (&p, value) in p.iter().zip(values.chunks_exact(dim)) {
                for (a, &b) in o.iter_mut().zip(&value[at..]) {
                    *a += p * b;
                }
            }
            continue;
        }
        let mut acc = [simd.avx._mm256_setzero_ps(); 4];
        for (&p, value) in p.iter().zip(values.chunks_exact(dim)) {
            let p = simd.avx._mm256_set1_ps(p);
            for (k, a) in acc.iter_mut().enumerate() {
                *a = simd.fma._mm256_fmadd_ps(p, load8(&value[at + 8 * k..at + 8 * k + 8]), *a);
            }
        }
        for (k, a) in acc.iter().enumerate() {
            let lanes: [f32; 8] = pulp::cast(*a);
            o[8 * k..8 * k + 8].copy_from_slice(&lanes);
        }
    }
}

/// Eight floats as a vector.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn load8(s: &[f32]) -> std::arch::x86_64::__m256 {
    let mut v = [0f32; 8];
    v.copy_from_slice(s);
    pulp::cast(v)
}

/// `a · b`: with AVX2, two eight-lane FMA chains and a pairwise sum of the lanes; else
/// sixteen lanes in plain code (which vectorizes without reordering a float sum).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        return simd.vectorize(|| dot_avx2(simd, a, b));
    }
    const LANES: usize = 16;
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ta.iter().zip(tb) {
        sum += x * y;
    }
    sum
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn dot_avx2(simd: pulp::x86::V3, a: &[f32], b: &[f32]) -> f32 {
    let load = load8;
    let mut acc = [simd.avx._mm256_setzero_ps(); 2];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        acc[0] = simd.fma._mm256_fmadd_ps(load(&x[..8]), load(&y[..8]), acc[0]);
        acc[1] = simd.fma._mm256_fmadd_ps(load(&x[8..]), load(&y[8..]), acc[1]);
    }
    let lanes: [f32; 8] = pulp::cast(simd.avx._mm256_add_ps(acc[0], acc[1]));
    let mut sum = ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6]))
        + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]));
    for (x, y) in ta.iter().zip(tb) {
        sum += x * y;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel against a direct f64 computation of softmax(q·K/sqrt(d))·V, for grouped
    /// heads, two sequences in one buffer, and a head size with a tail past the lanes.
    #[test]
    fn matches_a_direct_computation() {
        let heads = Heads { n_head: 6, n_kv: 2, dim: 20 };
        let (cap, seqs) = (7usize, 2usize);
        let per_seq = heads.n_kv * cap * heads.dim;
        let val =
            |i: usize, salt: usize| (((i * 7919 + salt * 104729) % 1000) as f32 / 500.0) - 1.0;
        let k: Vec<f32> = (0..seqs * per_seq).map(|i| val(i, 1)).collect();
        let v: Vec<f32> = (0..seqs * per_seq).map(|i| val(i, 2)).collect();
        let qs: Vec<Vec<f32>> = (0..seqs)
            .map(|s| (0..heads.n_head * heads.dim).map(|i| val(i, 3 + s)).collect())
            .collect();
        let lens = [5usize, 7];
        let rows: Vec<Row<'_>> =
            (0..seqs).map(|s| Row { q: &qs[s], offset: s * per_seq, cap, len: lens[s] }).collect();
        let got = attend_rows(heads, &rows, &k, &v).unwrap();
        let d = heads.dim;
        for (s, row) in rows.iter().enumerate() {
            for h in 0..heads.n_head {
                let kv = h / (heads.n_head / heads.n_kv);
                let base = row.offset + kv * cap * d;
                let q = &row.q[h * d..(h + 1) * d];
                let scores: Vec<f64> = (0..row.len)
                    .map(|j| {
                        let key = &k[base + j * d..base + (j + 1) * d];
                        q.iter().zip(key).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let total: f64 = scores.iter().map(|x| (x - max).exp()).sum();
                for l in 0..d {
                    let want: f64 = (0..row.len)
                        .map(|j| (scores[j] - max).exp() / total * f64::from(v[base + j * d + l]))
                        .sum();
                    let at = (s * heads.n_head + h) * d + l;
                    assert!((f64::from(got[at]) - want).abs() < 1e-5, "seq {s} head {h} [{l}]");
                }
            }
        }
        // A row that reads past the buffer is refused, not read.
        let bad = [Row { q: &qs[0], offset: per_seq, cap: cap + 1, len: 2 }];
        assert!(attend_rows(heads, &bad, &k, &v).is_err());
    }
}
