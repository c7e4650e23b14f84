//! A prompt's causal attention on the CPU (a prefill pass, a scoring chunk) in one pass over
//! the KV cache, as flash attention does: the scores of a block of queries against a block of
//! keys, a running softmax per query (its largest score so far, its sum of exponentials, its
//! weighted sum of values rescaled when the largest score grows), then the next key block. No
//! score matrix is built, copied or masked whole, keys past a query block's last query are
//! never read, and the f16 cache is widened a block at a time in cache-sized buffers.
//!
//! Before, the products were candle's float matmuls: they run on rayon's threads, beside
//! candle's pool, with AVX2 `gemm` kernels; the scores were copied out for the softmax and
//! back. Here the work is split over candle's pool by (KV head, block of `QUERIES` queries),
//! the query heads of a KV head sharing each key and value read, and the multiply-adds are
//! 16 lanes wide where the CPU has AVX-512 (`pulp`'s `V4`), else 8 (AVX2), else plain code.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use candle_core::{DType, Tensor};
use half::f16;

use super::attend::{exp, with_cpu_buffer, CacheValue, Heads};
use super::Dense;
use crate::engine::error::{Error, Result};

/// Queries per task (each with the `n_rep` query heads of its KV head): a multiple of two
/// vectors of the widest width, so a task's rows fill the score kernel's vectors.
const QUERIES: usize = 32;
/// Keys per block: a block's keys, values and scores stay in L1/L2.
const KEYS: usize = 64;
/// Keys (in the scores) or rows (in the weighted sum) computed together, each vector loaded
/// once for them.
const ROWS: usize = 4;

/// A prompt attention's inputs: queries `(n_head, t, dim)` after RoPE, the cache buffers
/// `(n_kv, cap, dim)` holding positions `0..pos + t`.
pub(super) struct Prompt<'a, T> {
    pub heads: Heads,
    pub q: &'a [f32],
    pub t: usize,
    pub pos: usize,
    pub k: &'a [T],
    pub v: &'a [T],
    pub cap: usize,
}

/// The vector width the kernels run at.
#[derive(Clone, Copy, Debug)]
pub(super) enum Width {
    #[cfg(target_arch = "x86_64")]
    Avx512(pulp::x86::V4),
    #[cfg(target_arch = "x86_64")]
    Avx2(pulp::x86::V3),
    Portable,
}

impl Width {
    /// The widest the CPU has.
    pub(super) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(v4) = pulp::x86::V4::try_new() {
                return Width::Avx512(v4);
            }
            if let Some(v3) = pulp::x86::V3::try_new() {
                return Width::Avx2(v3);
            }
        }
        Width::Portable
    }

    /// Floats per vector.
    fn lanes(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Width::Avx512(_) => 16,
            _ => 8,
        }
    }

    /// Whether the kernels take heads of `dim` values (a whole number of value tiles).
    pub(super) fn takes(self, dim: usize) -> bool {
        dim > 0 && dim % (2 * self.lanes()) == 0
    }
}

impl Dense {
    /// A prompt's attention (`prompt_attention`) for queries `q` `(1, n_head, t, head_dim)`
    /// after RoPE, from position `pos` on, against the cache buffers `k`/`v` `(1, n_kv, cap,
    /// head_dim)` that hold the new positions: `(1, t, n_head * head_dim)`, or `None` where
    /// this path does not apply (another device, a batch, a head size the vectors do not
    /// divide, caches neither f16 nor f32) and `Dense::attend` takes candle's products.
    pub(super) fn flash_prompt(
        &self,
        q: &Tensor,
        (k, v): (&Tensor, &Tensor),
        pos: usize,
    ) -> Result<Option<Tensor>> {
        let hp = &self.hp;
        let width = Width::detect();
        let (b, n_head, t, dim) = q.dims4()?;
        if !self.cpu_attention() || b != 1 || !width.takes(dim) || n_head != hp.n_head {
            return Ok(None);
        }
        let heads = Heads { n_head, n_kv: hp.n_head_kv, dim };
        let cap = k.dim(2)?;
        let q = q.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        let shape = (t, pos, cap);
        let out = match (k.dtype(), v.dtype()) {
            (DType::F16, DType::F16) => on_buffers::<f16>(heads, &q, shape, (k, v), width),
            (DType::F32, DType::F32) => on_buffers::<f32>(heads, &q, shape, (k, v), width),
            _ => None,
        };
        match out.transpose()? {
            Some(out) => {
                Ok(Some(Tensor::from_vec(out, (1, t, n_head * dim), &candle_core::Device::Cpu)?))
            }
            None => Ok(None),
        }
    }
}

/// `prompt_attention` on the cache tensors' own buffers (`(t, pos, cap)` as in `Prompt`), or
/// `None` where they are not whole CPU buffers of `T`.
fn on_buffers<T: CacheValue>(
    heads: Heads,
    q: &[f32],
    (t, pos, cap): (usize, usize, usize),
    (k, v): (&Tensor, &Tensor),
    width: Width,
) -> Option<Result<Vec<f32>>> {
    with_cpu_buffer(k, |k: &[T]| {
        with_cpu_buffer(v, |v| prompt_attention(&Prompt { heads, q, t, pos, k, v, cap }, width))
    })
    .flatten()
}

/// The attention output, `(t, n_head, dim)` row-major: query `i` of head `h` attends to
/// positions `0..=pos + i` of its KV head.
pub(super) fn prompt_attention<T: CacheValue>(p: &Prompt<'_, T>, width: Width) -> Result<Vec<f32>> {
    let Heads { n_head, n_kv, dim } = p.heads;
    let (t, pos, cap) = (p.t, p.pos, p.cap);
    if n_kv == 0 || n_head % n_kv != 0 || !width.takes(dim) {
        return Err(Error::Worker(format!(
            "prompt attention of {n_head} heads of {dim} over {n_kv} KV heads"
        )));
    }
    let cached = (n_kv - 1) * cap * dim + (pos + t) * dim;
    if p.q.len() != n_head * t * dim || pos + t > cap || p.k.len().min(p.v.len()) < cached {
        return Err(Error::Worker(format!(
            "prompt attention of {t} queries from position {pos} past a cache of {cap}"
        )));
    }
    let n_rep = n_head / n_kv;
    let rows = n_rep * QUERIES;
    // (KV head, first query) of each task, the last (longest) query blocks first.
    let tasks: Vec<(usize, usize)> =
        (0..t).step_by(QUERIES).rev().flat_map(|q0| (0..n_kv).map(move |h| (h, q0))).collect();
    let mut parts = vec![0f32; tasks.len() * rows * dim];
    let slots: Vec<Mutex<&mut [f32]>> = parts.chunks_mut(rows * dim).map(Mutex::new).collect();
    let cursor = AtomicUsize::new(0);
    candle_core::utils::barrier_pool().execute(|_| loop {
        let at = cursor.fetch_add(1, Ordering::Relaxed);
        let (Some(slot), Some(&(h, q0))) = (slots.get(at), tasks.get(at)) else { break };
        let Ok(mut out) = slot.lock() else { break };
        let task = Task { h, q0, n: QUERIES.min(t - q0), n_rep };
        match width {
            #[cfg(target_arch = "x86_64")]
            Width::Avx512(v4) => v4.vectorize(|| task.run(v4, p, &mut out)),
            #[cfg(target_arch = "x86_64")]
            Width::Avx2(v3) => v3.vectorize(|| task.run(v3, p, &mut out)),
            Width::Portable => task.run(Portable, p, &mut out),
        }
    });
    drop(slots);
    // Each task's rows (query head `r` of the KV head, query `i`) to their places.
    let mut out = vec![0f32; t * n_head * dim];
    for (&(h, q0), part) in tasks.iter().zip(parts.chunks_exact(rows * dim)) {
        let n = QUERIES.min(t - q0);
        for (row, values) in part.chunks_exact(dim).enumerate() {
            let (rep, i) = (row / QUERIES, row % QUERIES);
            if i < n {
                let at = ((q0 + i) * n_head + h * n_rep + rep) * dim;
                out[at..at + dim].copy_from_slice(values);
            }
        }
    }
    Ok(out)
}

/// One task: the `n` queries from `q0` on of the `n_rep` query heads of KV head `h`.
struct Task {
    h: usize,
    q0: usize,
    n: usize,
    n_rep: usize,
}

/// A thread's buffers, reused from task to task.
#[derive(Default)]
struct Scratch {
    /// The task's queries scaled by `1/sqrt(dim)`, transposed: `(dim, rows)`, row `rep *
    /// QUERIES + i` being query `q0 + i` of query head `rep` (zero for `i >= n`).
    qt: Vec<f32>,
    /// A block's keys, then its values, `(KEYS, dim)` in f32, zero past the block's keys.
    kv: Vec<f32>,
    /// The block's scores, then their exponentials, transposed: `(KEYS, rows)`.
    st: Vec<f32>,
    /// Widened keys or values.
    wide: Vec<f32>,
    /// Each row's largest score so far, sum of exponentials, and the block's rescale.
    max: Vec<f32>,
    sum: Vec<f32>,
    rescale: Vec<f32>,
}

impl Task {
    /// The task's output rows into `out` (`rows * dim`, zero on entry).
    #[inline(always)]
    fn run<L: Lanes, T: CacheValue>(&self, l: L, p: &Prompt<'_, T>, out: &mut [f32]) {
        thread_local! {
            static SCRATCH: RefCell<Scratch> = RefCell::default();
        }
        SCRATCH.with(|cell| self.run_in(l, p, out, &mut cell.borrow_mut()));
    }

    #[inline(always)]
    fn run_in<L: Lanes, T: CacheValue>(
        &self,
        l: L,
        p: &Prompt<'_, T>,
        out: &mut [f32],
        sc: &mut Scratch,
    ) {
        let dim = p.heads.dim;
        let (n, n_rep) = (self.n, self.n_rep);
        let rows = out.len() / dim;
        let scale = 1.0 / (dim as f32).sqrt();
        sc.qt.clear();
        sc.qt.resize(dim * rows, 0.0);
        for rep in 0..n_rep {
            let head = self.h * n_rep + rep;
            for i in 0..n {
                let at = (head * p.t + self.q0 + i) * dim;
                let row = rep * QUERIES + i;
                for (c, &x) in p.q[at..at + dim].iter().enumerate() {
                    sc.qt[c * rows + row] = x * scale;
                }
            }
        }
        sc.kv.resize(KEYS * dim, 0.0);
        sc.st.resize(KEYS * rows, 0.0);
        sc.rescale.resize(rows, 0.0);
        sc.max.clear();
        sc.max.resize(rows, f32::NEG_INFINITY);
        sc.sum.clear();
        sc.sum.resize(rows, 0.0);
        let base = self.h * p.cap * dim;
        // The positions query `i` sees end at `last + i` (padding rows see them all).
        let last = p.pos + self.q0;
        let sees = |r: usize| match r % QUERIES < n {
            true => last + r % QUERIES,
            false => usize::MAX,
        };
        // Keys up to the last query's position.
        let end = last + n;
        for k0 in (0..end).step_by(KEYS) {
            let kn = KEYS.min(end - k0);
            let block = base + k0 * dim..base + (k0 + kn) * dim;
            sc.kv[..kn * dim].copy_from_slice(T::widen(&p.k[block.clone()], &mut sc.wide));
            sc.kv[kn * dim..].fill(0.0);
            scores(l, &sc.qt, &sc.kv, dim, &mut sc.st);
            // The causal mask: key `k0 + j` is past query `r` where `k0 + j > sees(r)`.
            if k0 + kn - 1 > last {
                for (j, s) in sc.st.chunks_exact_mut(rows).enumerate().take(kn) {
                    for (r, x) in s.iter_mut().enumerate() {
                        if k0 + j > sees(r) {
                            *x = f32::NEG_INFINITY;
                        }
                    }
                }
            }
            // The running softmax, vectors over the rows. `rescale` first holds each row's
            // new largest score (finite from the first block on: every row sees key 0), then
            // the factor for the row's sums so far.
            let (max, sum, rescale) = (&mut sc.max, &mut sc.sum, &mut sc.rescale);
            rescale.copy_from_slice(max);
            for s in sc.st.chunks_exact(rows).take(kn) {
                for (m, &x) in rescale.iter_mut().zip(s) {
                    *m = m.max(x);
                }
            }
            for ((m, a), total) in max.iter_mut().zip(rescale.iter_mut()).zip(sum.iter_mut()) {
                let largest = *a;
                *a = exp(*m - largest);
                *total *= *a;
                *m = largest;
            }
            for s in sc.st.chunks_exact_mut(rows).take(kn) {
                for ((x, &m), total) in s.iter_mut().zip(max.iter()).zip(sum.iter_mut()) {
                    *x = exp(*x - m);
                    *total += *x;
                }
            }
            for (o, &a) in out.chunks_exact_mut(dim).zip(rescale.iter()) {
                if a != 1.0 {
                    for x in o {
                        *x *= a;
                    }
                }
            }
            let values = T::widen(&p.v[block], &mut sc.wide);
            weighted(l, &sc.st, rows, values, dim, out);
        }
        for (o, &total) in out.chunks_exact_mut(dim).zip(&sc.sum) {
            let inv = 1.0 / total;
            for x in o {
                *x *= inv;
            }
        }
    }
}

/// `st = keys · qt`: the scores of every key of the block (`keys`, `(KEYS, dim)`) against
/// every row (`qt`, `(dim, rows)`, rows a multiple of two vectors), into `st` `(KEYS,
/// rows)`; `ROWS` keys by two vectors of rows at a time in registers.
#[inline(always)]
fn scores<L: Lanes>(l: L, qt: &[f32], keys: &[f32], dim: usize, st: &mut [f32]) {
    let w = L::N;
    let rows = qt.len() / dim;
    for (kb, sb) in keys.chunks_exact(ROWS * dim).zip(st.chunks_exact_mut(ROWS * rows)) {
        for r in (0..rows).step_by(2 * w) {
            let mut acc = [[l.zero(); 2]; ROWS];
            for c in 0..dim {
                let q = &qt[c * rows + r..];
                let (q0, q1) = (l.load(&q[..w]), l.load(&q[w..2 * w]));
                for (j, a) in acc.iter_mut().enumerate() {
                    let k = l.splat(kb[j * dim + c]);
                    a[0] = l.fma(k, q0, a[0]);
                    a[1] = l.fma(k, q1, a[1]);
                }
            }
            for (j, a) in acc.iter().enumerate() {
                let at = j * rows + r;
                l.store(a[0], &mut sb[at..at + w]);
                l.store(a[1], &mut sb[at + w..at + 2 * w]);
            }
        }
    }
}

/// `out_r += Σ_j st[j][r] · values_j` for every row `r` (`st` `(KEYS, rows)`, `values` one
/// row of `dim` per key): `ROWS` rows by two vectors of columns at a time in registers
/// (`dim` a multiple of two vectors).
#[inline(always)]
fn weighted<L: Lanes>(l: L, st: &[f32], rows: usize, values: &[f32], dim: usize, out: &mut [f32]) {
    let w = L::N;
    for (r0, or) in out.chunks_exact_mut(ROWS * dim).enumerate() {
        let r0 = r0 * ROWS;
        for c in (0..dim).step_by(2 * w) {
            let mut acc = [[l.zero(); 2]; ROWS];
            for (r, a) in acc.iter_mut().enumerate() {
                let o = &or[r * dim + c..];
                *a = [l.load(&o[..w]), l.load(&o[w..2 * w])];
            }
            for (j, value) in values.chunks_exact(dim).enumerate() {
                let (v0, v1) = (l.load(&value[c..c + w]), l.load(&value[c + w..c + 2 * w]));
                let pj = &st[j * rows + r0..j * rows + r0 + ROWS];
                for (a, &pr) in acc.iter_mut().zip(pj) {
                    let pr = l.splat(pr);
                    a[0] = l.fma(pr, v0, a[0]);
                    a[1] = l.fma(pr, v1, a[1]);
                }
            }
            for (r, a) in acc.iter().enumerate() {
                let o = &mut or[r * dim + c..];
                l.store(a[0], &mut o[..w]);
                l.store(a[1], &mut o[w..2 * w]);
            }
        }
    }
}

/// The few vector operations the kernels use, at one width.
trait Lanes: Copy {
    type V: Copy;
    /// Floats per vector.
    const N: usize;
    fn zero(self) -> Self::V;
    fn splat(self, x: f32) -> Self::V;
    /// The first `N` values of `s`.
    fn load(self, s: &[f32]) -> Self::V;
    /// Into the first `N` values of `s`.
    fn store(self, v: Self::V, s: &mut [f32]);
    /// `a * b + c`, fused.
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
}

#[cfg(target_arch = "x86_64")]
impl Lanes for pulp::x86::V4 {
    type V = std::arch::x86_64::__m512;
    const N: usize = 16;
    #[inline(always)]
    fn zero(self) -> Self::V {
        self.avx512f._mm512_setzero_ps()
    }
    #[inline(always)]
    fn splat(self, x: f32) -> Self::V {
        self.avx512f._mm512_set1_ps(x)
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> Self::V {
        let mut a = [0f32; 16];
        a.copy_from_slice(&s[..16]);
        pulp::cast(a)
    }
    #[inline(always)]
    fn store(self, v: Self::V, s: &mut [f32]) {
        s[..16].copy_from_slice(&pulp::cast::<_, [f32; 16]>(v));
    }
    #[inline(always)]
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        self.avx512f._mm512_fmadd_ps(a, b, c)
    }
}

#[cfg(target_arch = "x86_64")]
impl Lanes for pulp::x86::V3 {
    type V = std::arch::x86_64::__m256;
    const N: usize = 8;
    #[inline(always)]
    fn zero(self) -> Self::V {
        self.avx._mm256_setzero_ps()
    }
    #[inline(always)]
    fn splat(self, x: f32) -> Self::V {
        self.avx._mm256_set1_ps(x)
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> Self::V {
        let mut a = [0f32; 8];
        a.copy_from_slice(&s[..8]);
        pulp::cast(a)
    }
    #[inline(always)]
    fn store(self, v: Self::V, s: &mut [f32]) {
        s[..8].copy_from_slice(&pulp::cast::<_, [f32; 8]>(v));
    }
    #[inline(always)]
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        self.fma._mm256_fmadd_ps(a, b, c)
    }
}

/// Plain code on eight-value arrays (CPUs without AVX2).
#[derive(Clone, Copy)]
struct Portable;

impl Lanes for Portable {
    type V = [f32; 8];
    const N: usize = 8;
    #[inline(always)]
    fn zero(self) -> Self::V {
        [0.0; 8]
    }
    #[inline(always)]
    fn splat(self, x: f32) -> Self::V {
        [x; 8]
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> Self::V {
        let mut a = [0f32; 8];
        a.copy_from_slice(&s[..8]);
        a
    }
    #[inline(always)]
    fn store(self, v: Self::V, s: &mut [f32]) {
        s[..8].copy_from_slice(&v);
    }
    #[inline(always)]
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i].mul_add(b[i], c[i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attention of `p` computed plainly in f64: query `i` of head `h` against positions
    /// `0..=pos + i` of its KV head.
    fn reference<T: CacheValue + Into<f64>>(p: &Prompt<'_, T>) -> Vec<f64> {
        let Heads { n_head, n_kv, dim } = p.heads;
        let n_rep = n_head / n_kv;
        let mut out = vec![0f64; p.t * n_head * dim];
        for h in 0..n_head {
            let base = h / n_rep * p.cap * dim;
            for i in 0..p.t {
                let q = &p.q[(h * p.t + i) * dim..(h * p.t + i + 1) * dim];
                let seen = p.pos + i + 1;
                let s: Vec<f64> = (0..seen)
                    .map(|j| {
                        let k = &p.k[base + j * dim..base + (j + 1) * dim];
                        let dot: f64 =
                            q.iter().zip(k).map(|(&a, &b)| f64::from(a) * b.into()).sum();
                        dot / (dim as f64).sqrt()
                    })
                    .collect();
                let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                let total: f64 = e.iter().sum();
                let o = &mut out[(i * n_head + h) * dim..(i * n_head + h + 1) * dim];
                for (j, w) in e.iter().enumerate() {
                    for (c, x) in o.iter_mut().enumerate() {
                        *x += w / total * p.v[base + j * dim + c].into();
                    }
                }
            }
        }
        out
    }

    fn values(n: usize, seed: usize, spread: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((((i + seed) * 2_654_435_761) % 1000) as f32 / 500.0 - 1.0) * spread)
            .collect()
    }

    fn check<T: CacheValue + Into<f64>>(width: Width, from: fn(f32) -> T) {
        // Prompts within one key block and across several, from position 0 and after a
        // cached prefix, a partial last query block, one and three query heads per KV head.
        for (n_kv, n_rep, dim, pos, t) in
            [(1, 1, 32, 0, 5), (2, 3, 64, 37, 70), (2, 1, 32, 0, QUERIES), (1, 3, 32, 130, 33)]
        {
            let heads = Heads { n_head: n_kv * n_rep, n_kv, dim };
            let cap = pos + t + 3;
            let q = values(heads.n_head * t * dim, 1, 2.0);
            let k: Vec<T> = values(n_kv * cap * dim, 2, 2.0).into_iter().map(from).collect();
            let v: Vec<T> = values(n_kv * cap * dim, 3, 1.0).into_iter().map(from).collect();
            let p = Prompt { heads, q: &q, t, pos, k: &k, v: &v, cap };
            let got = prompt_attention(&p, width).unwrap();
            let want = reference(&p);
            assert_eq!(got.len(), want.len());
            for (at, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (f64::from(g) - w).abs() < 2e-5,
                    "{width:?} {n_kv}x{n_rep} dim {dim} pos {pos} t {t} [{at}]: {g} against {w}"
                );
            }
        }
    }

    /// Every width the CPU runs gives the plain attention, with f32 and f16 caches.
    #[test]
    fn flash_attention_is_the_causal_attention() {
        let mut widths = vec![Width::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            widths.extend(pulp::x86::V3::try_new().map(Width::Avx2));
            widths.extend(pulp::x86::V4::try_new().map(Width::Avx512));
        }
        for width in widths {
            check::<f32>(width, |x| x);
            check::<f16>(width, f16::from_f32);
        }
    }

    /// Heads the vectors do not divide, and a cache too short, are refused, not misread.
    #[test]
    fn bad_shapes_are_refused() {
        let width = Width::detect();
        let heads = Heads { n_head: 2, n_kv: 1, dim: 24 };
        let q = vec![0f32; 2 * 3 * 24];
        let kv = vec![0f32; 10 * 24];
        let p = Prompt { heads, q: &q, t: 3, pos: 0, k: &kv, v: &kv, cap: 10 };
        assert!(prompt_attention(&p, width).is_err());
        let heads = Heads { n_head: 2, n_kv: 1, dim: 32 };
        let q = vec![0f32; 2 * 3 * 32];
        let kv = vec![0f32; 4 * 32];
        let p = Prompt { heads, q: &q, t: 3, pos: 2, k: &kv, v: &kv, cap: 4 };
        assert!(prompt_attention(&p, width).is_err());
    }
}
