//! `Q5_0` weights (blocks of 32 five-bit values: an f16 scale, the 32 fifth bits in a `u32`,
//! then 16 bytes of low nibbles: 22 bytes; a weight is `d * (q - 16)`) against `Q8_0`
//! activations, read straight from the GGUF bytes, with the kernels of `signed`. llama.cpp
//! writes this type for the rows of a `Q4_K_M` file whose width is not a multiple of 256 (the
//! demo model's, and narrow distills'); candle 0.11 has no SIMD path for it. Depends on
//! `quant` and `signed`.

use half::f16;

use super::quant::{Q8Rows, Q8Tiles, BLOCK};
use super::signed::{self, Format};

/// Bytes of one `Q5_0` block.
pub const BLOCK_BYTES: usize = 22;

/// The `Q5_0` block format.
pub struct Q5_0;

impl Format<BLOCK_BYTES> for Q5_0 {
    #[inline(always)]
    fn unpack(b: &[u8; BLOCK_BYTES]) -> (f32, [i8; BLOCK]) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let mut q = [0i8; BLOCK];
        for j in 0..16 {
            let lo = b[6 + j] & 0x0F | (((qh >> j) & 1) << 4) as u8;
            let hi = b[6 + j] >> 4 | (((qh >> (j + 16)) & 1) << 4) as u8;
            q[j] = lo as i8 - 16;
            q[j + 16] = hi as i8 - 16;
        }
        (d, q)
    }
}

impl Q5_0 {
    /// A block's scale and its 32 five-bit values as unsigned bytes `0..=31` (the weight is
    /// `d * (q - 16)`): the nibbles as in `q4_1` (low then high), the fifth bits spread to
    /// one byte each (each byte of `qh` copied to eight lanes, every lane keeping its own bit).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn unpack_unsigned(
        simd: pulp::x86::V3,
        b: &[u8; BLOCK_BYTES],
    ) -> (f32, std::arch::x86_64::__m256i) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        let mut nibbles = [0u8; 16];
        nibbles.copy_from_slice(&b[6..]);
        let packed: std::arch::x86_64::__m128i = pulp::cast(nibbles);
        let mask = simd.sse2._mm_set1_epi8(0x0F);
        let lo = simd.sse2._mm_and_si128(packed, mask);
        let hi = simd.sse2._mm_and_si128(simd.sse2._mm_srli_epi16::<4>(packed), mask);
        let q4 = simd.avx._mm256_set_m128i(hi, lo);
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let bytes = simd
            .avx2
            ._mm256_shuffle_epi8(simd.avx._mm256_set1_epi32(qh as i32), pulp::cast(SPREAD));
        let bit = pulp::cast(LANE_BIT);
        let set = simd.avx2._mm256_cmpeq_epi8(simd.avx2._mm256_and_si256(bytes, bit), bit);
        let fifth = simd.avx2._mm256_and_si256(set, simd.avx._mm256_set1_epi8(0x10));
        (d, simd.avx2._mm256_or_si256(q4, fifth))
    }
}

/// For lane `j`, the byte of `qh` that holds its bit (the shuffle reads within each 128-bit
/// half, and every 32-bit lane holds all of `qh`).
#[cfg(target_arch = "x86_64")]
const SPREAD: [u8; BLOCK] = {
    let mut a = [0u8; BLOCK];
    let mut j = 0;
    while j < BLOCK {
        a[j] = (j / 8) as u8;
        j += 1;
    }
    a
};

/// For lane `j`, its bit within that byte.
#[cfg(target_arch = "x86_64")]
const LANE_BIT: [u8; BLOCK] = {
    let mut a = [0u8; BLOCK];
    let mut j = 0;
    while j < BLOCK {
        a[j] = 1 << (j % 8);
        j += 1;
    }
    a
};

/// Dot product of one weight row (`blocks * 22` bytes) with one quantized activation row
/// (blocks `xq`, scales `xd`, twice the exact block sums `xn`): with AVX2, the unsigned values times the
/// activations less 16 times their sum, per block in integers (exact, as `signed`'s sign
/// trick, with one instruction less per block and row); else the portable kernel.
#[inline]
pub fn dot(w: &[u8], xq: &[[i8; BLOCK]], xd: &[f32], xn: &[i32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        return simd.vectorize(|| avx2::dot(simd, w, xq, xd, xn));
    }
    let _ = xn;
    dot_portable(w, xq, xd)
}

/// The portable dot product (what CPUs without AVX2 run).
#[inline]
pub fn dot_portable(w: &[u8], xq: &[[i8; BLOCK]], xd: &[f32]) -> f32 {
    signed::dot_portable::<BLOCK_BYTES, Q5_0>(w, xq, xd)
}

/// Dot products of one weight row with every activation row, each bit-identical to `dot`.
#[inline]
pub fn dot_rows(w: &[u8], xq: &Q8Rows, tiles: &Q8Tiles, first: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        return simd.vectorize(|| super::for_tiles(simd, w, tiles, first, out, &avx2::Tiles));
    }
    for (r, y) in out.iter_mut().enumerate() {
        let (q, d, _) = xq.row(first + r);
        *y = dot_portable(w, q, d);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{__m256, __m256i};

    use pulp::x86::V3;

    use super::super::quant::{arrays, Tile, TILE};
    use super::super::TileKernel;
    use super::{BLOCK, BLOCK_BYTES, Q5_0};

    /// `acc + scale * (u·x - 16 Σx)` in eight float lanes, `n2` twice the block's activation
    /// sum: the byte products summed in fours, less `n2` in each of the eight lanes (`16 Σx`
    /// in all), converted and added with one FMA.
    #[inline(always)]
    fn block_fma(simd: V3, u: __m256i, x: __m256i, n2: i32, scale: f32, acc: __m256) -> __m256 {
        let ones = simd.avx._mm256_set1_epi16(1);
        // An add of `-n2` (not a subtract), so that where the CPU has AVX-512 VNNI, LLVM
        // fuses it with `vpmaddwd` into one `vpdpwssd`, the negated sum as its accumulator.
        let sums = simd.avx2._mm256_add_epi32(
            simd.avx._mm256_set1_epi32(n2.wrapping_neg()),
            simd.avx2._mm256_madd_epi16(simd.avx2._mm256_maddubs_epi16(u, x), ones),
        );
        let scale = simd.avx._mm256_set1_ps(scale);
        simd.fma._mm256_fmadd_ps(scale, simd.avx._mm256_cvtepi32_ps(sums), acc)
    }

    #[inline(always)]
    pub fn dot(simd: V3, w: &[u8], xq: &[[i8; BLOCK]], xd: &[f32], xn: &[i32]) -> f32 {
        let mut acc = simd.avx._mm256_setzero_ps();
        for (((b, x), &dx), &n) in arrays::<u8, BLOCK_BYTES>(w).zip(xq).zip(xd).zip(xn) {
            let (d, u) = Q5_0::unpack_unsigned(simd, b);
            acc = block_fma(simd, u, pulp::cast(*x), n, d * dx, acc);
        }
        super::super::lane_sums(simd, [acc])[0]
    }

    /// The multi-row kernel `super::super::for_tiles` runs.
    pub struct Tiles;

    impl TileKernel<[i8; BLOCK], f32> for Tiles {
        /// `dot` of one weight row with the first `R` rows of a tile: the block unpacked once,
        /// its scale multiplied with the `R` activation scales in one vector; per row the
        /// operations and their order are `dot`'s, so the results are bit-identical.
        #[inline(always)]
        fn rows<const R: usize>(&self, simd: V3, w: &[u8], tile: Tile<'_>) -> [f32; TILE] {
            let mut acc = [simd.avx._mm256_setzero_ps(); R];
            let blocks = arrays::<u8, BLOCK_BYTES>(w).zip(tile.q).zip(tile.d).zip(tile.n);
            for (((b, xs), xd), ns) in blocks {
                let (d, u) = Q5_0::unpack_unsigned(simd, b);
                let scales = simd.avx._mm256_mul_ps(simd.avx._mm256_set1_ps(d), pulp::cast(*xd));
                let scales: [f32; TILE] = pulp::cast(scales);
                for r in 0..R {
                    acc[r] = block_fma(simd, u, pulp::cast(xs[r]), ns[r], scales[r], acc[r]);
                }
            }
            super::super::lane_sums(simd, acc)
        }
    }
}

/// The weights of one block as floats (for tests and checks).
pub fn dequantize_block(b: &[u8; BLOCK_BYTES]) -> [f32; BLOCK] {
    let (d, q) = Q5_0::unpack(b);
    q.map(|q| d * f32::from(q))
}
