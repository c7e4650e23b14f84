//! `Q6_K` weights against `Q8_K` activations, read straight from the GGUF bytes. A 210-byte
//! superblock holds 256 six-bit values (low nibbles in `ql`, top two bits in `qh`) in sixteen
//! runs of 16, each run with a signed eight-bit scale, under one f16 factor `d`: a weight is
//! `d * sc * (q - 32)`. So a superblock's dot product is
//! `d * dx * Σ_runs sc * (Σ q·x - 32 Σ x)`, the sums of `x` read from the activations' sums
//! of sixteen. Depends on `quant`.

use half::f16;

use super::quant::{arrays, Q8KRows, Q8KTiles, SUPER};

/// Bytes of one `Q6_K` superblock.
pub const BLOCK_BYTES: usize = 210;

/// A superblock's `d` and sixteen scales.
#[inline(always)]
fn header(b: &[u8; BLOCK_BYTES]) -> (f32, [i8; 16]) {
    let d = f16::from_le_bytes([b[208], b[209]]).to_f32();
    let mut sc = [0i8; 16];
    for (s, &v) in sc.iter_mut().zip(&b[192..208]) {
        *s = v as i8;
    }
    (d, sc)
}

/// `Σ_runs sc * 32 Σ x` of a superblock (the offset of the unsigned values).
#[inline(always)]
fn offset_term(sc: &[i8; 16], bsums: &[i16; SUPER / 16]) -> i32 {
    let mut sum = 0i32;
    for (&s, &b) in sc.iter().zip(bsums) {
        sum += i32::from(s) * i32::from(b);
    }
    32 * sum
}

/// Value `n` of the superblock (0..=63, before the offset of 32). Value `n = 128h + 32k + l`
/// takes its low four bits from `ql[64h + 32(k%2) + l]` (low nibble for k < 2, high for
/// k >= 2) and its top two from bits `2k..2k+2` of `qh[32h + l]`.
#[inline(always)]
fn value(b: &[u8; BLOCK_BYTES], n: usize) -> u8 {
    let (h, k, l) = (n / 128, (n % 128) / 32, n % 32);
    let ql = b[64 * h + 32 * (k % 2) + l];
    let low = if k < 2 { ql & 0x0F } else { ql >> 4 };
    let qh = b[128 + 32 * h + l];
    low | (((qh >> (2 * k)) & 3) << 4)
}

/// Dot product of one weight row (`blocks * 210` bytes) with activation row `r` of `xq`: the
/// AVX2 kernel on CPUs with AVX2 and FMA (detected once), else the portable one.
#[inline]
pub fn dot(w: &[u8], xq: &Q8KRows, r: usize) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        return simd.vectorize(|| avx2::dot(simd, w, xq, r));
    }
    dot_portable(w, xq, r)
}

/// Dot products of one weight row with every activation row (`out` has one value per row of
/// `xq`; `tiles` holds the same rows regrouped), the superblock unpacked once per tile of
/// eight rows. Every row's result is bit-identical to `dot` on that row.
#[inline]
pub fn dot_rows(w: &[u8], xq: &Q8KRows, tiles: &Q8KTiles, first: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        return simd.vectorize(|| super::for_tiles(simd, w, tiles, first, out, &avx2::Tiles));
    }
    for (r, y) in out.iter_mut().enumerate() {
        *y = dot_portable(w, xq, first + r);
    }
}

/// The portable dot product: exact integer sums per superblock, one float step each.
pub fn dot_portable(w: &[u8], xq: &Q8KRows, r: usize) -> f32 {
    let (q, d, bsums) = xq.row(r);
    let mut acc = 0f32;
    for (((b, x), &dx), bs) in arrays::<u8, BLOCK_BYTES>(w).zip(q).zip(d).zip(bsums) {
        let (d, sc) = header(b);
        let mut sumi = 0i32;
        for (g, &s) in sc.iter().enumerate() {
            let run: i32 = (16 * g..16 * g + 16)
                .zip(&x[16 * g..16 * g + 16])
                .map(|(n, &xn)| i32::from(value(b, n)) * i32::from(xn))
                .sum();
            sumi += i32::from(s) * run;
        }
        acc += d * dx * (sumi - offset_term(&sc, bs)) as f32;
    }
    acc
}

/// The AVX2 kernel, as ggml's: per half superblock, the four runs of 32 six-bit values are
/// put together from `ql` and `qh` with masks and shifts, multiplied with the activations by
/// `vpmaddubsw` (unsigned values, so no sign trick), and by `vpmaddwd` with a vector holding
/// the two scales of the 32 (eight lanes each); the superblock's eight 32-bit lanes get one
/// FMA with `d * dx`, and the offset of 32 is a scalar per superblock. Safe code, as in
/// `q4_k`.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::__m256i;

    use pulp::x86::V3;

    use super::super::lane_sums;
    use super::super::quant::{KTile, SUPER, TILE};
    use super::{arrays, header, offset_term, Q8KRows, BLOCK_BYTES};

    /// A superblock unpacked: `d`, the sixteen scales, the eight runs of 32 values (0..=63)
    /// and, for each, a vector holding its two scales (eight `i16` lanes each).
    struct Unpacked {
        d: f32,
        sc: [i8; 16],
        values: [__m256i; 8],
        scales: [__m256i; 8],
    }

    #[inline(always)]
    fn unpack(simd: V3, b: &[u8; BLOCK_BYTES]) -> Unpacked {
        let (avx, avx2) = (simd.avx, simd.avx2);
        let (d, sc) = header(b);
        let low4 = avx._mm256_set1_epi8(0x0F);
        let bits = |m: i8| avx._mm256_set1_epi8(m);
        let ql: [u8; 128] = b[..128].try_into().unwrap_or([0; 128]);
        let qh: [u8; 64] = b[128..192].try_into().unwrap_or([0; 64]);
        let [ql0, ql1, ql2, ql3]: [__m256i; 4] = pulp::cast(ql);
        let [qh0, qh1]: [__m256i; 2] = pulp::cast(qh);
        let mut values = [avx._mm256_setzero_si256(); 8];
        for (h, (ql_a, ql_b, qh)) in [(ql0, ql1, qh0), (ql2, ql3, qh1)].into_iter().enumerate() {
            values[4 * h] = avx2._mm256_or_si256(
                avx2._mm256_and_si256(ql_a, low4),
                avx2._mm256_slli_epi16::<4>(avx2._mm256_and_si256(qh, bits(0x03))),
            );
            values[4 * h + 1] = avx2._mm256_or_si256(
                avx2._mm256_and_si256(ql_b, low4),
                avx2._mm256_slli_epi16::<2>(avx2._mm256_and_si256(qh, bits(0x0C))),
            );
            values[4 * h + 2] = avx2._mm256_or_si256(
                avx2._mm256_and_si256(avx2._mm256_srli_epi16::<4>(ql_a), low4),
                avx2._mm256_and_si256(qh, bits(0x30)),
            );
            values[4 * h + 3] = avx2._mm256_or_si256(
                avx2._mm256_and_si256(avx2._mm256_srli_epi16::<4>(ql_b), low4),
                avx2._mm256_srli_epi16::<2>(avx2._mm256_and_si256(qh, bits(-0x40))),
            );
        }
        let scales = std::array::from_fn(|k| {
            avx._mm256_set_m128i(
                simd.sse2._mm_set1_epi16(i16::from(sc[2 * k + 1])),
                simd.sse2._mm_set1_epi16(i16::from(sc[2 * k])),
            )
        });
        Unpacked { d, sc, values, scales }
    }

    /// `Σ_runs sc * Σ q·x` of a superblock in eight 32-bit lanes, added as a tree (see
    /// `q4_k`).
    #[inline(always)]
    fn run_sums(simd: V3, u: &Unpacked, x: &[i8; SUPER]) -> __m256i {
        let avx2 = simd.avx2;
        let xs: [__m256i; 8] = pulp::cast(*x);
        let p: [__m256i; 8] = std::array::from_fn(|k| {
            avx2._mm256_madd_epi16(avx2._mm256_maddubs_epi16(u.values[k], xs[k]), u.scales[k])
        });
        super::super::tree_sum(simd, p)
    }

    #[inline(always)]
    pub fn dot(simd: V3, w: &[u8], xq: &Q8KRows, r: usize) -> f32 {
        let (q, d, bsums) = xq.row(r);
        let mut acc = simd.avx._mm256_setzero_ps();
        let mut offset = 0f32;
        for (((b, x), &dx), bs) in arrays::<u8, BLOCK_BYTES>(w).zip(q).zip(d).zip(bsums) {
            let u = unpack(simd, b);
            let scale = simd.avx._mm256_set1_ps(u.d * dx);
            let sumi = simd.avx._mm256_cvtepi32_ps(run_sums(simd, &u, x));
            acc = simd.fma._mm256_fmadd_ps(scale, sumi, acc);
            offset += u.d * dx * offset_term(&u.sc, bs) as f32;
        }
        lane_sums(simd, [acc])[0] - offset
    }

    /// The multi-row kernel `super::super::for_tiles` runs.
    pub struct Tiles;

    impl super::super::TileKernel<[i8; SUPER], [i16; SUPER / 16]> for Tiles {
        /// `dot` of one weight row with the first `R` rows of a tile: the superblock unpacked
        /// once and `d` multiplied with the `R` activation scales in one vector; per row the
        /// operations and their order are `dot`'s, so the results are bit-identical.
        #[inline(always)]
        fn rows<const R: usize>(&self, simd: V3, w: &[u8], tile: KTile<'_>) -> [f32; TILE] {
            let avx = simd.avx;
            let mut acc = [avx._mm256_setzero_ps(); R];
            let mut offset = [0f32; R];
            let blocks = arrays::<u8, BLOCK_BYTES>(w).zip(tile.q).zip(tile.d).zip(tile.s);
            for (((b, xs), xd), bs) in blocks {
                let u = unpack(simd, b);
                let dd: [f32; TILE] =
                    pulp::cast(avx._mm256_mul_ps(avx._mm256_set1_ps(u.d), pulp::cast(*xd)));
                for r in 0..R {
                    let sumi = avx._mm256_cvtepi32_ps(run_sums(simd, &u, &xs[r]));
                    acc[r] = simd.fma._mm256_fmadd_ps(avx._mm256_set1_ps(dd[r]), sumi, acc[r]);
                    offset[r] += dd[r] * offset_term(&u.sc, &bs[r]) as f32;
                }
            }
            let mut out = lane_sums(simd, acc);
            for (o, m) in out.iter_mut().zip(offset) {
                *o -= m;
            }
            out
        }
    }
}

/// The weights of one superblock as floats (for tests and checks).
pub fn dequantize_block(b: &[u8; BLOCK_BYTES]) -> [f32; SUPER] {
    let (d, sc) = header(b);
    std::array::from_fn(|n| d * f32::from(sc[n / 16]) * (f32::from(value(b, n)) - 32.0))
}
