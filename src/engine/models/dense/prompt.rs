//! Attention of several new positions at once (a prompt's prefill chunk, a scored trace's
//! chunk) against the KV cache, causal: the query at position `pos + i` sees positions
//! `0..=pos + i`.
//!
//! Where `flash.rs` applies (the CPU, head sizes its vectors divide, f16 or f32 caches) it
//! does this instead, in one pass over the cache; this module is the path for the rest.
//! On the CPU the products are candle's matmuls and the softmax runs in place on candle's
//! thread pool, with the `1/sqrt(dim)` scale and the mask folded in and `attend`'s vectorized
//! `exp`. Before, candle's softmax called libm's `expf` score by score, and the mask was a
//! tensor as large as the scores, built and added for every layer; that is where the measured
//! gain comes from. The queries are also taken `CHUNK` at a time, each chunk multiplied only
//! with the keys it can see, which bounds the scores held at once for a long forward pass
//! (`score --chunk 4096`) and skips the masked corner of each pass. Elsewhere (a GPU)
//! candle's ops do all of it with a mask tensor.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use candle_core::Tensor;

use super::attend::{exp_sum, max_of, Simd};
use super::Dense;
use crate::engine::error::Result;

/// Queries per chunk. The engine prefills prompts 256 tokens per forward pass
/// (`Engine::prefill_prompt`), so there this halves a pass's query block and skips a quarter
/// of its masked corner; a longer pass (a scoring chunk) is cut in 128s. Row b's 2k prompt
/// (`speed_vs_llama_cpp.py`, 2 threads), tok/s: 32 queries 244-254, 64 264-270, 128 271;
/// 256 and more (one chunk per pass) 227-271, so 128 is no worse than one chunk within this
/// machine's noise, and smaller chunks cost.
const CHUNK: usize = 128;

/// Score rows per task of the softmax (a task is a few hundred KiB at most).
const ROWS_PER_TASK: usize = 8;

impl Dense {
    /// Attention of `t` new positions from `pos` on: `q` of shape `(1, n_head, t, d)` after
    /// RoPE, `k_all`/`v_all` of shape `(1, n_kv, pos + t, d)` in f32 (the cache up to the new
    /// positions, which it holds). Returns `(1, t, n_head * d)`.
    pub(super) fn prompt_attention(
        &self,
        q: &Tensor,
        k_all: &Tensor,
        v_all: &Tensor,
        pos: usize,
    ) -> Result<Tensor> {
        let a = Inputs { q, k: k_all, v: v_all, pos, n_rep: self.hp.n_head / self.hp.n_head_kv };
        match self.cpu_attention() {
            true => chunked_attention(&a),
            false => masked_attention(&a),
        }
    }
}

/// A prompt attention's inputs: the queries `(b, n_head, t, d)` after RoPE, the keys and
/// values `(b, n_kv, pos + t, d)` in f32, the first new position, and the query heads per KV
/// head.
struct Inputs<'a> {
    q: &'a Tensor,
    k: &'a Tensor,
    v: &'a Tensor,
    pos: usize,
    n_rep: usize,
}

impl Inputs<'_> {
    /// `(b, n_kv, t, d)` and the scale `1/sqrt(d)`.
    fn shape(&self) -> Result<((usize, usize, usize, usize), f64)> {
        let (b, n_head, t, d) = self.q.dims4()?;
        Ok(((b, n_head / self.n_rep, t, d), 1.0 / (d as f64).sqrt()))
    }
}

/// The CPU's attention: the queries `CHUNK` at a time, each chunk against the keys it sees.
fn chunked_attention(a: &Inputs<'_>) -> Result<Tensor> {
    let ((b, n_kv, t, d), scale) = a.shape()?;
    let (pos, n_rep, n_head) = (a.pos, a.n_rep, n_kv * a.n_rep);
    // Grouped-query attention without copying keys: the query heads that share a KV head
    // are stacked as extra rows, (b, n_kv, n_rep * c, d) against (b, n_kv, keys, d).
    let q = a.q.reshape((b, n_kv, n_rep, t, d))?;
    let mut outs = Vec::with_capacity(t.div_ceil(CHUNK));
    for c0 in (0..t).step_by(CHUNK) {
        let c = CHUNK.min(t - c0);
        let keys = pos + c0 + c;
        let qc = q.narrow(3, c0, c)?.contiguous()?.reshape((b, n_kv, n_rep * c, d))?;
        let kc = a.k.narrow(2, 0, keys)?;
        let vc = a.v.narrow(2, 0, keys)?;
        let scores = qc.matmul(&kc.t()?)?;
        let mut s = scores.flatten_all()?.to_vec1::<f32>()?;
        causal_softmax(&mut s, keys, c, pos + c0 + 1, scale as f32);
        let probs = Tensor::from_vec(s, scores.shape(), scores.device())?;
        outs.push(probs.matmul(&vc)?.reshape((b, n_head, c, d))?);
    }
    let out = Tensor::cat(&outs, 2)?;
    Ok(out.transpose(1, 2)?.reshape((b, t, n_head * d))?)
}

/// In place, the softmax of each row of `scores` (rows of `keys` values) times `scale` over
/// the positions its query sees, the others set to 0. The rows are the chunk's `c` queries
/// for one head after another: row `r` is query `r % c`, which sees the first
/// `seen + r % c` positions.
fn causal_softmax(scores: &mut [f32], keys: usize, c: usize, seen: usize, scale: f32) {
    if keys == 0 || c == 0 {
        return;
    }
    let tasks: Vec<Mutex<&mut [f32]>> =
        scores.chunks_mut(keys * ROWS_PER_TASK).map(Mutex::new).collect();
    let cursor = AtomicUsize::new(0);
    candle_core::utils::barrier_pool().execute(|_| {
        let simd = Simd::detect();
        loop {
            let at = cursor.fetch_add(1, Ordering::Relaxed);
            let Some(Ok(mut rows)) = tasks.get(at).map(Mutex::lock) else { break };
            simd.run(|| {
                for (j, row) in rows.chunks_exact_mut(keys).enumerate() {
                    let r = at * ROWS_PER_TASK + j;
                    let (visible, hidden) = row.split_at_mut((seen + r % c).min(keys));
                    for x in visible.iter_mut() {
                        *x *= scale;
                    }
                    let sum = exp_sum(visible, max_of(visible));
                    let inv = 1.0 / sum;
                    for x in visible.iter_mut() {
                        *x *= inv;
                    }
                    hidden.fill(0.0);
                }
            });
        }
    });
}

/// candle's attention with a mask tensor (devices other than the CPU): the query heads of a
/// KV head stacked as `chunked_attention` does, the whole `(t, pos + t)` score matrix at once.
fn masked_attention(a: &Inputs<'_>) -> Result<Tensor> {
    let ((b, n_kv, t, d), scale) = a.shape()?;
    let (pos, n_rep, n_head) = (a.pos, a.n_rep, n_kv * a.n_rep);
    let total = pos + t;
    let q = a.q.reshape((b, n_kv, n_rep * t, d))?;
    let scores = (q.matmul(&a.k.t()?)? * scale)?;
    let scores = if t > 1 {
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| {
                (0..total).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (t, total), q.device())?;
        scores.reshape((b, n_kv, n_rep, t, total))?.broadcast_add(&mask)?.reshape((
            b,
            n_kv,
            n_rep * t,
            total,
        ))?
    } else {
        scores
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    let out = probs.matmul(a.v)?; // (b, n_kv, n_rep * t, d)
    Ok(out.reshape((b, n_head, t, d))?.transpose(1, 2)?.reshape((b, t, n_head * d))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The softmax of `causal_softmax`'s row `r` computed plainly in f64.
    fn reference(row: &[f32], seen: usize, scale: f32) -> Vec<f64> {
        let s: Vec<f64> = row[..seen].iter().map(|&x| f64::from(x) * f64::from(scale)).collect();
        let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        let mut out: Vec<f64> = e.iter().map(|x| x / sum).collect();
        out.resize(row.len(), 0.0);
        out
    }

    #[test]
    fn chunked_attention_is_the_masked_attention() {
        // Three chunks (the last partial) after 37 cached positions, two KV heads of three
        // query heads each.
        let (n_kv, n_rep, d, pos, t) = (2, 3, 16, 37, 2 * CHUNK + 9);
        let dev = candle_core::Device::Cpu;
        let rand = |n: usize, seed: usize| -> Vec<f32> {
            (0..n).map(|i| (((i + seed) * 2_654_435_761) % 1000) as f32 / 250.0 - 2.0).collect()
        };
        let q =
            Tensor::from_vec(rand(n_kv * n_rep * t * d, 1), (1, n_kv * n_rep, t, d), &dev).unwrap();
        let k =
            Tensor::from_vec(rand(n_kv * (pos + t) * d, 2), (1, n_kv, pos + t, d), &dev).unwrap();
        let v =
            Tensor::from_vec(rand(n_kv * (pos + t) * d, 3), (1, n_kv, pos + t, d), &dev).unwrap();
        let a = Inputs { q: &q, k: &k, v: &v, pos, n_rep };
        let got = chunked_attention(&a).unwrap();
        let want = masked_attention(&a).unwrap();
        assert_eq!(got.dims(), want.dims());
        let diff = (got - want).unwrap().abs().unwrap().flatten_all().unwrap();
        let max = diff.max(0).unwrap().to_scalar::<f32>().unwrap();
        assert!(max < 1e-5, "largest difference {max}");
    }

    #[test]
    fn causal_softmax_masks_each_query_past_its_position() {
        // Two heads of a chunk of 5 queries over 13 keys, the first query seeing 9; rows
        // that cross task boundaries (ROWS_PER_TASK = 8) and scores far apart.
        let (keys, c, seen, scale) = (13, 5, 9, 0.125f32);
        let rows = 2 * c;
        let scores: Vec<f32> =
            (0..rows * keys).map(|i| ((i * 7919) % 97) as f32 * 0.9 - 40.0).collect();
        let mut got = scores.clone();
        causal_softmax(&mut got, keys, c, seen, scale);
        for r in 0..rows {
            let want = reference(&scores[r * keys..(r + 1) * keys], seen + r % c, scale);
            for (j, (&g, &w)) in got[r * keys..(r + 1) * keys].iter().zip(&want).enumerate() {
                assert!((f64::from(g) - w).abs() < 1e-6, "row {r} key {j}: {g} against {w}");
                if j >= seen + r % c {
                    assert_eq!(g, 0.0, "row {r} key {j} is past the query");
                }
            }
        }
    }
}
