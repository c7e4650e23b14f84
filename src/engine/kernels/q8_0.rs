//! `Q8_0` weights (blocks of 32 `i8` with an f16 scale: 34 bytes) against `Q8_0` activations,
//! read straight from the GGUF bytes: `Σ d * dx * Σ w·x`. An AVX2 kernel (single row and
//! tiles of rows) and a portable one whose integer part is an unsigned-by-signed byte sum
//! that LLVM vectorizes. Depends on `quant`.

use half::f16;

use super::quant::{arrays, Q8Rows, Q8Tiles, BLOCK};

/// Bytes of one `Q8_0` block.
pub const BLOCK_BYTES: usize = 34;

/// Dot product of one weight row (`blocks * 34` bytes) with one quantized activation row: the
/// AVX2 kernel on CPUs with AVX2 and FMA (detected once), else the portable one.
#[inline]
pub fn dot(w: &[u8], xq: &[[i8; BLOCK]], xd: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        return simd.vectorize(|| avx2::dot(simd, w, xq, xd));
    }
    dot_portable(w, xq, xd)
}

/// The portable dot product.
///
/// `w·x = |w|·(sign(w) x)`: the magnitudes are unsigned, so the sum has the unsigned-by-signed
/// form LLVM turns into `vpdpbusd` (AVX-VNNI) or `vpmaddubsw` (AVX2), as ggml's own x86 code
/// does with `vpsignb`. Activations are in [-127, 127], so negating them cannot overflow.
#[inline]
pub fn dot_portable(w: &[u8], xq: &[[i8; BLOCK]], xd: &[f32]) -> f32 {
    let mut acc = 0f32;
    for ((b, x), &dx) in arrays::<u8, BLOCK_BYTES>(w).zip(xq).zip(xd) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        let mut u = [0u8; BLOCK];
        let mut y = [0i8; BLOCK];
        for j in 0..BLOCK {
            let v = b[2 + j] as i8;
            u[j] = v.unsigned_abs();
            y[j] = if v < 0 { x[j].wrapping_neg() } else { x[j] };
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
/// `xq`; `tiles` holds the same rows regrouped), the block's magnitudes taken once per tile of
/// eight rows. Every row's result is bit-identical to `dot` on that row.
#[inline]
pub fn dot_rows(w: &[u8], xq: &Q8Rows, tiles: &Q8Tiles, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        return simd.vectorize(|| super::for_tiles(simd, w, tiles, out, &avx2::Tiles));
    }
    for (r, y) in out.iter_mut().enumerate() {
        let (q, d, _) = xq.row(r);
        *y = dot_portable(w, q, d);
    }
}

/// The AVX2 kernels, as ggml's: per block, the weights' magnitudes (`vpabsb`) times the
/// activations carrying the weights' signs (`vpsignb`) by `vpmaddubsw` + `vpmaddwd` give eight
/// 32-bit partial sums, converted to floats and accumulated with the block's scale into eight
/// float lanes by one FMA; the lanes are summed once per row. Safe code, as in `q4_1`.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::__m256i;

    use half::f16;
    use pulp::x86::V3;

    use super::super::quant::{Tile, TILE};
    use super::super::{block_fma, lane_sums};
    use super::{arrays, BLOCK, BLOCK_BYTES};

    /// One block's 32 weights as a vector.
    #[inline(always)]
    fn weights(b: &[u8; BLOCK_BYTES]) -> __m256i {
        let mut q = [0u8; BLOCK];
        q.copy_from_slice(&b[2..]);
        pulp::cast(q)
    }

    #[inline(always)]
    pub fn dot(simd: V3, w: &[u8], xq: &[[i8; BLOCK]], xd: &[f32]) -> f32 {
        let mut acc = simd.avx._mm256_setzero_ps();
        for ((b, x), &dx) in arrays::<u8, BLOCK_BYTES>(w).zip(xq).zip(xd) {
            let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
            let q = weights(b);
            let u = simd.avx2._mm256_abs_epi8(q);
            let y = simd.avx2._mm256_sign_epi8(pulp::cast(*x), q);
            acc = block_fma(simd, u, y, d * dx, acc);
        }
        lane_sums([acc])[0]
    }

    /// The multi-row kernel `super::super::for_tiles` runs.
    pub struct Tiles;

    impl super::super::TileKernel for Tiles {
        /// `dot` of one weight row with the first `R` rows of a tile, the block's magnitudes
        /// taken once and its scale multiplied with the `R` activation scales in one vector; per
        /// row the operations and their order are `dot`'s, so the results are bit-identical.
        #[inline(always)]
        fn rows<const R: usize>(&self, simd: V3, w: &[u8], tile: Tile<'_>) -> [f32; TILE] {
            let mut acc = [simd.avx._mm256_setzero_ps(); R];
            for ((b, xs), xd) in arrays::<u8, BLOCK_BYTES>(w).zip(tile.q).zip(tile.d) {
                let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
                let q = weights(b);
                let u = simd.avx2._mm256_abs_epi8(q);
                let scales = simd.avx._mm256_mul_ps(simd.avx._mm256_set1_ps(d), pulp::cast(*xd));
                let scales: [f32; TILE] = pulp::cast(scales);
                for r in 0..R {
                    let y = simd.avx2._mm256_sign_epi8(pulp::cast(xs[r]), q);
                    acc[r] = block_fma(simd, u, y, scales[r], acc[r]);
                }
            }
            lane_sums(acc)
        }
    }
}

/// The weights of one block as floats (for tests and checks).
pub fn dequantize_block(b: &[u8; BLOCK_BYTES]) -> [f32; BLOCK] {
    let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
    let mut out = [0f32; BLOCK];
    for (o, &q) in out.iter_mut().zip(&b[2..]) {
        *o = d * f32::from(q as i8);
    }
    out
}
