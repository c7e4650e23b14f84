//! Attention of one new token per sequence against that sequence's KV cache, on the CPU, in
//! plain loops rather than candle's general matmul: a decode step's attention is a few small
//! matrix-vector products per head, where candle's strided batched matmul spent more time
//! packing operands than multiplying. A lone decode and a batched one both come here, so a
//! sequence sees the same numbers either way.
//!
//! The caches hold f16 values (the default, as llama.cpp's: half the bytes to read per
//! position) or f32 ones (`--kv-cache f32`). Keys and values are widened to f32 a tile of
//! `TILE` positions at a time, into a buffer that stays in L1; everything after is f32.
//!
//! The work is split over candle's thread pool by (sequence, KV head, span of `SPAN`
//! positions). The query heads that share a KV head (grouped-query attention) read each
//! cached key and value once; a long context keeps every core busy whatever the head count
//! (the demo model has three KV heads, which two threads split 2:1 when a head is the unit).
//! With few spans (a short context), a task is one query head instead, whose keys and values
//! stay in cache when the next head reads them again. Each span gives a partial softmax (its
//! largest score, its sum of exponentials and its exp-weighted sum of values) and a head's
//! spans are merged at the end, as flash-decoding does. Spans start at fixed positions, so the
//! numbers depend neither on the thread count nor on the other sequences of a batch. `Dense`'s
//! `cached_attention` is the entry point from the lone and the batched decode.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use candle_core::{DType, Device, Storage, Tensor, WithDType};
use half::f16;
use half::slice::HalfFloatSliceExt;

use super::Dense;
use crate::engine::error::{Error, Result};
#[cfg(target_arch = "x86_64")]
use simd::load8;
pub(super) use simd::Simd;

/// Positions per task, the unit of work split over the threads.
const SPAN: usize = 256;
/// How many tiles ahead of the one it computes the key pass asks for the cache's keys (and,
/// at the same time, for the tile's values, which the value pass reads). A decode at a long
/// context reads megabytes of cache per layer once, as it reads the weights, and the hardware
/// prefetcher alone kept too few of those reads in flight.
const AHEAD: usize = 2;
/// Below this many tasks per thread, a decode's attention splits a KV head's query heads
/// over the tasks: the demo model's three KV heads, one span each, kept one of two threads
/// waiting for a third of the attention.
const TASKS_PER_THREAD: usize = 4;
/// Positions widened to f32 at a time (`TILE * head_dim` values, a few KiB).
const TILE: usize = 32;

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

/// The element type of a KV cache: f16 or f32.
pub(super) trait CacheValue: WithDType + Sync {
    /// `src` as f32 values: `src` itself for f32, else converted into `buf`.
    fn widen<'a>(src: &'a [Self], buf: &'a mut Vec<f32>) -> &'a [f32];
}

impl CacheValue for f32 {
    #[inline(always)]
    fn widen<'a>(src: &'a [f32], _: &'a mut Vec<f32>) -> &'a [f32] {
        src
    }
}

impl CacheValue for f16 {
    #[inline(always)]
    fn widen<'a>(src: &'a [f16], buf: &'a mut Vec<f32>) -> &'a [f32] {
        if buf.len() < src.len() {
            buf.resize(src.len(), 0.0);
        }
        let out = &mut buf[..src.len()];
        src.convert_to_f32_slice(out);
        out
    }
}

/// `f` of the `T` values of a CPU tensor that is its whole buffer (contiguous from the
/// buffer's start, as the KV caches are), or `None` for other tensors.
pub(super) fn with_cpu_buffer<T: WithDType, R>(t: &Tensor, f: impl FnOnce(&[T]) -> R) -> Option<R> {
    let (storage, layout) = t.storage_and_layout();
    if !layout.is_contiguous() || layout.start_offset() != 0 {
        return None;
    }
    match &*storage {
        Storage::Cpu(cpu) => cpu.as_slice::<T>().ok().map(f),
        _ => None,
    }
}

/// `view`, the first positions of a `(1, heads, cap, dim)` cache buffer, as an f32 tensor
/// `(1, heads, len, dim)` for candle's attention (a prompt's): the view itself when the cache
/// is f32, else each head's contiguous run widened in one pass (candle's `to_dtype` walks the
/// strided view value by value, a fifth of a long prefill).
pub(super) fn widened(view: &Tensor) -> Result<Tensor> {
    if view.dtype() == DType::F32 {
        return Ok(view.clone());
    }
    let (b, h, len, dim) = view.dims4()?;
    let (storage, layout) = view.storage_and_layout();
    let stride = layout.stride();
    let runs = match (&*storage, b, stride) {
        (Storage::Cpu(cpu), 1, &[_, head_stride, row, 1]) if row == dim => {
            cpu.as_slice::<f16>().ok().map(|all| (all, layout.start_offset(), head_stride))
        }
        _ => None,
    };
    let Some((all, start, head_stride)) = runs else {
        return Ok(view.to_dtype(DType::F32)?);
    };
    let mut out = vec![0f32; h * len * dim];
    for (head, o) in out.chunks_exact_mut(len * dim).enumerate() {
        let at = start + head * head_stride;
        all[at..at + len * dim].convert_to_f32_slice(o);
    }
    drop(storage);
    Ok(Tensor::from_vec(out, (1, h, len, dim), view.device())?)
}

/// Attention output of every row, `rows * n_head * dim` values (row-major, heads in order):
/// `softmax(q·k / sqrt(dim)) · v` over the row's cached positions.
pub(super) fn attend_rows<T: CacheValue>(
    heads: Heads,
    rows: &[Row<'_>],
    k: &[T],
    v: &[T],
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
    // The query heads of a task: a KV head's, or one where that leaves fewer than
    // `TASKS_PER_THREAD` tasks per thread (a short context, whose keys stay in cache if read
    // again). A head's numbers do not depend on the others of its task.
    let threads = candle_core::utils::barrier_pool().n_workers() + 1;
    let spans: usize = rows.iter().map(|r| r.len.div_ceil(SPAN)).sum();
    let per = match spans * n_kv < TASKS_PER_THREAD * threads {
        true => 1,
        false => n_rep,
    };
    // The tasks, (row, group of `per` query heads, first position of the span), a group's
    // spans one after another.
    let mut tasks = Vec::with_capacity(spans * (n_head / per));
    for (ri, r) in rows.iter().enumerate() {
        for g in 0..n_head / per {
            tasks.extend((0..r.len).step_by(SPAN).map(|s| (ri, g, s)));
        }
    }
    let part = per * (dim + 2);
    let mut partials = vec![0f32; tasks.len() * part];
    let slots: Vec<Mutex<&mut [f32]>> = partials.chunks_mut(part).map(Mutex::new).collect();
    let scale = 1.0 / (dim as f32).sqrt();
    let cursor = AtomicUsize::new(0);
    candle_core::utils::barrier_pool().execute(|_| loop {
        let at = cursor.fetch_add(1, Ordering::Relaxed);
        let (Some(slot), Some(&(ri, h, first))) = (slots.get(at), tasks.get(at)) else { break };
        let (Some(row), Ok(mut out)) = (rows.get(ri), slot.lock()) else { break };
        let base = row.offset + h * per / n_rep * row.cap * dim;
        let end = row.len.min(first + SPAN);
        let (keys, values) =
            (&k[base + first * dim..base + end * dim], &v[base + first * dim..base + end * dim]);
        let q = &row.q[h * per * dim..(h + 1) * per * dim];
        span_partial(q, (keys, values), dim, scale, &mut out);
    });
    drop(slots);
    let mut out = vec![0f32; rows.len() * n_head * dim];
    let mut groups = out.chunks_exact_mut(per * dim);
    let mut at = 0;
    while let (Some(o), Some(&(ri, h, _))) = (groups.next(), tasks.get(at)) {
        let spans = tasks[at..].iter().take_while(|t| (t.0, t.1) == (ri, h)).count();
        merge(&partials[at * part..(at + spans) * part], dim, o);
        at += spans;
    }
    Ok(out)
}

/// The output of a KV head's query heads (`out`, `n_rep * dim`) from the partial softmaxes of
/// its spans (`parts`, one block per span, `dim + 2` values per head: the span's largest
/// score, its sum of exponentials, its exp-weighted sum of values).
fn merge(parts: &[f32], dim: usize, out: &mut [f32]) {
    let n_rep = out.len() / dim;
    let heads = |r: usize| {
        parts.chunks_exact(n_rep * (dim + 2)).map(move |p| &p[r * (dim + 2)..(r + 1) * (dim + 2)])
    };
    for (r, o) in out.chunks_exact_mut(dim).enumerate() {
        let max = heads(r).map(|h| h[0]).fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0f32;
        o.fill(0.0);
        for h in heads(r) {
            let w = (h[0] - max).exp();
            total += w * h[1];
            for (a, &b) in o.iter_mut().zip(&h[2..]) {
                *a += w * b;
            }
        }
        for a in o.iter_mut() {
            *a /= total;
        }
    }
}

/// A thread's scratch: the scores of a span and the widened key or value tile.
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    tile: Vec<f32>,
}

/// The partial softmax of the query heads `q` (`n_rep * dim`) over a span of one KV head's
/// positions (`keys`, `values`: `len * dim` each), into `out` (`dim + 2` values per head: the
/// largest score, the sum of exponentials, the exp-weighted sum of values).
fn span_partial<T: CacheValue>(
    q: &[f32],
    (keys, values): (&[T], &[T]),
    dim: usize,
    scale: f32,
    out: &mut [f32],
) {
    thread_local! {
        static SCRATCH: RefCell<Scratch> = RefCell::default();
    }
    let n_rep = q.len() / dim;
    let len = keys.len() / dim;
    let simd = Simd::detect();
    SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        let Scratch { scores, tile: buf } = &mut *scratch;
        if scores.len() < n_rep * len {
            scores.resize(n_rep * len, 0.0);
        }
        // Every score is written (by the key pass) before it is read.
        let scores = &mut scores[..n_rep * len];
        simd.run(|| {
            let step = TILE * dim;
            for (t, tile) in keys.chunks(step).enumerate() {
                let tile = T::widen(tile, buf);
                let rows = tile.len() / dim;
                for j in (0..rows).step_by(4) {
                    // The keys a tile ahead, and these keys' values for the pass after the
                    // keys, a few lines at a time between the products (asked for all at once,
                    // they filled the core's miss buffers and it waited).
                    simd.prefetch(keys, (t + AHEAD) * step + j * dim, 4 * dim);
                    simd.prefetch(values, t * step + j * dim, 4 * dim);
                    // Four keys at a time; past the last key the last is repeated (its sums
                    // dropped), so that every key's score is summed the same way.
                    let key = |i: usize| {
                        let at = (j + i).min(rows - 1) * dim;
                        &tile[at..at + dim]
                    };
                    let quad = [key(0), key(1), key(2), key(3)];
                    let n = (rows - j).min(4);
                    for (r, qr) in q.chunks_exact(dim).enumerate() {
                        let at = r * len + t * TILE + j;
                        for (s, d) in scores[at..at + n].iter_mut().zip(simd.dot4(qr, quad)) {
                            *s = d * scale;
                        }
                    }
                }
            }
            for (s, o) in scores.chunks_exact_mut(len).zip(out.chunks_exact_mut(dim + 2)) {
                let max = max_of(s);
                o[0] = max;
                o[1] = exp_sum(s, max);
                o[2..].fill(0.0);
            }
            // The values were asked for during the key pass.
            for (t, tile) in values.chunks(step).enumerate() {
                let tile = T::widen(tile, buf);
                weighted_sum(simd, (scores, len, t * TILE), tile, dim, out);
            }
        })
    });
}

/// The largest of `s` (eight lanes, then across them).
#[inline(always)]
pub(super) fn max_of(s: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l = l.max(x);
        }
    }
    chunks.remainder().iter().chain(&lanes).copied().fold(f32::NEG_INFINITY, f32::max)
}

/// `s[i] = exp(s[i] - max)`; returns their sum (in eight lanes, then pairwise).
#[inline(always)]
pub(super) fn exp_sum(s: &mut [f32], max: f32) -> f32 {
    for x in s.iter_mut() {
        *x = exp(*x - max);
    }
    let mut lanes = [0f32; 8];
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l += x;
        }
    }
    let mut sum = ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6]))
        + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]));
    for x in chunks.remainder() {
        sum += *x;
    }
    sum
}

/// `e^x` for `x <= 0` (a softmax's shifted scores), in branch-free arithmetic that the
/// compiler vectorizes: `x = n ln 2 + r` with `|r| <= ln 2 / 2`, `e^r` by Cephes' `expf`
/// polynomial, `2^n` built in the exponent bits. Within 2 ulp of `f32::exp`; 0 below -87
/// (where `e^x` < 2^-125); NaN for NaN. The f32 sibling of `sampler::exp` (f64, degree
/// 13, for the vocabulary's normaliser): eight lanes per vector instead of four and a degree-6
/// polynomial, for the millions of scores a long context has per token.
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    // 1.5 * 2^23: adding it rounds to an integer (to even), held in the low mantissa bits.
    const SHIFT: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let z = x.max(-87.0);
    let t = z.mul_add(std::f32::consts::LOG2_E, SHIFT);
    let n = t - SHIFT;
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, z));
    let mut p = 1.987_569_1e-4f32;
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
        p = p.mul_add(r, c);
    }
    let er = (p * r).mul_add(r, r) + 1.0;
    // The exponent of 2^n: n + 127, from t's bits (0x4b40_0000 + n).
    let two_n = f32::from_bits((t.to_bits().wrapping_sub(0x4b40_0000 - 127)) << 23);
    let y = er * two_n;
    if x >= -87.0 {
        y
    } else if x.is_nan() {
        x
    } else {
        0.0
    }
}

/// `acc_r += Σ_j p_r[j] · tile[j]` for every query head `r`: `p_r` is
/// `scores[r * len + at..]` (one weight per row of the tile), `acc_r` the last `dim` of head
/// `r`'s block of `dim + 2` in `out`. With AVX2, up to four heads and sixteen columns at a
/// time in registers (each value read once for them all); else plain loops.
#[inline(always)]
fn weighted_sum(
    simd: Simd,
    (scores, len, at): (&[f32], usize, usize),
    tile: &[f32],
    dim: usize,
    out: &mut [f32],
) {
    let rows = tile.len() / dim;
    let n_rep = out.len() / (dim + 2);
    let p = |r: usize| &scores[r * len + at..r * len + at + rows];
    match simd {
        #[cfg(target_arch = "x86_64")]
        Simd::V3(simd) => {
            let mut r = 0;
            while r < n_rep {
                let take = (n_rep - r).min(4);
                let o = &mut out[r * (dim + 2)..];
                match take {
                    4 => {
                        weighted_avx2::<4>(simd, [p(r), p(r + 1), p(r + 2), p(r + 3)], tile, dim, o)
                    }
                    3 => weighted_avx2::<3>(simd, [p(r), p(r + 1), p(r + 2)], tile, dim, o),
                    2 => weighted_avx2::<2>(simd, [p(r), p(r + 1)], tile, dim, o),
                    _ => weighted_avx2::<1>(simd, [p(r)], tile, dim, o),
                }
                r += take;
            }
        }
        Simd::Portable => {
            for (r, o) in out.chunks_exact_mut(dim + 2).enumerate() {
                for (&p, value) in p(r).iter().zip(tile.chunks_exact(dim)) {
                    for (a, &b) in o[2..].iter_mut().zip(value) {
                        *a += p * b;
                    }
                }
            }
        }
    }
}

/// `weighted_sum` for `R` heads (`p`, their weights; `out`, their blocks of `dim + 2` from
/// the first on).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn weighted_avx2<const R: usize>(
    simd: pulp::x86::V3,
    p: [&[f32]; R],
    tile: &[f32],
    dim: usize,
    out: &mut [f32],
) {
    let acc_at = |r: usize, c: usize| r * (dim + 2) + 2 + c;
    let full = dim / 16 * 16;
    for c in (0..full).step_by(16) {
        let mut acc = [[simd.avx._mm256_setzero_ps(); 2]; R];
        for (r, a) in acc.iter_mut().enumerate() {
            let at = acc_at(r, c);
            *a = [load8(&out[at..at + 8]), load8(&out[at + 8..at + 16])];
        }
        for (j, value) in tile.chunks_exact(dim).enumerate() {
            let v = [load8(&value[c..c + 8]), load8(&value[c + 8..c + 16])];
            for (a, p) in acc.iter_mut().zip(&p) {
                let w = simd.avx._mm256_set1_ps(p[j]);
                a[0] = simd.fma._mm256_fmadd_ps(w, v[0], a[0]);
                a[1] = simd.fma._mm256_fmadd_ps(w, v[1], a[1]);
            }
        }
        for (r, a) in acc.iter().enumerate() {
            let at = acc_at(r, c);
            out[at..at + 8].copy_from_slice(&pulp::cast::<_, [f32; 8]>(a[0]));
            out[at + 8..at + 16].copy_from_slice(&pulp::cast::<_, [f32; 8]>(a[1]));
        }
    }
    for (r, p) in p.iter().enumerate() {
        for (&p, value) in p.iter().zip(tile.chunks_exact(dim)) {
            for c in full..dim {
                out[acc_at(r, c)] += p * value[c];
            }
        }
    }
}

impl Dense {
    /// Whether a decode step's attention runs in `attend`'s CPU kernel: caches in main
    /// memory.
    pub(super) fn cpu_attention(&self) -> bool {
        matches!(self.device, Device::Cpu)
    }

    /// One new token's attention per sequence (`attend_rows`): `q` holds each
    /// sequence's queries (`n_head * head_dim` values each), `seqs` each sequence's offset in
    /// the cache buffers `k`/`v` (`(.., n_head_kv, cap, head_dim)`, written up to the new
    /// position) and its cached positions. Returns `(1, seqs, n_head * head_dim)`, or `None`
    /// where the buffers are not f16 or f32 in main memory (candle's path then).
    pub(super) fn cached_attention(
        &self,
        q: &[f32],
        (k, v): (&Tensor, &Tensor),
        seqs: &[(usize, usize)],
        cap: usize,
    ) -> Result<Option<Tensor>> {
        let width = self.hp.n_head * self.hp.head_dim;
        Ok(match self.cached_attention_values(q, (k, v), seqs, cap)? {
            Some(out) => Some(Tensor::from_vec(out, (1, seqs.len(), width), &self.device)?),
            None => None,
        })
    }

    /// `cached_attention`'s values, `n_head * head_dim` per sequence, as one vector.
    pub(super) fn cached_attention_values(
        &self,
        q: &[f32],
        (k, v): (&Tensor, &Tensor),
        seqs: &[(usize, usize)],
        cap: usize,
    ) -> Result<Option<Vec<f32>>> {
        let hp = &self.hp;
        let heads = Heads { n_head: hp.n_head, n_kv: hp.n_head_kv, dim: hp.head_dim };
        let width = hp.n_head * hp.head_dim;
        let rows: Vec<Row<'_>> = seqs
            .iter()
            .zip(q.chunks_exact(width))
            .map(|(&(offset, len), q)| Row { q, offset, cap, len })
            .collect();
        fn attend<T: CacheValue>(
            heads: Heads,
            rows: &[Row<'_>],
            (k, v): (&Tensor, &Tensor),
        ) -> Option<Result<Vec<f32>>> {
            with_cpu_buffer(k, |kb| with_cpu_buffer(v, |vb| attend_rows::<T>(heads, rows, kb, vb)))
                .flatten()
        }
        let out = match (k.dtype(), v.dtype()) {
            (DType::F16, DType::F16) => attend::<f16>(heads, &rows, (k, v)),
            (DType::F32, DType::F32) => attend::<f32>(heads, &rows, (k, v)),
            _ => None,
        };
        out.transpose()
    }
}

mod simd;
#[cfg(test)]
mod tests;
