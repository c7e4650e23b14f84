//! `Q4_1` weights (blocks of 32 four-bit values with an f16 scale `d` and minimum `m`: 20
//! bytes) against `Q8_1` activations, read straight from the GGUF bytes. A block's dot product
//! is `d * dx * Σ q·x + m * s`; the integer part is written as an unsigned-by-signed byte
//! sum that LLVM vectorizes into VNNI dot instructions. Depends on `quant`.

use half::f16;

use super::quant::{arrays, Q8Rows, Q8Tiles, BLOCK};

/// Bytes of one `Q4_1` block.
pub const BLOCK_BYTES: usize = 20;

/// Dot product of one weight row (`blocks * 20` bytes) with one quantized activation row: the
/// AVX2 kernel on CPUs with AVX2 and FMA (detected once), else the portable one.
#[inline]
pub fn dot(w: &[u8], xq: &[[i8; BLOCK]], xd: &[f32], xs: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        return simd.vectorize(|| avx2::dot(simd, w, xq, xd, xs));
    }
    dot_portable(w, xq, xd, xs)
}

/// Dot products of one weight row with every activation row (`out` has one value per row of
/// `xq`; `tiles` holds the same rows regrouped): each weight block is unpacked once for a tile
/// of eight rows, which is what makes a batched decode cheaper than one matvec per sequence.
/// Every row's result is bit-identical to `dot` on that row.
#[inline]
pub fn dot_rows(w: &[u8], xq: &Q8Rows, tiles: &Q8Tiles, first: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        return simd.vectorize(|| super::for_tiles(simd, w, tiles, first, out, &avx2::Tiles));
    }
    for (r, y) in out.iter_mut().enumerate() {
        let (q, d, s) = xq.row(first + r);
        *y = dot_portable(w, q, d, s);
    }
}

/// The portable dot product. The nibbles are unpacked into a `[u8; 32]` and multiplied with
/// the `i8` activations in a sum LLVM vectorizes per block; each block's integer sum is then
/// reduced to a scalar, which is what the AVX2 kernel avoids.
#[inline]
pub fn dot_portable(w: &[u8], xq: &[[i8; BLOCK]], xd: &[f32], xs: &[f32]) -> f32 {
    let mut acc = 0f32;
    let mut mins = 0f32;
    for (((b, x), &dx), &sx) in arrays::<u8, BLOCK_BYTES>(w).zip(xq).zip(xd).zip(xs) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        let m = f16::from_le_bytes([b[2], b[3]]).to_f32();
        let mut u = [0u8; BLOCK];
        for j in 0..16 {
            u[j] = b[4 + j] & 0x0F;
            u[j + 16] = b[4 + j] >> 4;
        }
        let mut sum = 0i32;
        for j in 0..BLOCK {
            sum += i32::from(u[j]) * i32::from(x[j]);
        }
        acc += d * dx * sum as f32;
        mins += m * sx;
    }
    acc + mins
}

/// The AVX2 kernel, as ggml's: per block, the 16 nibble bytes become 32 unsigned bytes (low
/// nibbles then high, the order of the activations), `vpmaddubsw` + `vpmaddwd` give eight
/// 32-bit partial sums, and those are converted to floats and accumulated with the block's
/// scale into eight float lanes by one FMA. The lanes are summed once per row, not per block.
/// Safe code: `pulp`'s `V3` token proves the CPU features, and loads are bit casts.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use half::f16;
    use pulp::x86::V3;

    use super::super::quant::{Tile, TILE};
    use super::super::{block_fma, lane_sums};
    use super::{arrays, BLOCK, BLOCK_BYTES};

    /// A block's scale `d`, minimum `m` and its 32 four-bit values as unsigned bytes (low
    /// nibbles then high, the order of the activations).
    #[inline(always)]
    fn unpack(simd: V3, b: &[u8; BLOCK_BYTES]) -> (f32, f32, std::arch::x86_64::__m256i) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        let m = f16::from_le_bytes([b[2], b[3]]).to_f32();
        let mut nibbles = [0u8; 16];
        nibbles.copy_from_slice(&b[4..]);
        let packed: std::arch::x86_64::__m128i = pulp::cast(nibbles);
        let mask = simd.sse2._mm_set1_epi8(0x0F);
        let lo = simd.sse2._mm_and_si128(packed, mask);
        let hi = simd.sse2._mm_and_si128(simd.sse2._mm_srli_epi16::<4>(packed), mask);
        (d, m, simd.avx._mm256_set_m128i(hi, lo))
    }

    #[inline(always)]
    pub fn dot(simd: V3, w: &[u8], xq: &[[i8; BLOCK]], xd: &[f32], xs: &[f32]) -> f32 {
        let mut acc = simd.avx._mm256_setzero_ps();
        let mut mins = 0f32;
        for (((b, x), &dx), &sx) in arrays::<u8, BLOCK_BYTES>(w).zip(xq).zip(xd).zip(xs) {
            let (d, m, u) = unpack(simd, b);
            acc = block_fma(simd, u, pulp::cast(*x), d * dx, acc);
            mins += m * sx;
        }
        lane_sums(simd, [acc])[0] + mins
    }

    /// The multi-row kernel `super::super::for_tiles` runs.
    pub struct Tiles;

    impl super::super::TileKernel<[i8; BLOCK], f32> for Tiles {
        /// `dot` of one weight row with the first `R` rows of a tile: the block's nibbles are
        /// unpacked once, its scale multiplies the `R` activation scales in one vector, and the
        /// minimum term is one vector for all rows. Per row these are the operations of `dot`,
        /// in its order (the product `d * dx`, the FMA, `m * s` added block by block, the lanes
        /// summed first to last), so the results are bit-identical.
        #[inline(always)]
        fn rows<const R: usize>(&self, simd: V3, w: &[u8], tile: Tile<'_>) -> [f32; TILE] {
            let mut acc = [simd.avx._mm256_setzero_ps(); R];
            let mut mins = simd.avx._mm256_setzero_ps();
            let blocks = arrays::<u8, BLOCK_BYTES>(w).zip(tile.q).zip(tile.d).zip(tile.s);
            for (((b, xs), xd), xsum) in blocks {
                let (d, m, u) = unpack(simd, b);
                let scales = simd.avx._mm256_mul_ps(simd.avx._mm256_set1_ps(d), pulp::cast(*xd));
                let m_s = simd.avx._mm256_mul_ps(simd.avx._mm256_set1_ps(m), pulp::cast(*xsum));
                mins = simd.avx._mm256_add_ps(mins, m_s);
                let scales: [f32; TILE] = pulp::cast(scales);
                for r in 0..R {
                    acc[r] = block_fma(simd, u, pulp::cast(xs[r]), scales[r], acc[r]);
                }
            }
            let mins: [f32; TILE] = pulp::cast(mins);
            let mut out = lane_sums(simd, acc);
            for (o, m) in out.iter_mut().zip(mins).take(R) {
                *o += m;
            }
            out
        }
    }
}

/// The weights of one block as floats (for tests and checks).
pub fn dequantize_block(b: &[u8; BLOCK_BYTES]) -> [f32; BLOCK] {
    let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
    let m = f16::from_le_bytes([b[2], b[3]]).to_f32();
    let mut out = [0f32; BLOCK];
    for j in 0..16 {
        out[j] = d * f32::from(b[4 + j] & 0x0F) + m;
        out[j + 16] = d * f32::from(b[4 + j] >> 4) + m;
    }
    out
}
