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

    /// `a · b` for four `b`s at once (four keys of a tile against one query head). With
    /// AVX2 one eight-lane FMA chain per key, their lanes summed by three horizontal adds for
    /// all four together (a key's lanes summed in the same order whichever it is); else
    /// sixteen lanes of plain code per key.
    #[inline(always)]
    pub(super) fn dot4(self, a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
        match self {
            #[cfg(target_arch = "x86_64")]
            Simd::V3(simd) => dot4_avx2(simd, a, b),
            Simd::Portable => b.map(|b| dot_portable(a, b)),
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

/// `Simd::dot4` with AVX2 and FMA: each key's products in one chain of eight lanes, then
/// `hadd(hadd(k0, k1), hadd(k2, k3))`, whose two halves added give the four sums; columns past
/// the last eight are added one by one.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn dot4_avx2(simd: pulp::x86::V3, a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
    let full = a.len() / 8 * 8;
    let mut acc = [simd.avx._mm256_setzero_ps(); 4];
    for c in (0..full).step_by(8) {
        let x = load8(&a[c..c + 8]);
        for (acc, b) in acc.iter_mut().zip(&b) {
            *acc = simd.fma._mm256_fmadd_ps(x, load8(&b[c..c + 8]), *acc);
        }
    }
    let pairs = [simd.avx._mm256_hadd_ps(acc[0], acc[1]), simd.avx._mm256_hadd_ps(acc[2], acc[3])];
    let quads = simd.avx._mm256_hadd_ps(pairs[0], pairs[1]);
    let halves =
        [simd.avx._mm256_castps256_ps128(quads), simd.avx._mm256_extractf128_ps::<1>(quads)];
    let mut sums: [f32; 4] = pulp::cast(simd.sse._mm_add_ps(halves[0], halves[1]));
    for (sum, b) in sums.iter_mut().zip(&b) {
        for (x, y) in a[full..].iter().zip(&b[full..]) {
            *sum += x * y;
        }
    }
    sums
}
