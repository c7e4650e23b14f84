//! CPU matrix-vector kernels for the quantized types users run, in safe Rust (AVX2 through
//! `pulp`, with portable fallbacks shaped for LLVM's auto-vectorizer; `-C target-cpu=native`,
//! see `.cargo/config.toml`): `Q4_1` and `Q5_0` (no SIMD path in candle 0.11), `Q8_0` (the
//! usual output layer), and the k-quants `Q4_K` and `Q6_K` of `Q4_K_M` files (candle 0.11
//! repacks those into a wider layout, a third more bytes to read per token, and copies them).
//!
//! `Matrix` wraps candle's `QMatMul`: on the CPU, for those types, it quantizes the
//! activations once per call (as ggml does: `Q8_0`/`Q8_1` blocks of 32, `Q8_K` superblocks of
//! 256 for the k-quants) and computes the output rows on candle's own thread pool (so no
//! second pool competes for the cores); every other type, and every other device, goes to
//! `QMatMul`. Weights are read in place from the GGUF bytes, never copied. Depends on candle
//! only.

mod policy;
pub mod q4_1;
pub mod q4_k;
pub mod q5_0;
pub mod q6_k;
pub mod q8_0;
pub mod quant;
mod row;
pub mod signed;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};

use super::error::{Error, Result};
use policy::{candle_tiles, policy, Policy};
use quant::{Q8KRows, Q8KTiles, Q8Rows, Q8Tiles, TileOf, Tiled, TILE};
use row::{matvec_row, swiglu, Output};

/// Which kernel a matrix uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Q4_1,
    Q5_0,
    Q8_0,
    Q4K,
    Q6K,
}

/// A weight matrix `(out, in)` applied as `x @ W^T`.
#[derive(Debug, Clone)]
pub struct Matrix {
    inner: QMatMul,
    fast: Option<(Kind, Arc<QTensor>)>,
    policy: Policy,
    out: usize,
    inp: usize,
}

/// The most activation rows a `Q8_0`, `Q4_K` or `Q6_K` matrix computes with this module's
/// kernels under `Policy::Default`; `Engine::generate_many` batches at most this many
/// sequences.
pub const BATCH_ROWS: usize = 16;

impl From<QMatMul> for Matrix {
    fn from(inner: QMatMul) -> Self {
        Matrix::with(inner, policy())
    }
}

impl Matrix {
    /// Wraps `inner`, using the kernels where they apply if `kernels` is true.
    pub fn new(inner: QMatMul, kernels: bool) -> Self {
        Matrix::with(inner, if kernels { Policy::Always } else { Policy::Never })
    }

    /// Wraps `inner`, using the kernels as `policy` says.
    fn with(inner: QMatMul, policy: Policy) -> Self {
        let fast = match &inner {
            QMatMul::QTensor(q) if matches!(q.device(), Device::Cpu) => match q.dtype() {
                GgmlDType::Q4_1 => Some((Kind::Q4_1, q.clone())),
                GgmlDType::Q5_0 => Some((Kind::Q5_0, q.clone())),
                GgmlDType::Q8_0 => Some((Kind::Q8_0, q.clone())),
                GgmlDType::Q4K => Some((Kind::Q4K, q.clone())),
                GgmlDType::Q6K => Some((Kind::Q6K, q.clone())),
                _ => None,
            },
            _ => None,
        };
        let fast = fast.filter(|_| policy != Policy::Never);
        let (out, inp) = match &inner {
            QMatMul::QTensor(q) => q.shape().dims2().unwrap_or((0, 0)),
            QMatMul::Tensor(t) | QMatMul::TensorF16(t) => t.dims2().unwrap_or((0, 0)),
        };
        let fast = fast.filter(|(kind, _)| inp % kind.block_values() == 0 && out > 0);
        Matrix { inner, fast, out, inp, policy }
    }

    /// This matrix on the kernels wherever they apply (tests of the paths built on them).
    #[cfg(test)]
    pub(crate) fn forced(&self) -> Self {
        Matrix::with(self.inner.clone(), Policy::Always)
    }

    pub fn from_arc(q: Arc<QTensor>) -> Result<Self> {
        Ok(QMatMul::from_arc(q)?.into())
    }

    /// Whether calls go to this module's kernels rather than candle's (for one row).
    pub fn uses_kernel(&self) -> bool {
        self.fast.is_some()
    }

    /// Whether a call with `rows` activation rows goes to this module's kernel.
    fn kernel_for(&self, rows: usize) -> bool {
        match (&self.fast, self.policy) {
            (None, _) | (_, Policy::Never) => false,
            (Some((Kind::Q4_1 | Kind::Q5_0, _)), _) | (_, Policy::Always) => true,
            (Some((kind @ (Kind::Q8_0 | Kind::Q4K | Kind::Q6K), _)), Policy::Default) => {
                rows <= BATCH_ROWS || !candle_tiles(*kind, self.out, self.inp)
            }
        }
    }

    /// `x @ W^T` for `x` of shape `(.., in)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let [y] = Matrix::forward_many([self], x)?;
        Ok(y)
    }

    /// `x @ W^T` for several matrices with the same input (q/k/v, gate/up): the activations
    /// are quantized once and all rows share one pass over the thread pool.
    pub fn forward_many<const N: usize>(ms: [&Matrix; N], x: &Tensor) -> Result<[Tensor; N]> {
        let rows = x.elem_count() / x.dims().last().copied().unwrap_or(1).max(1);
        if ms.iter().any(|m| !m.kernel_for(rows)) {
            let mut out = Vec::with_capacity(N);
            for m in ms {
                out.push(match m.kernel_for(rows) {
                    true => Matrix::forward_many([m], x)?.into_iter().collect(),
                    false => vec![m.inner.forward(x)?],
                });
            }
            return into_array(out.into_iter().flatten().collect());
        }
        let dims = x.dims().to_vec();
        let Some((&inp, lead)) = dims.split_last() else {
            return Err(Error::Worker("matmul of a scalar".into()));
        };
        let xs = x.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
        let ys = Matrix::kernel_outputs(&ms, inp, &xs, Output::Each)?;
        let mut out = Vec::with_capacity(N);
        for (y, m) in ys.into_iter().zip(ms) {
            let mut shape = lead.to_vec();
            shape.push(m.out);
            out.push(Tensor::from_vec(y, shape, x.device())?);
        }
        into_array(out)
    }

    /// `forward_many` for one row `x` in main memory, the outputs as plain vectors (a CPU
    /// decode step that keeps its activations out of tensors): this module's kernels where
    /// they apply, else candle's.
    pub fn forward_row<const N: usize>(ms: [&Matrix; N], x: &[f32]) -> Result<[Vec<f32>; N]> {
        if ms.iter().all(|m| m.kernel_for(1)) {
            let ys = Matrix::kernel_outputs(&ms, x.len(), x, Output::Each)?;
            return ys.try_into().map_err(|_| Error::Worker("matmul produced no outputs".into()));
        }
        let t = Tensor::from_slice(x, (1, x.len()), &Device::Cpu)?;
        let ys = Matrix::forward_many(ms, &t)?;
        let mut out = Vec::with_capacity(N);
        for y in ys {
            out.push(y.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?);
        }
        out.try_into().map_err(|_| Error::Worker("matmul produced no outputs".into()))
    }

    /// `silu(x @ gate^T) * (x @ up^T)` for one row `x` in main memory, the feed-forward's
    /// SwiGLU activation as candle computes it (`swiglu`). With the kernels, each output value
    /// is computed where its gate and up rows are, on the pool's threads.
    pub fn forward_swiglu(gate: &Matrix, up: &Matrix, x: &[f32]) -> Result<Vec<f32>> {
        if gate.kernel_for(1) && up.kernel_for(1) && gate.out == up.out {
            let ys = Matrix::kernel_outputs(&[gate, up], x.len(), x, Output::SwiGlu)?;
            let [a] = <[Vec<f32>; 1]>::try_from(ys)
                .map_err(|_| Error::Worker("the SwiGLU matmul left no single output".into()))?;
            return Ok(a);
        }
        let [g, u] = Matrix::forward_row([gate, up], x)?;
        Ok(g.iter().zip(&u).map(|(&g, &u)| swiglu(g, u)).collect())
    }

    /// The kernels' `x @ W^T` of each matrix (all using the kernels) for `x`, rows of `inp`,
    /// as `output` says.
    fn kernel_outputs(
        ms: &[&Matrix],
        inp: usize,
        xs: &[f32],
        output: Output,
    ) -> Result<Vec<Vec<f32>>> {
        let mut data = Vec::with_capacity(ms.len());
        for m in ms {
            let Some((kind, q)) = &m.fast else { continue };
            if inp != m.inp {
                return Err(Error::Worker(format!(
                    "matmul input has {inp} columns, the weights {}",
                    m.inp
                )));
            }
            let row_bytes = m.inp / kind.block_values() * kind.block_bytes();
            let bytes = q.data()?;
            if bytes.len() != row_bytes * m.out {
                return Err(Error::Worker(format!(
                    "quantized weights hold {} bytes, expected {} rows of {row_bytes}",
                    bytes.len(),
                    m.out
                )));
            }
            data.push((*kind, bytes, m.out, row_bytes));
        }
        let jobs: Vec<Job<'_>> = data
            .iter()
            .map(|(kind, bytes, n, row_bytes)| Job {
                kind: *kind,
                w: bytes,
                n: *n,
                row_bytes: *row_bytes,
            })
            .collect();
        Ok(matvec(&jobs, inp, xs, output))
    }
}

fn into_array<const N: usize>(v: Vec<Tensor>) -> Result<[Tensor; N]> {
    v.try_into().map_err(|_| Error::Worker("matmul produced the wrong number of outputs".into()))
}

impl Kind {
    fn block_bytes(self) -> usize {
        match self {
            Kind::Q4_1 => q4_1::BLOCK_BYTES,
            Kind::Q5_0 => q5_0::BLOCK_BYTES,
            Kind::Q8_0 => q8_0::BLOCK_BYTES,
            Kind::Q4K => q4_k::BLOCK_BYTES,
            Kind::Q6K => q6_k::BLOCK_BYTES,
        }
    }

    /// Weights per block.
    fn block_values(self) -> usize {
        if self.k_quant() {
            quant::SUPER
        } else {
            quant::BLOCK
        }
    }

    /// Whether the activations are `Q8_K` superblocks (else blocks of 32).
    fn k_quant(self) -> bool {
        matches!(self, Kind::Q4K | Kind::Q6K)
    }
}

/// One matrix of a `matvec` call: `n` rows of `row_bytes` in `kind`'s format.
struct Job<'a> {
    kind: Kind,
    w: &'a [u8],
    n: usize,
    row_bytes: usize,
}

/// `y = x @ W^T` for each job's `W`, `x` being `m` rows of `k` values; each `y` has `m` rows
/// of the job's `n`.
fn matvec(jobs: &[Job<'_>], k: usize, x: &[f32], output: Output) -> Vec<Vec<f32>> {
    thread_local! {
        // The activations as the jobs' kernels read them, reused from call to call (no
        // allocation per matmul): blocks of 32, the same rows in tiles for the multi-row
        // kernels, and `Q8_K` superblocks.
        static ACTS: std::cell::RefCell<(Q8Rows, Q8Tiles, Q8KRows, Q8KTiles)> =
            Default::default();
    }
    ACTS.with(|cell| {
        let mut acts = cell.borrow_mut();
        let (xq, tiles, xk, ktiles) = &mut *acts;
        let rows = x.len() / k.max(1);
        // Only the forms some job reads are computed; the others are left empty.
        xq.quantize(if jobs.iter().any(|j| !j.kind.k_quant()) { x } else { &[] }, k);
        xk.quantize(if jobs.iter().any(|j| j.kind.k_quant()) { x } else { &[] }, k);
        if rows > 1 {
            tiles.regroup(xq);
            ktiles.regroup(xk);
        }
        let acts = Acts { xq, tiles, xk, ktiles, rows };
        match rows {
            1 => matvec_row(jobs, &acts, output),
            _ => matvec_quantized(jobs, acts),
        }
    })
}

/// The quantized activations of a `matvec`.
struct Acts<'a> {
    xq: &'a Q8Rows,
    tiles: &'a Q8Tiles,
    xk: &'a Q8KRows,
    ktiles: &'a Q8KTiles,
    rows: usize,
}

impl Job<'_> {
    /// Weight row `i` against activation row 0 (a decode).
    #[inline]
    fn dot(&self, i: usize, acts: &Acts<'_>) -> f32 {
        let w = self.row(i);
        let row = || acts.xq.row(0);
        match self.kind {
            Kind::Q4_1 => {
                let (q, d, s) = row();
                q4_1::dot(w, q, d, s)
            }
            Kind::Q5_0 => q5_0::dot(w, row().0, row().1, acts.xq.sums(0)),
            Kind::Q8_0 => q8_0::dot(w, row().0, row().1),
            Kind::Q4K => q4_k::dot(w, acts.xk, 0),
            Kind::Q6K => q6_k::dot(w, acts.xk, 0),
        }
    }

    /// Weight row `i` against activation rows `first..first + out.len()` (`first` a multiple
    /// of `TILE`; a batched decode or a prefill), into `out`, one value per activation row.
    #[inline]
    fn dot_rows(&self, i: usize, acts: &Acts<'_>, first: usize, out: &mut [f32]) {
        let w = self.row(i);
        match self.kind {
            Kind::Q4_1 => q4_1::dot_rows(w, acts.xq, acts.tiles, first, out),
            Kind::Q5_0 => q5_0::dot_rows(w, acts.xq, acts.tiles, first, out),
            Kind::Q8_0 => q8_0::dot_rows(w, acts.xq, acts.tiles, first, out),
            Kind::Q4K => q4_k::dot_rows(w, acts.xk, acts.ktiles, first, out),
            Kind::Q6K => q6_k::dot_rows(w, acts.xk, acts.ktiles, first, out),
        }
    }

    /// Asks the CPU to fetch the weight bytes `PREFETCH_AHEAD` bytes past row `i` (as many as
    /// a row holds) into the caches.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn prefetch(&self, simd: pulp::x86::V3, i: usize) {
        prefetch(simd, self.w, i * self.row_bytes + PREFETCH_AHEAD, self.row_bytes);
    }

    /// The bytes of weight row `i`.
    #[inline]
    fn row(&self, i: usize) -> &[u8] {
        &self.w[i * self.row_bytes..(i + 1) * self.row_bytes]
    }
}

/// Asks the CPU to fetch `count` values of `s` from index `from` on into the caches, a line
/// at a time. Past the end of `s` the addresses are never read: a prefetch is only a hint.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn prefetch<T>(simd: pulp::x86::V3, s: &[T], from: usize, count: usize) {
    let start = s.as_ptr().wrapping_add(from) as *const i8;
    for line in (0..count * std::mem::size_of::<T>()).step_by(64) {
        simd.sse._mm_prefetch::<3>(start.wrapping_add(line));
    }
}

/// A multi-row kernel: one weight row against the first `R` rows of a tile (`R` = 2, 4 or 8)
/// of activations in blocks `Q` with sums `S`.
#[cfg(target_arch = "x86_64")]
trait TileKernel<Q, S> {
    fn rows<const R: usize>(
        &self,
        simd: pulp::x86::V3,
        w: &[u8],
        tile: TileOf<'_, Q, S>,
    ) -> [f32; TILE];
}

/// `acc + scale * u·x` for a block in eight float lanes: the 32 unsigned-by-signed byte
/// products summed in fours (`vpmaddubsw` + `vpmaddwd`), converted and added with one FMA.
/// Every AVX2 kernel's inner step, so that a row computes the same way in each of them.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn block_fma(
    simd: pulp::x86::V3,
    u: std::arch::x86_64::__m256i,
    x: std::arch::x86_64::__m256i,
    scale: f32,
    acc: std::arch::x86_64::__m256,
) -> std::arch::x86_64::__m256 {
    let ones = simd.avx._mm256_set1_epi16(1);
    let sums = simd.avx2._mm256_madd_epi16(simd.avx2._mm256_maddubs_epi16(u, x), ones);
    let scale = simd.avx._mm256_set1_ps(scale);
    simd.fma._mm256_fmadd_ps(scale, simd.avx._mm256_cvtepi32_ps(sums), acc)
}

/// `((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7))` in 32-bit lanes: a tree, so that the
/// adds (which LLVM fuses with the multiplies before them) do not form one long chain.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn tree_sum(simd: pulp::x86::V3, p: [std::arch::x86_64::__m256i; 8]) -> std::arch::x86_64::__m256i {
    let add = |a, b| simd.avx2._mm256_add_epi32(a, b);
    add(add(add(p[0], p[1]), add(p[2], p[3])), add(add(p[4], p[5]), add(p[6], p[7])))
}

/// The sum of each accumulator's eight lanes (the first `R` of a tile's rows), in the order
/// of ggml's `hsum_float_8`: the two halves added, then `(h0 + h2) + (h1 + h3)`. Accumulators
/// are summed four at a time, transposed, so that the adds run on vectors (the scalar sums of
/// eight rows were a twelfth of a prefill's kernel time); the rest one by one in the same order.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn lane_sums<const R: usize>(
    simd: pulp::x86::V3,
    acc: [std::arch::x86_64::__m256; R],
) -> [f32; TILE] {
    let (avx, sse) = (simd.avx, simd.sse);
    let half = |a| sse._mm_add_ps(avx._mm256_castps256_ps128(a), avx._mm256_extractf128_ps::<1>(a));
    let mut out = [0f32; TILE];
    let quads = acc.chunks_exact(4);
    let rest = quads.remainder();
    for (o, q) in out.chunks_exact_mut(4).zip(quads) {
        let h = [half(q[0]), half(q[1]), half(q[2]), half(q[3])];
        let (t0, t1) = (sse._mm_unpacklo_ps(h[0], h[1]), sse._mm_unpackhi_ps(h[0], h[1]));
        let (t2, t3) = (sse._mm_unpacklo_ps(h[2], h[3]), sse._mm_unpackhi_ps(h[2], h[3]));
        // Lane j of `c[k]` is row j's h_k.
        let c = [
            sse._mm_movelh_ps(t0, t2),
            sse._mm_movehl_ps(t2, t0),
            sse._mm_movelh_ps(t1, t3),
            sse._mm_movehl_ps(t3, t1),
        ];
        let sums = sse._mm_add_ps(sse._mm_add_ps(c[0], c[2]), sse._mm_add_ps(c[1], c[3]));
        o.copy_from_slice(&pulp::cast::<_, [f32; 4]>(sums));
    }
    for (o, &a) in out[R - rest.len()..].iter_mut().zip(rest) {
        *o = lane_sum(pulp::cast(a));
    }
    out
}

/// `lane_sums` of one accumulator's lanes, in plain code.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn lane_sum(l: [f32; 8]) -> f32 {
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}

/// Runs `kernel` for weight row `w` over the tiles of `tiles` from activation row `first` (a
/// multiple of `TILE`) on, at the smallest of 2, 4 or 8 rows that holds a tile's real rows,
/// and writes their values to `out`, one value per activation row.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn for_tiles<Q: Copy, S: Copy>(
    simd: pulp::x86::V3,
    w: &[u8],
    tiles: &Tiled<Q, S>,
    first: usize,
    out: &mut [f32],
    kernel: &impl TileKernel<Q, S>,
) {
    for (t, ys) in out.chunks_mut(TILE).enumerate() {
        let tile = tiles.tile(first / TILE + t);
        let got = match ys.len() {
            1..=2 => kernel.rows::<2>(simd, w, tile),
            3..=4 => kernel.rows::<4>(simd, w, tile),
            _ => kernel.rows::<TILE>(simd, w, tile),
        };
        // A full tile in two stores; a copy of a length known only at run time is a call to
        // `memmove` (4% of a prefill, once per weight row and tile).
        match <&mut [f32; TILE]>::try_from(&mut *ys) {
            Ok(full) => *full = got,
            Err(_) => {
                for (y, g) in ys.iter_mut().zip(got) {
                    *y = g;
                }
            }
        }
    }
}

/// How far ahead of the row it computes a one-row `matvec` asks for the weights (bytes). A
/// decode reads every weight once per token, straight from memory, and on the development
/// machine the hardware prefetcher alone kept too few reads in flight: decode tok/s without
/// prefetching, then 1, 2, 4 and 8 KiB ahead (release build, 2 threads, alternating runs),
/// demo `Q4_1` 88.8 / 113.3 / 124.8 / 126.2, demo `Q4_K_M` 93.3 / - / 134.3 / 132.3, the 1.5B
/// distill at `Q4_K` 16.3 / - / 23.2 / 22.8 / 21.9.
const PREFETCH_AHEAD: usize = 4096;

/// A share of a `matvec`: (job, first weight row, the chunk's piece of every output row).
type Chunk<'a> = (usize, usize, Mutex<Vec<&'a mut [f32]>>);

/// `matvec` once the activations are quantized (and, for several rows, tiled).
fn matvec_quantized(jobs: &[Job<'_>], acts: Acts<'_>) -> Vec<Vec<f32>> {
    let m = acts.rows;
    let mut ys: Vec<Vec<f32>> = jobs.iter().map(|j| vec![0f32; j.n * m]).collect();
    if m == 0 {
        return ys;
    }
    let pool = candle_core::utils::barrier_pool();
    let threads = pool.n_workers() + 1;
    let total: usize = jobs.iter().map(|j| j.n).sum();
    let rows_per_chunk = total.div_ceil(threads * 8).clamp(1, 256);
    // Output columns (weight rows) are computed in chunks. A chunk holds its piece of each of
    // the `m` output rows: (job, first weight row, pieces). With several activation rows a
    // chunk's weights are read once per tile of eight rows, so a chunk holds at most
    // `CHUNK_BYTES` of them (they stay in L2 while the tiles go by).
    const CHUNK_BYTES: usize = 64 << 10;
    let mut chunks: Vec<Chunk<'_>> = Vec::new();
    for ((ji, y), job) in ys.iter_mut().enumerate().zip(jobs) {
        let rows_per_chunk = match m {
            1 => rows_per_chunk,
            _ => rows_per_chunk.min(CHUNK_BYTES / job.row_bytes.max(1)).max(1),
        };
        let mut rows: Vec<_> = y.chunks_mut(job.n).map(|r| r.chunks_mut(rows_per_chunk)).collect();
        for ci in 0..job.n.div_ceil(rows_per_chunk) {
            let pieces: Vec<&mut [f32]> = rows.iter_mut().filter_map(Iterator::next).collect();
            chunks.push((ji, ci * rows_per_chunk, Mutex::new(pieces)));
        }
    }
    let cursor = AtomicUsize::new(0);
    let work = |_: usize| loop {
        let c = cursor.fetch_add(1, Ordering::Relaxed);
        let Some((ji, first, chunk)) = chunks.get(c) else { break };
        let Some(job) = jobs.get(*ji) else { break };
        let Ok(mut pieces) = chunk.lock() else { break };
        // Several activation rows (a batched decode or a prefill): tile by tile (eight
        // activation rows, which stay in L1/L2), each of the chunk's weight rows is unpacked
        // once for the tile's rows, and its values go to those output rows.
        let n = pieces.first().map_or(0, |p| p.len());
        let mut col = [0f32; TILE];
        for (t, tile_pieces) in pieces.chunks_mut(TILE).enumerate() {
            let col = &mut col[..tile_pieces.len()];
            for i in 0..n {
                job.dot_rows(first + i, &acts, t * TILE, col);
                for (piece, &v) in tile_pieces.iter_mut().zip(col.iter()) {
                    if let Some(y) = piece.get_mut(i) {
                        *y = v;
                    }
                }
            }
        }
    };
    pool.execute(work);
    drop(chunks);
    ys
}

#[cfg(test)]
mod tests;
