//! The instruction sets of the decode attention's inner loops: AVX2 with FMA where the CPU
//! has them, else plain code shaped for LLVM's auto-vectorizer.

/// The instruction set of the inner loops: AVX2 and FMA where the CPU has them (checked once
/// per span, not per dot product), else plain code.
#[derive(Clone, Copy)]
pub(in crate::engine::models::dense) enum Simd {
    #[cfg(target_arch = "x86_64")]
    V3(pulp::x86::V3),
    Portable,
}

impl Simd {
    pub(in crate::engine::models::dense) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = pulp::x86::V3::try_new() {
            return Simd::V3(simd);
        }
        Simd::Portable
    }

    /// Asks the CPU to fetch `count` values of `s` from index `from` on into the caches (a
    /// hint: past the end of `s`, nothing is read).
    #[inline(always)]
    pub(super) fn prefetch<T>(self, s: &[T], from: usize, count: usize) {
        #[cfg(target_arch = "x86_64")]
        if let Simd::V3(simd) = self {
            crate::engine::kernels::prefetch(simd, s, from, count);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (s, from, count);
    }

    /// `f` compiled with the instruction set enabled (for the code inlined into it).
    #[inline(always)]
    pub(in crate::engine::models::dense) fn run<R>(self, f: impl FnOnce() -> R) -> R {
        match self {
            #[cfg(target_arch = "x86_64")]
            Simd::V3(simd) => simd.vectorize(f),
            Simd::Portable => f(),
        }
    }

    /// `a · b`: with AVX2, two eight-lane FMA chains and a pairwise sum of the lanes; else
    /// sixteen lanes in plain code (which vectorizes without reordering a float sum).
    #[inline(always)]
    pub(super) fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            #[cfg(target_arch = "x86_64")]
            Simd::V3(simd) => dot_avx2(simd, a, b),
            Simd::Portable => dot_portable(a, b),
        }
    }
}

/// Eight floats as a vector.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn load8(s: &[f32]) -> std::arch::x86_64::__m256 {
    let mut v = [0f32; 8];
    v.copy_from_slice(s);
    pulp::cast(v)
}

/// `a · b` in sixteen lanes of plain code (which vectorizes without reordering a float sum).
#[inline(always)]
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
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
