//! CPU matrix-vector kernels for the quantized types whose candle path is slow (`Q4_1` has no
//! SIMD path in candle 0.11; `Q8_0` is the usual output layer), in safe Rust shaped for LLVM's
//! auto-vectorizer (`-C target-cpu=native`, see `.cargo/config.toml`).
//!
//! `Matrix` wraps candle's `QMatMul`: on the CPU, for `Q4_1` and `Q8_0`, it quantizes the
//! activations once per call (as ggml does) and computes the output rows on candle's own
//! thread pool (so no second pool competes for the cores); every other type, and every other
//! device, goes to `QMatMul`. Weights are read in place from the GGUF bytes, never copied.
//! Depends on candle only.

pub mod q4_1;
pub mod q8_0;
pub mod quant;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};

use super::error::{Error, Result};
use quant::{Q8Rows, Q8Tiles, Tile, TILE};

/// Which kernel a matrix uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Q4_1,
    Q8_0,
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

/// Whether the kernels are used: `THINKDBG_KERNELS=candle` or `=ours` decide (for A/B runs and
/// CI; `ours` takes both types at every size); otherwise optimised builds use them and debug
/// builds don't (candle's code is optimised even there, see Cargo.toml's profiles), so
/// unoptimised tests stay fast. CI runs the engine tests once more with `THINKDBG_KERNELS=ours`.
fn policy() -> Policy {
    match std::env::var("THINKDBG_KERNELS").as_deref() {
        Ok("candle") => Policy::Never,
        Ok("ours") => Policy::Always,
        _ if cfg!(debug_assertions) => Policy::Never,
        _ => Policy::Default,
    }
}

/// When a matrix uses this module's kernel rather than candle's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    Never,
    Always,
    /// `Q4_1` always (candle has no SIMD path for it). `Q8_0` up to `Q8_0_ROWS` rows: a decode
    /// and a batched decode (bit-identical row for row, so a sample decoded in a batch gives
    /// the tokens it gives alone; candle's kernel is not); above that, a prefill, candle's
    /// tiled matmul is faster (`bench decode --synth qwen3moe:qwen3moe-mid`, 2 threads:
    /// prefill 420 against 289 tok/s; decode within 2%).
    Default,
}

/// The most activation rows a `Q8_0` matrix computes with this module's kernel under
/// `Policy::Default`; `Engine::generate_many` batches at most this many sequences.
pub const Q8_0_ROWS: usize = 16;

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
                GgmlDType::Q8_0 => Some((Kind::Q8_0, q.clone())),
                _ => None,
            },
            _ => None,
        };
        let fast = fast.filter(|_| policy != Policy::Never);
        let (out, inp) = match &inner {
            QMatMul::QTensor(q) => q.shape().dims2().unwrap_or((0, 0)),
            QMatMul::Tensor(t) | QMatMul::TensorF16(t) => t.dims2().unwrap_or((0, 0)),
        };
        let fast = fast.filter(|_| inp % quant::BLOCK == 0 && out > 0);
        Matrix { inner, fast, out, inp, policy }
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
            (Some((Kind::Q8_0, _)), Policy::Default) => rows <= Q8_0_ROWS,
            _ => true,
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
        let mut data = Vec::with_capacity(N);
        for m in ms {
            let Some((kind, q)) = &m.fast else { continue };
            if inp != m.inp {
                return Err(Error::Worker(format!(
                    "matmul input has {inp} columns, the weights {}",
                    m.inp
                )));
            }
            let row_bytes = m.inp / quant::BLOCK * kind.block_bytes();
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
        let ys = matvec(&jobs, inp, &xs);
        let mut out = Vec::with_capacity(N);
        for (y, m) in ys.into_iter().zip(ms) {
            let mut shape = lead.to_vec();
            shape.push(m.out);
            out.push(Tensor::from_vec(y, shape, x.device())?);
        }
        into_array(out)
    }
}

fn into_array<const N: usize>(v: Vec<Tensor>) -> Result<[Tensor; N]> {
    v.try_into().map_err(|_| Error::Worker("matmul produced the wrong number of outputs".into()))
}

impl Kind {
    fn block_bytes(self) -> usize {
        match self {
            Kind::Q4_1 => q4_1::BLOCK_BYTES,
            Kind::Q8_0 => q8_0::BLOCK_BYTES,
        }
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
fn matvec(jobs: &[Job<'_>], k: usize, x: &[f32]) -> Vec<Vec<f32>> {
    thread_local! {
        // The quantized activations, reused from call to call (no allocation per matmul).
        static XQ: std::cell::RefCell<Q8Rows> = std::cell::RefCell::new(Q8Rows::default());
    }
    thread_local! {
        // The same rows in tiles for the multi-row kernels (several rows only).
        static TILES: std::cell::RefCell<Q8Tiles> = std::cell::RefCell::new(Q8Tiles::default());
    }
    XQ.with(|cell| {
        let mut xq = cell.borrow_mut();
        xq.quantize(x, k);
        TILES.with(|cell| {
            let mut tiles = cell.borrow_mut();
            if x.len() > k {
                tiles.regroup(&xq);
            }
            matvec_quantized(jobs, &xq, &tiles)
        })
    })
}

/// Runs a kernel over each tile of `tiles` (given the tile and how many of its rows are
/// real) and writes the real rows' values to `out`, one value per activation row.
#[inline(always)]
fn for_tiles(
    tiles: &Q8Tiles,
    out: &mut [f32],
    mut kernel: impl FnMut(Tile<'_>, usize) -> [f32; TILE],
) {
    for (t, ys) in out.chunks_mut(TILE).enumerate() {
        let got = kernel(tiles.tile(t), ys.len());
        ys.copy_from_slice(&got[..ys.len()]);
    }
}

/// `matvec` once the activations are quantized (and, for several rows, tiled).
fn matvec_quantized(jobs: &[Job<'_>], xq: &Q8Rows, tiles: &Q8Tiles) -> Vec<Vec<f32>> {
    let m = xq.d.len() / xq.blocks.max(1);
    // Output rows are computed in chunks, weight-row major (`yt` is `y` transposed), so that a
    // weight row is read once for all `m` activation rows.
    let mut yts: Vec<Vec<f32>> = jobs.iter().map(|j| vec![0f32; j.n * m]).collect();
    if m == 0 {
        return yts;
    }
    let pool = candle_core::utils::barrier_pool();
    let threads = pool.n_workers() + 1;
    let total: usize = jobs.iter().map(|j| j.n).sum();
    let rows_per_chunk = total.div_ceil(threads * 8).clamp(1, 256);
    // (job, first row, output rows) for every chunk of every job.
    let mut chunks: Vec<(usize, usize, Mutex<&mut [f32]>)> = Vec::new();
    for (ji, yt) in yts.iter_mut().enumerate() {
        for (ci, c) in yt.chunks_mut(rows_per_chunk * m).enumerate() {
            chunks.push((ji, ci * rows_per_chunk, Mutex::new(c)));
        }
    }
    let cursor = AtomicUsize::new(0);
    let work = |_: usize| loop {
        let c = cursor.fetch_add(1, Ordering::Relaxed);
        let Some((ji, first, chunk)) = chunks.get(c) else { break };
        let Some(job) = jobs.get(*ji) else { break };
        let Ok(mut out) = chunk.lock() else { break };
        let weights = |row: usize| &job.w[row * job.row_bytes..(row + 1) * job.row_bytes];
        if m == 1 {
            let (q, d, s) = xq.row(0);
            for (i, y) in out.iter_mut().enumerate() {
                let wr = weights(first + i);
                *y = match job.kind {
                    Kind::Q4_1 => q4_1::dot(wr, q, d, s),
                    Kind::Q8_0 => q8_0::dot(wr, q, d),
                };
            }
            continue;
        }
        // Several activation rows (a batched decode or a prefill): each weight row's blocks
        // are unpacked once per tile of eight activation rows.
        for (i, ys) in out.chunks_exact_mut(m).enumerate() {
            let wr = weights(first + i);
            match job.kind {
                Kind::Q4_1 => q4_1::dot_rows(wr, xq, tiles, ys),
                Kind::Q8_0 => q8_0::dot_rows(wr, xq, tiles, ys),
            }
        }
    };
    pool.execute(work);
    drop(chunks);
    if m == 1 {
        return yts;
    }
    yts.into_iter()
        .zip(jobs)
        .map(|(yt, job)| {
            let mut y = vec![0f32; job.n * m];
            for (j, col) in yt.chunks_exact(m).enumerate() {
                for (t, &v) in col.iter().enumerate() {
                    y[t * job.n + j] = v;
                }
            }
            y
        })
        .collect()
}

#[cfg(test)]
mod tests;
