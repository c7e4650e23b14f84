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
use quant::Q8Rows;

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
    out: usize,
    inp: usize,
}

/// Whether the kernels are used: `THINKDBG_KERNELS=candle` or `=ours` decide (for A/B runs and
/// CI); otherwise optimised builds use them and debug builds use candle's (whose code is
/// optimised even there, see Cargo.toml's profiles), so unoptimised tests stay fast. CI runs the
/// engine tests once more with `THINKDBG_KERNELS=ours`.
fn enabled() -> bool {
    match std::env::var("THINKDBG_KERNELS").as_deref() {
        Ok("candle") => false,
        Ok("ours") => true,
        _ => !cfg!(debug_assertions),
    }
}

impl From<QMatMul> for Matrix {
    fn from(inner: QMatMul) -> Self {
        Matrix::new(inner, enabled())
    }
}

impl Matrix {
    /// Wraps `inner`, using the kernels where they apply if `kernels` is true.
    pub fn new(inner: QMatMul, kernels: bool) -> Self {
        let fast = match &inner {
            QMatMul::QTensor(q) if matches!(q.device(), Device::Cpu) && kernels => {
                match q.dtype() {
                    GgmlDType::Q4_1 => Some((Kind::Q4_1, q.clone())),
                    GgmlDType::Q8_0 => Some((Kind::Q8_0, q.clone())),
                    _ => None,
                }
            }
            _ => None,
        };
        let (out, inp) = match &inner {
            QMatMul::QTensor(q) => q.shape().dims2().unwrap_or((0, 0)),
            QMatMul::Tensor(t) | QMatMul::TensorF16(t) => t.dims2().unwrap_or((0, 0)),
        };
        let fast = fast.filter(|_| inp % quant::BLOCK == 0 && out > 0);
        Matrix { inner, fast, out, inp }
    }

    pub fn from_arc(q: Arc<QTensor>) -> Result<Self> {
        Ok(QMatMul::from_arc(q)?.into())
    }

    /// Whether calls go to this module's kernels rather than candle's.
    pub fn uses_kernel(&self) -> bool {
        self.fast.is_some()
    }

    /// `x @ W^T` for `x` of shape `(.., in)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let Some((kind, q)) = &self.fast else {
            return Ok(self.inner.forward(x)?);
        };
        let dims = x.dims().to_vec();
        let Some((&inp, lead)) = dims.split_last() else {
            return Err(Error::Worker("matmul of a scalar".into()));
        };
        if inp != self.inp {
            return Err(Error::Worker(format!(
                "matmul input has {inp} columns, the weights {}",
                self.inp
            )));
        }
        let xs = x.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
        let data = q.data()?;
        let row_bytes = self.inp / quant::BLOCK
            * match kind {
                Kind::Q4_1 => q4_1::BLOCK_BYTES,
                Kind::Q8_0 => q8_0::BLOCK_BYTES,
            };
        if data.len() != row_bytes * self.out {
            return Err(Error::Worker(format!(
                "quantized weights hold {} bytes, expected {} rows of {row_bytes}",
                data.len(),
                self.out
            )));
        }
        let y = matvec(*kind, &data, self.out, self.inp, &xs);
        let mut shape = lead.to_vec();
        shape.push(self.out);
        Ok(Tensor::from_vec(y, shape, x.device())?)
    }
}

/// `y = x @ W^T` for `x` of `m` rows of `k` values and `W` of `n` rows in `kind`'s format;
/// `y` has `m` rows of `n`.
fn matvec(kind: Kind, w: &[u8], n: usize, k: usize, x: &[f32]) -> Vec<f32> {
    let blocks = k / quant::BLOCK;
    let row_bytes = blocks
        * match kind {
            Kind::Q4_1 => q4_1::BLOCK_BYTES,
            Kind::Q8_0 => q8_0::BLOCK_BYTES,
        };
    thread_local! {
        // The quantized activations, reused from call to call (no allocation per matmul).
        static XQ: std::cell::RefCell<Q8Rows> = std::cell::RefCell::new(Q8Rows::default());
    }
    XQ.with(|cell| {
        let mut xq = cell.borrow_mut();
        xq.quantize(x, k);
        matvec_quantized(kind, w, n, row_bytes, &xq)
    })
}

/// `matvec` once the activations are quantized.
fn matvec_quantized(kind: Kind, w: &[u8], n: usize, row_bytes: usize, xq: &Q8Rows) -> Vec<f32> {
    let m = xq.d.len() / xq.blocks.max(1);
    if m == 0 || n == 0 {
        return Vec::new();
    }
    // Output rows are computed in chunks, weight-row major (`yt` is `y` transposed), so that a
    // weight row is read once for all `m` activation rows.
    let mut yt = vec![0f32; n * m];
    let pool = candle_core::utils::barrier_pool();
    let threads = pool.n_workers() + 1;
    let rows_per_chunk = n.div_ceil(threads * 8).clamp(1, 256);
    let chunks: Vec<Mutex<&mut [f32]>> =
        yt.chunks_mut(rows_per_chunk * m).map(Mutex::new).collect();
    let cursor = AtomicUsize::new(0);
    let work = |_: usize| loop {
        let c = cursor.fetch_add(1, Ordering::Relaxed);
        let Some(chunk) = chunks.get(c) else { break };
        let Ok(mut out) = chunk.lock() else { break };
        let first = c * rows_per_chunk;
        for (i, ys) in out.chunks_exact_mut(m).enumerate() {
            let row = first + i;
            let wr = &w[row * row_bytes..(row + 1) * row_bytes];
            for (t, y) in ys.iter_mut().enumerate() {
                let (q, d, s) = xq.row(t);
                *y = match kind {
                    Kind::Q4_1 => q4_1::dot(wr, q, d, s),
                    Kind::Q8_0 => q8_0::dot(wr, q, d),
                };
            }
        }
    };
    pool.execute(work);
    drop(chunks);
    if m == 1 {
        return yt;
    }
    let mut y = vec![0f32; n * m];
    for (j, col) in yt.chunks_exact(m).enumerate() {
        for (t, &v) in col.iter().enumerate() {
            y[t * n + j] = v;
        }
    }
    y
}

#[cfg(test)]
mod tests;
