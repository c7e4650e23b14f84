//! The one-row `matvec` of a decode step: the output rows are handed out to candle's pool in
//! chunks that shrink as the work runs out, and a gate/up pair can leave its SwiGLU product
//! (`silu(gate) * up`) rather than the two vectors, so that a layer's feed-forward does no
//! elementwise pass on one thread between its two matmuls.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use super::{Acts, Job};

/// How a one-row `matvec` hands out its work: chunks shrink as the work runs out (guided
/// scheduling), each claiming `1 / (GUIDE * threads)` of the weight blocks left, but never
/// fewer than `1 / (MIN_CHUNKS * threads)` of all of them. Each claim moves the shared
/// cursor's cache line between cores (~0.1 µs here), so the first chunks are large; the last
/// ones are small, so that the thread done first waits for little of the other's work.
const GUIDE: usize = 2;
/// See `GUIDE`.
const MIN_CHUNKS: usize = 32;

/// What a one-row `matvec` leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Output {
    /// Each job's output vector.
    Each,
    /// Of two jobs with the same number of rows, gate and up, the one vector
    /// `silu(gate) * up` (other jobs: each output, as `Each`).
    SwiGlu,
}

/// `silu(g) * u` as candle computes it: its CPU `silu`, `g / (1 + exp(-g))`, then the product.
#[inline]
pub(super) fn swiglu(g: f32, u: f32) -> f32 {
    g / (1.0 + (-g).exp()) * u
}

/// Weight blocks per row of `job`.
fn blocks(job: &Job<'_>) -> usize {
    (job.row_bytes / job.kind.block_bytes().max(1)).max(1)
}

/// The chunks of a one-row `matvec` for `threads` threads, as (job, first row, rows), in the
/// order they are claimed. `jobs` are `(rows, weight blocks per row)`: their rows in order, in
/// chunks of about `left / (GUIDE * threads)` blocks (`left`: the blocks not yet handed out)
/// and at least `total / (MIN_CHUNKS * threads)` (whole rows, at least one).
fn guided_chunks(jobs: &[(usize, usize)], threads: usize) -> Vec<(usize, usize, usize)> {
    let total: usize = jobs.iter().map(|&(n, b)| n * b).sum();
    let least = total.div_ceil(threads.max(1) * MIN_CHUNKS).max(64);
    let mut left = total;
    let mut chunks = Vec::new();
    for (ji, &(n, b)) in jobs.iter().enumerate() {
        let mut first = 0;
        while first < n {
            let want = left.div_ceil(threads.max(1) * GUIDE).max(least);
            let rows = (want / b.max(1)).clamp(1, n - first);
            chunks.push((ji, first, rows));
            first += rows;
            left = left.saturating_sub(rows * b);
        }
    }
    chunks
}

/// A chunk plan: (job, first row, rows) in the order they are claimed.
type Plan = Rc<[(usize, usize, usize)]>;

/// What a plan is for: the jobs' `(rows, weight blocks per row)` and the threads.
type Shape = (Box<[(usize, usize)]>, usize);

/// `guided_chunks` of `jobs` for `threads` threads, computed once per shape on each thread: a
/// decode step asks for the same few shapes (q/k/v, the output projection, gate/up, down, the
/// output layer) about 150 times per token.
fn plan(jobs: &[(usize, usize)], threads: usize) -> Plan {
    /// More shapes than a model has: past this many the plans are dropped and built again.
    const MAX_PLANS: usize = 32;
    thread_local! {
        static PLANS: RefCell<Vec<(Shape, Plan)>> = RefCell::default();
    }
    PLANS.with(|cell| {
        let mut plans = cell.borrow_mut();
        if let Some((_, plan)) = plans.iter().find(|((j, t), _)| **j == *jobs && *t == threads) {
            return plan.clone();
        }
        if plans.len() >= MAX_PLANS {
            plans.clear();
        }
        let plan: Plan = guided_chunks(jobs, threads).into();
        plans.push(((jobs.into(), threads), plan.clone()));
        plan
    })
}

/// `matvec_quantized` for one activation row (a decode): `output` says what it returns. The
/// rows go out in chunks (the shape's `plan`), with no lock or allocation per chunk.
pub(super) fn matvec_row(jobs: &[Job<'_>], acts: &Acts<'_>, output: Output) -> Vec<Vec<f32>> {
    let pool = candle_core::utils::barrier_pool();
    let threads = pool.n_workers() + 1;
    // A SwiGLU pair is one job whose rows hold the blocks of both.
    let (sizes, outputs): (Vec<(usize, usize)>, Vec<usize>) = match (output, jobs) {
        (Output::SwiGlu, [g, u]) if g.n == u.n => (vec![(g.n, blocks(g) + blocks(u))], vec![g.n]),
        _ => (jobs.iter().map(|j| (j.n, blocks(j))).collect(), jobs.iter().map(|j| j.n).collect()),
    };
    let pair = sizes.len() < jobs.len();
    let plan = plan(&sizes, threads);
    let chunks: &[(usize, usize, usize)] = &plan;
    // The values are stored as bits in atomics (plain stores on x86): the threads write
    // disjoint ranges, and no lock sits next to another thread's.
    let ys: Vec<Vec<AtomicU32>> =
        outputs.iter().map(|&n| (0..n).map(|_| AtomicU32::new(0)).collect()).collect();
    let cursor = AtomicUsize::new(0);
    #[cfg(target_arch = "x86_64")]
    let simd = pulp::x86::V3::try_new();
    let row = |job: &Job<'_>, i: usize| {
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = simd {
            job.prefetch(simd, i);
        }
        job.dot(i, acts)
    };
    pool.execute(|_| loop {
        let c = cursor.fetch_add(1, Ordering::Relaxed);
        let Some(&(ji, first, rows)) = chunks.get(c) else { break };
        let (Some(job), Some(y)) = (jobs.get(ji), ys.get(ji)) else { break };
        for (i, out) in (first..).zip(&y[first..first + rows]) {
            let v = match jobs.get(1).filter(|_| pair) {
                Some(up) => swiglu(row(job, i), row(up, i)),
                None => row(job, i),
            };
            out.store(v.to_bits(), Ordering::Relaxed);
        }
    });
    ys.into_iter()
        .map(|y| y.into_iter().map(|v| f32::from_bits(v.into_inner())).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunks cover every row of every job once, in order; they shrink; none is under the
    /// least size unless its job ran out of rows.
    #[test]
    fn guided_chunks_cover_each_row_once_and_shrink() {
        for threads in [1, 2, 3, 8] {
            let jobs = [(576, 18), (192, 18), (192, 18), (1, 48), (49152, 18)];
            let chunks = guided_chunks(&jobs, threads);
            let mut next = vec![0; jobs.len()];
            let mut last_job = 0;
            for &(ji, first, rows) in &chunks {
                assert!(ji >= last_job && rows >= 1, "{chunks:?}");
                last_job = ji;
                assert_eq!(first, next[ji]);
                next[ji] += rows;
            }
            assert_eq!(next, jobs.iter().map(|j| j.0).collect::<Vec<_>>());
            let big = chunks.iter().filter(|c| c.0 == 4).map(|c| c.2).collect::<Vec<_>>();
            assert!(big.windows(2).all(|w| w[0] >= w[1]), "{big:?}");
            let total: usize = jobs.iter().map(|j| j.0 * j.1).sum();
            assert!(big[0] * 18 >= total / (GUIDE * threads) / 2, "{big:?}");
            let least = total.div_ceil(threads * MIN_CHUNKS) / 18;
            assert!(big[..big.len() - 1].iter().all(|&r| r >= least), "{big:?}");
        }
        assert!(guided_chunks(&[(0, 4)], 2).is_empty());
    }

    /// A shape's plan is built once per thread and is `guided_chunks`'s; another shape or
    /// thread count gets its own.
    #[test]
    fn plans_are_kept_per_shape() {
        let (a, b) = ([(576, 18), (192, 18)], [(576, 48)]);
        let first = plan(&a, 2);
        assert!(Rc::ptr_eq(&first, &plan(&a, 2)));
        assert_eq!(&*first, &guided_chunks(&a, 2)[..]);
        assert_eq!(&*plan(&b, 2), &guided_chunks(&b, 2)[..]);
        assert_eq!(&*plan(&a, 3), &guided_chunks(&a, 3)[..]);
        assert!(Rc::ptr_eq(&first, &plan(&a, 2)));
    }
}
