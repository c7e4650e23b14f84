//! `Q4_K` weights against `Q8_K` activations, read straight from the GGUF bytes. A 144-byte
//! superblock holds 256 four-bit values in eight runs of 32, each run with a six-bit scale
//! and minimum (packed into 12 bytes), under two f16 factors `d` and `dmin`: a weight is
//! `d * sc * q - dmin * m`. So a superblock's dot product is
//! `d * dx * Σ_runs sc * Σ q·x  -  dmin * dx * Σ_runs m * Σ x`, the last sums read from the
//! activations' sums of sixteen. Depends on `quant`.

use half::f16;

use super::quant::{arrays, Q8KRows, Q8KTiles, SUPER};

/// Bytes of one `Q4_K` superblock.
pub const BLOCK_BYTES: usize = 144;

/// The eight runs' scales and minimums from the 12 packed bytes (ggml's `get_scale_min_k4`,
/// four runs at a time as ggml's x86 code does): runs 0-3 in the low six bits of bytes 0-3
/// (scales) and 4-7 (minimums); runs 4-7 from the nibbles of bytes 8-11 with their top two
/// bits in the spare bits of bytes 0-3 (scales) and 4-7 (minimums).
#[inline(always)]
fn scales_mins(s: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    const LOW6: u32 = 0x3F3F_3F3F;
    const LOW4: u32 = 0x0F0F_0F0F;
    const LOW2: u32 = 0x0303_0303;
    let word = |i: usize| u32::from_le_bytes([s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]]);
    let (a, b, c) = (word(0), word(1), word(2));
    let sc_hi = (c & LOW4) | (((a >> 6) & LOW2) << 4);
    let mn_hi = ((c >> 4) & LOW4) | (((b >> 6) & LOW2) << 4);
    let join = |lo: u32, hi: u32| {
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&lo.to_le_bytes());
        out[4..].copy_from_slice(&hi.to_le_bytes());
        out
    };
    (join(a & LOW6, sc_hi), join(b & LOW6, mn_hi))
}

/// A superblock's header: `d`, `dmin`, scales and minimums.
#[inline(always)]
fn header(b: &[u8; BLOCK_BYTES]) -> (f32, f32, [u8; 8], [u8; 8]) {
    let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
    let dmin = f16::from_le_bytes([b[2], b[3]]).to_f32();
    let packed: [u8; 12] = b[4..16].try_into().unwrap_or([0; 12]);
    let (sc, mn) = scales_mins(&packed);
    (d, dmin, sc, mn)
}

/// `Σ_runs m * Σ x` of a superblock, from the sums of sixteen.
#[inline(always)]
fn mins_term(mn: &[u8; 8], bsums: &[i16; SUPER / 16]) -> i32 {
    let mut sum = 0i32;
    for j in 0..8 {
        sum += i32::from(mn[j]) * (i32::from(bsums[2 * j]) + i32::from(bsums[2 * j + 1]));
    }
    sum
}

/// Dot product of one weight row (`blocks * 144` bytes) with activation row `r` of `xq`: the
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
        let (d, dmin, sc, mn) = header(b);
        let mut sumi = 0i32;
        for j in 0..4 {
            let qs = &b[16 + 32 * j..48 + 32 * j];
            let (mut lo, mut hi) = (0i32, 0i32);
            for l in 0..32 {
                lo += i32::from(qs[l] & 0x0F) * i32::from(x[64 * j + l]);
                hi += i32::from(qs[l] >> 4) * i32::from(x[64 * j + 32 + l]);
            }
            sumi += i32::from(sc[2 * j]) * lo + i32::from(sc[2 * j + 1]) * hi;
        }
        acc += d * dx * sumi as f32 - dmin * dx * mins_term(&mn, bs) as f32;
    }
    acc
}

/// The AVX2 kernel, as ggml's: per run of 32, the nibbles (low for the first run of a pair,
/// high for the second) times the activations by `vpmaddubsw`, times the run's scale by
/// `vpmaddwd`, summed into eight 32-bit lanes for the superblock; one FMA per superblock adds
/// them with `d * dx` into eight float lanes. The minimum term is a vector of four lanes
/// (`vpmaddwd` of the minimums with the pairs of sums of sixteen). Safe code: `pulp`'s `V3` token proves the CPU features, and loads are bit casts.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{__m128, __m128i, __m256i};

    use pulp::x86::V3;

    use super::super::lane_sums;
    use super::super::quant::{KTile, SUPER, TILE};
    use super::{arrays, header, Q8KRows, BLOCK_BYTES};

    /// A superblock unpacked: `d`, `dmin`, the eight runs' values as unsigned bytes, each
    /// run's scale broadcast to sixteen `i16` lanes, and the minimums as eight `i16`.
    struct Unpacked {
        d: f32,
        dmin: f32,
        runs: [__m256i; 8],
        scales: [__m256i; 8],
        mins: __m128i,
    }

    #[inline(always)]
    fn unpack(simd: V3, b: &[u8; BLOCK_BYTES]) -> Unpacked {
        let (avx, avx2) = (simd.avx, simd.avx2);
        let (d, dmin, sc, mn) = header(b);
        let mask = avx._mm256_set1_epi8(0x0F);
        let qs: [u8; 128] = b[16..].try_into().unwrap_or([0; 128]);
        let qs: [__m256i; 4] = pulp::cast(qs);
        let mut runs = [avx._mm256_setzero_si256(); 8];
        for j in 0..4 {
            runs[2 * j] = avx2._mm256_and_si256(qs[j], mask);
            runs[2 * j + 1] = avx2._mm256_and_si256(avx2._mm256_srli_epi16::<4>(qs[j]), mask);
        }
        let scales = sc.map(|s| avx._mm256_set1_epi16(i16::from(s)));
        let mins = simd.sse4_1._mm_cvtepu8_epi16(pulp::cast([mn, [0; 8]]));
        Unpacked { d, dmin, runs, scales, mins }
    }

    /// `Σ_runs sc * Σ q·x` of a superblock in eight 32-bit lanes. The eight runs' products
    /// are added as a tree, not one after the other: LLVM fuses an add into the `vpmaddwd`
    /// before it (`vpdpwssd` under AVX-512 VNNI), and a chain of eight of those is latency
    /// bound (measured: a third of a prefill in that chain).
    #[inline(always)]
    fn run_sums(simd: V3, u: &Unpacked, x: &[i8; SUPER]) -> __m256i {
        let avx2 = simd.avx2;
        let xs: [__m256i; 8] = pulp::cast(*x);
        let p: [__m256i; 8] = std::array::from_fn(|j| {
            avx2._mm256_madd_epi16(avx2._mm256_maddubs_epi16(u.runs[j], xs[j]), u.scales[j])
        });
        super::super::tree_sum(simd, p)
    }

    /// Each run's minimum times its two sums of sixteen, in four float lanes.
    #[inline(always)]
    fn min_sums(simd: V3, u: &Unpacked, bsums: &[i16; SUPER / 16]) -> __m128 {
        let sums: [__m128i; 2] = pulp::cast(*bsums);
        let pairs = simd.ssse3._mm_hadd_epi16(sums[0], sums[1]);
        simd.sse2._mm_cvtepi32_ps(simd.sse2._mm_madd_epi16(u.mins, pairs))
    }

    #[inline(always)]
    pub fn dot(simd: V3, w: &[u8], xq: &Q8KRows, r: usize) -> f32 {
        let (q, d, bsums) = xq.row(r);
        let mut acc = simd.avx._mm256_setzero_ps();
        let mut acc_m = simd.sse._mm_setzero_ps();
        for (((b, x), &dx), bs) in arrays::<u8, BLOCK_BYTES>(w).zip(q).zip(d).zip(bsums) {
            let u = unpack(simd, b);
            let sumi = simd.avx._mm256_cvtepi32_ps(run_sums(simd, &u, x));
            acc = simd.fma._mm256_fmadd_ps(simd.avx._mm256_set1_ps(u.d * dx), sumi, acc);
            let m = min_sums(simd, &u, bs);
            acc_m = simd.fma._mm_fmadd_ps(simd.sse._mm_set1_ps(u.dmin * dx), m, acc_m);
        }
        let mins: [f32; 4] = pulp::cast(acc_m);
        lane_sums(simd, [acc])[0] - mins.iter().sum::<f32>()
    }

    /// The multi-row kernel `super::super::for_tiles` runs.
    pub struct Tiles;

    impl super::super::TileKernel<[i8; SUPER], [i16; SUPER / 16]> for Tiles {
        /// `dot` of one weight row with the first `R` rows of a tile: the superblock unpacked
        /// once, `d` and `dmin` multiplied with the `R` activation scales in one vector each;
        /// per row the operations and their order are `dot`'s, so the results are
        /// bit-identical.
        #[inline(always)]
        fn rows<const R: usize>(&self, simd: V3, w: &[u8], tile: KTile<'_>) -> [f32; TILE] {
            let (sse, avx, fma) = (simd.sse, simd.avx, simd.fma);
            let mut acc = [avx._mm256_setzero_ps(); R];
            let mut acc_m = [sse._mm_setzero_ps(); R];
            let blocks = arrays::<u8, BLOCK_BYTES>(w).zip(tile.q).zip(tile.d).zip(tile.s);
            for (((b, xs), xd), bs) in blocks {
                let u = unpack(simd, b);
                let dd: [f32; TILE] =
                    pulp::cast(avx._mm256_mul_ps(avx._mm256_set1_ps(u.d), pulp::cast(*xd)));
                let dm: [f32; TILE] =
                    pulp::cast(avx._mm256_mul_ps(avx._mm256_set1_ps(u.dmin), pulp::cast(*xd)));
                for r in 0..R {
                    let sumi = avx._mm256_cvtepi32_ps(run_sums(simd, &u, &xs[r]));
                    acc[r] = fma._mm256_fmadd_ps(avx._mm256_set1_ps(dd[r]), sumi, acc[r]);
                    let m = min_sums(simd, &u, &bs[r]);
                    acc_m[r] = fma._mm_fmadd_ps(sse._mm_set1_ps(dm[r]), m, acc_m[r]);
                }
            }
            let mut out = lane_sums(simd, acc);
            for (o, m) in out.iter_mut().zip(acc_m) {
                let m: [f32; 4] = pulp::cast(m);
                *o -= m.iter().sum::<f32>();
            }
            out
        }
    }
}

/// The weights of one superblock as floats (for tests and checks).
pub fn dequantize_block(b: &[u8; BLOCK_BYTES]) -> [f32; SUPER] {
    let (d, dmin, sc, mn) = header(b);
    let mut out = [0f32; SUPER];
    for j in 0..4 {
        for l in 0..32 {
            let q = b[16 + 32 * j + l];
            out[64 * j + l] =
                d * f32::from(sc[2 * j]) * f32::from(q & 0x0F) - dmin * f32::from(mn[2 * j]);
            out[64 * j + 32 + l] =
                d * f32::from(sc[2 * j + 1]) * f32::from(q >> 4) - dmin * f32::from(mn[2 * j + 1]);
        }
    }
    out
}
