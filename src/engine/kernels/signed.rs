//! The kernels shared by the block formats whose 32 weights unpack to signed bytes times one
//! f16 scale (`Q8_0`, `Q5_0`), against `Q8_0` activations: `Σ d * dx * Σ w·x`. A format says
//! how to unpack a block (`Format`); the single-row, multi-row and portable kernels are the
//! same for all of them, so every such format computes a row in the same order (`Q5_0` uses
//! only the portable one: its AVX2 kernels take its values unsigned, in `q5_0`). Depends on
//! `quant`.

use super::quant::{arrays, Q8Rows, Q8Tiles, BLOCK};

/// A block format of `N` bytes whose weights are signed bytes times one scale.
pub trait Format<const N: usize> {
    /// The block's scale and its 32 weights, in the order of the activations.
    fn unpack(b: &[u8; N]) -> (f32, [i8; BLOCK]);

    /// The same as a vector (AVX2); a format whose AVX2 kernels are these overrides it.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn unpack_avx2(_: pulp::x86::V3, b: &[u8; N]) -> (f32, std::arch::x86_64::__m256i) {
        let (d, q) = Self::unpack(b);
        (d, pulp::cast(q))
    }
}

/// Dot product of one weight row (`blocks * N` bytes) with one quantized activation row: the
/// AVX2 kernel on CPUs with AVX2 and FMA (detected once), else the portable one.
#[inline]
pub fn dot<const N: usize, F: Format<N>>(w: &[u8], xq: &[[i8; BLOCK]], xd: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        return simd.vectorize(|| avx2::dot::<N, F>(simd, w, xq, xd));
    }
    dot_portable::<N, F>(w, xq, xd)
}

/// The portable dot product.
///
/// `w·x = |w|·(sign(w) x)`: the magnitudes are unsigned, so the sum has the unsigned-by-signed
/// form LLVM turns into `vpmaddubsw` (AVX2), as ggml's own x86 code does with `vpsignb`.
/// Activations are in [-127, 127], so negating them cannot overflow.
#[inline]
pub fn dot_portable<const N: usize, F: Format<N>>(w: &[u8], xq: &[[i8; BLOCK]], xd: &[f32]) -> f32 {
    let mut acc = 0f32;
    for ((b, x), &dx) in arrays::<u8, N>(w).zip(xq).zip(xd) {
        let (d, v) = F::unpack(b);
        let mut u = [0u8; BLOCK];
        let mut y = [0i8; BLOCK];
        for j in 0..BLOCK {
            u[j] = v[j].unsigned_abs();
            y[j] = if v[j] < 0 { x[j].wrapping_neg() } else { x[j] };
        }
        let mut sum = 0i32;
        for j in 0..BLOCK {
            sum += i32::from(u[j]) * i32::from(y[j]);
        }
        acc += d * dx * sum as f32;
    }
    acc
}

/// Dot products of one weight row with every activation row (`out` has one value per row of
/// `xq`; `tiles` holds the same rows regrouped), the block unpacked once per tile of eight
/// rows. Every row's result is bit-identical to `dot` on that row.
#[inline]
pub fn dot_rows<const N: usize, F: Format<N>>(
    w: &[u8],
    xq: &Q8Rows,
    tiles: &Q8Tiles,
    first: usize,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        let kernel = avx2::Tiles::<N, F>(std::marker::PhantomData);
        return simd.vectorize(|| super::for_tiles(simd, w, tiles, first, out, &kernel));
    }
    for (r, y) in out.iter_mut().enumerate() {
        let (q, d, _) = xq.row(first + r);
        *y = dot_portable::<N, F>(w, q, d);
    }
}

/// The AVX2 kernels, as ggml's: per block, the weights' magnitudes (`vpabsb`) times the
/// activations carrying the weights' signs (`vpsignb`) by `vpmaddubsw` + `vpmaddwd` give eight
/// 32-bit partial sums, converted to floats and accumulated with the block's scale into eight
/// float lanes by one FMA; the lanes are summed once per row. Safe code: `pulp`'s `V3` token
/// proves the CPU features, and loads are bit casts.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::marker::PhantomData;

    use pulp::x86::V3;

    use super::super::quant::{Tile, TILE};
    use super::super::{block_fma, lane_sums};
    use super::{arrays, Format, BLOCK};

    #[inline(always)]
    pub fn dot<const N: usize, F: Format<N>>(
        simd: V3,
        w: &[u8],
        xq: &[[i8; BLOCK]],
        xd: &[f32],
    ) -> f32 {
        let mut acc = simd.avx._mm256_setzero_ps();
        for ((b, x), &dx) in arrays::<u8, N>(w).zip(xq).zip(xd) {
            let (d, q) = F::unpack_avx2(simd, b);
            let u = simd.avx2._mm256_abs_epi8(q);
            let y = simd.avx2._mm256_sign_epi8(pulp::cast(*x), q);
            acc = block_fma(simd, u, y, d * dx, acc);
        }
        lane_sums(simd, [acc])[0]
    }

    /// The multi-row kernel `super::super::for_tiles` runs for format `F`.
    pub struct Tiles<const N: usize, F>(pub PhantomData<F>);

    impl<const N: usize, F: Format<N>> super::super::TileKernel<[i8; BLOCK], f32> for Tiles<N, F> {
        /// `dot` of one weight row with the first `R` rows of a tile, the block unpacked and
        /// its magnitudes taken once and its scale multiplied with the `R` activation scales in
        /// one vector; per row the operations and their order are `dot`'s, so the results are
        /// bit-identical.
        #[inline(always)]
        fn rows<const R: usize>(&self, simd: V3, w: &[u8], tile: Tile<'_>) -> [f32; TILE] {
            let mut acc = [simd.avx._mm256_setzero_ps(); R];
            for ((b, xs), xd) in arrays::<u8, N>(w).zip(tile.q).zip(tile.d) {
                let (d, q) = F::unpack_avx2(simd, b);
                let u = simd.avx2._mm256_abs_epi8(q);
                let scales = simd.avx._mm256_mul_ps(simd.avx._mm256_set1_ps(d), pulp::cast(*xd));
                let scales: [f32; TILE] = pulp::cast(scales);
                for r in 0..R {
                    let y = simd.avx2._mm256_sign_epi8(pulp::cast(xs[r]), q);
                    acc[r] = block_fma(simd, u, y, scales[r], acc[r]);
                }
            }
            lane_sums(simd, acc)
        }
    }
}
