//! Quantization of activations before a quantized matmul, as ggml does it: 32-value blocks of
//! `i8` with an f16-rounded scale (`Q8_0`), plus the scaled block sum for `Q4_1` weights
//! (`Q8_1`); and 256-value blocks with an f32 scale and sums of sixteen (`Q8_K`) for the
//! k-quants. Kept in plain arrays so that the dot kernels read them with fixed-size loads.
//! Depends on nothing but `half`.

use half::f16;

/// Values per quantization block (every type these kernels handle uses 32).
pub const BLOCK: usize = 32;

/// Rows of activations quantized to 8 bits, block by block.
#[derive(Debug, Default, Clone)]
pub struct Q8Rows {
    /// Quantized values, `rows * blocks` blocks.
    pub q: Vec<[i8; BLOCK]>,
    /// Scale of each block (f16-rounded, as ggml stores it).
    pub d: Vec<f32>,
    /// Scale times the sum of the block's values (f16-rounded; `Q8_1`'s `s`).
    pub s: Vec<f32>,
    /// Twice the exact sum of each block's quantized values: `Q5_0`'s offset, 16 times the
    /// sum, spread over the eight lanes of its kernel's accumulator.
    pub n: Vec<i32>,
    /// Blocks per row.
    pub blocks: usize,
}

impl Q8Rows {
    /// Quantizes `x`, rows of `k` values each (`k` a multiple of 32), reusing the buffers, as
    /// ggml's x86 code (`q8_block`).
    pub fn quantize(&mut self, x: &[f32], k: usize) {
        let blocks = k / BLOCK;
        let n = x.len() / BLOCK;
        self.blocks = blocks;
        self.q.resize(n, [0; BLOCK]);
        self.d.resize(n, 0.0);
        self.s.resize(n, 0.0);
        self.n.resize(n, 0);
        let each = arrays::<f32, BLOCK>(x)
            .zip(&mut self.q)
            .zip(self.d.iter_mut().zip(&mut self.s).zip(&mut self.n));
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = pulp::x86::V3::try_new() {
            return simd.vectorize(|| {
                for ((xs, q), ((d, s), n)) in each {
                    (*d, *s, *n) = q8_scales(avx2::q8_block(simd, xs, q));
                }
            });
        }
        for ((xs, q), ((d, s), n)) in each {
            (*d, *s, *n) = q8_scales(q8_block(xs, q));
        }
    }

    /// The blocks of row `r`.
    pub fn row(&self, r: usize) -> (&[[i8; BLOCK]], &[f32], &[f32]) {
        let range = r * self.blocks..(r + 1) * self.blocks;
        (&self.q[range.clone()], &self.d[range.clone()], &self.s[range])
    }

    /// Row `r`'s `n`, twice its exact block sums.
    pub fn sums(&self, r: usize) -> &[i32] {
        &self.n[r * self.blocks..(r + 1) * self.blocks]
    }
}

/// One `Q8_0`/`Q8_1` block, as ggml's x86 `quantize_row_q8_0`/`_q8_1` (what llama.cpp runs
/// here): values times 127 / amax, rounded half to even (`vroundps`); returns amax and the sum
/// of the quantized values. Candle's differs in the last bit (1 / d, halves away from zero),
/// which the reference test shows. `avx2::q8_block` computes the same bits.
fn q8_block(xs: &[f32; BLOCK], q: &mut [i8; BLOCK]) -> (f32, i32) {
    let amax = xs.iter().fold(0f32, |a, v| a.max(v.abs()));
    let inv = q8_inverse(amax);
    let mut sum = 0i32;
    for (qv, &v) in q.iter_mut().zip(xs) {
        // `as` saturates (NaN gives 0); |v * inv| <= 127 up to rounding anyway.
        *qv = (v * inv).round_ties_even() as i8;
        sum += i32::from(*qv);
    }
    (amax, sum)
}

/// The multiplier of a block whose largest magnitude is `amax`.
#[inline(always)]
fn q8_inverse(amax: f32) -> f32 {
    if amax != 0.0 {
        127.0 / amax
    } else {
        0.0
    }
}

/// A block's `d` = amax / 127 and `s` = d * sum (`d` unrounded), both stored as f16, and
/// twice the sum (`Q8Rows::n`).
#[inline(always)]
fn q8_scales((amax, sum): (f32, i32)) -> (f32, f32, i32) {
    let scale = amax / 127.0;
    (f16::from_f32(scale).to_f32(), f16::from_f32(scale * sum as f32).to_f32(), 2 * sum)
}

/// One `Q8_K` superblock as ggml's `quantize_row_q8_K_ref`: the value of largest magnitude
/// (the first, on a tie) maps to -127 (so +128 cannot occur and the clamp only guards
/// rounding); rounding is to nearest, ties to even (ggml's `nearest_int`). Returns `d` and
/// writes the sums of sixteen. `avx2::q8k_block` computes the same bits.
fn q8k_block(xs: &[f32; SUPER], q: &mut [i8; SUPER], bsums: &mut [i16; SUPER / 16]) -> f32 {
    let (mut max, mut amax) = (0f32, 0f32);
    for &v in xs {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        *q = [0; SUPER];
        *bsums = [0; SUPER / 16];
        return 0.0;
    }
    let iscale = -127.0 / max;
    for (qv, &v) in q.iter_mut().zip(xs) {
        *qv = (iscale * v).round_ties_even().clamp(-128.0, 127.0) as i8;
    }
    q8k_sums(q, bsums);
    1.0 / iscale
}

/// The sums of each run of sixteen quantized values.
#[inline(always)]
fn q8k_sums(q: &[i8; SUPER], bsums: &mut [i16; SUPER / 16]) {
    for (s, run) in bsums.iter_mut().zip(q.chunks_exact(16)) {
        *s = run.iter().map(|&v| i16::from(v)).sum();
    }
}

/// The AVX2 quantizers: the portable ones' results bit for bit, eight lanes at a time.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{__m256, __m256i};

    use pulp::x86::V3;

    use super::{arrays, q8_inverse, q8k_sums, BLOCK, SUPER};

    /// Round to nearest, ties to even, without raising exceptions.
    const NEAREST: i32 = 0x08;

    /// `|v|` of eight lanes.
    #[inline(always)]
    fn abs(simd: V3, v: __m256) -> __m256 {
        simd.avx._mm256_andnot_ps(simd.avx._mm256_set1_ps(-0.0), v)
    }

    /// The largest of eight lanes (a NaN lane is skipped, as `f32::max` skips it).
    #[inline(always)]
    fn max_lane(m: __m256) -> f32 {
        let lanes: [f32; 8] = pulp::cast(m);
        lanes.iter().fold(0f32, |a, &v| a.max(v))
    }

    /// `v * mul` rounded half to even, as 32-bit integers; NaN gives 0 (as `f32 as i8` does).
    #[inline(always)]
    fn round(simd: V3, v: __m256, mul: __m256) -> __m256i {
        let r = simd.avx._mm256_round_ps::<NEAREST>(simd.avx._mm256_mul_ps(v, mul));
        let ordered = simd.avx._mm256_cmp_ps::<7>(r, r); // _CMP_ORD_Q
        simd.avx._mm256_cvtps_epi32(simd.avx._mm256_and_ps(r, ordered))
    }

    /// Four vectors of eight 32-bit integers as 32 bytes in order, saturated to `i8`.
    #[inline(always)]
    fn pack(simd: V3, i: [__m256i; 4]) -> [i8; BLOCK] {
        let ab = simd.avx2._mm256_packs_epi32(i[0], i[1]);
        let cd = simd.avx2._mm256_packs_epi32(i[2], i[3]);
        let bytes = simd.avx2._mm256_packs_epi16(ab, cd);
        // The packs work within 128-bit halves: dwords 0, 4, 1, 5, .. restore the order.
        let order = simd.avx._mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        pulp::cast(simd.avx2._mm256_permutevar8x32_epi32(bytes, order))
    }

    /// The sum of eight 32-bit lanes.
    #[inline(always)]
    fn sum_lanes(v: __m256i) -> i32 {
        let lanes: [i32; 8] = pulp::cast(v);
        lanes.iter().sum()
    }

    /// `super::q8_block`.
    #[inline(always)]
    pub fn q8_block(simd: V3, xs: &[f32; BLOCK], q: &mut [i8; BLOCK]) -> (f32, i32) {
        let v: [__m256; 4] = std::array::from_fn(|j| {
            let lanes: [f32; 8] = std::array::from_fn(|l| xs[8 * j + l]);
            pulp::cast(lanes)
        });
        let max = |a, b| simd.avx._mm256_max_ps(a, b);
        let amax = max_lane(max(
            max(abs(simd, v[0]), abs(simd, v[1])),
            max(abs(simd, v[2]), abs(simd, v[3])),
        ));
        let mul = simd.avx._mm256_set1_ps(q8_inverse(amax));
        let i = v.map(|v| round(simd, v, mul));
        let add = |a, b| simd.avx2._mm256_add_epi32(a, b);
        let sum = sum_lanes(add(add(i[0], i[1]), add(i[2], i[3])));
        *q = pack(simd, i);
        (amax, sum)
    }

    /// `super::q8k_block`.
    #[inline(always)]
    pub fn q8k_block(
        simd: V3,
        xs: &[f32; SUPER],
        q: &mut [i8; SUPER],
        bsums: &mut [i16; SUPER / 16],
    ) -> f32 {
        let v: [__m256; SUPER / 8] = std::array::from_fn(|j| {
            let lanes: [f32; 8] = std::array::from_fn(|l| xs[8 * j + l]);
            pulp::cast(lanes)
        });
        let mut m = simd.avx._mm256_setzero_ps();
        for &v in &v {
            m = simd.avx._mm256_max_ps(abs(simd, v), m);
        }
        let amax = max_lane(m);
        if amax == 0.0 {
            *q = [0; SUPER];
            *bsums = [0; SUPER / 16];
            return 0.0;
        }
        // The first value of that magnitude, with its sign.
        let max = xs.iter().copied().find(|v| v.abs() == amax).unwrap_or(amax);
        let iscale = -127.0 / max;
        let mul = simd.avx._mm256_set1_ps(iscale);
        for (out, v) in q.chunks_exact_mut(BLOCK).zip(arrays::<__m256, 4>(&v)) {
            out.copy_from_slice(&pack(simd, v.map(|v| round(simd, v, mul))));
        }
        q8k_sums(q, bsums);
        1.0 / iscale
    }
}

/// Values per k-quant superblock (`Q4_K`, `Q6_K` and their `Q8_K` activations).
pub const SUPER: usize = 256;

/// Rows of activations quantized as ggml's `Q8_K`, for the k-quant kernels.
#[derive(Debug, Default, Clone)]
pub struct Q8KRows {
    /// Quantized values, `rows * blocks` superblocks.
    pub q: Vec<[i8; SUPER]>,
    /// Scale of each superblock (f32).
    pub d: Vec<f32>,
    /// Sums of each run of 16 quantized values.
    pub bsums: Vec<[i16; SUPER / 16]>,
    /// Superblocks per row.
    pub blocks: usize,
}

impl Q8KRows {
    /// Quantizes `x`, rows of `k` values each (`k` a multiple of 256), reusing the buffers, as
    /// ggml's `quantize_row_q8_K_ref` (`q8k_block`).
    pub fn quantize(&mut self, x: &[f32], k: usize) {
        let blocks = k / SUPER;
        let n = x.len() / SUPER;
        self.blocks = blocks;
        self.q.resize(n, [0; SUPER]);
        self.d.resize(n, 0.0);
        self.bsums.resize(n, [0; SUPER / 16]);
        let each = arrays::<f32, SUPER>(x).zip(&mut self.q).zip(&mut self.d).zip(&mut self.bsums);
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = pulp::x86::V3::try_new() {
            return simd.vectorize(|| {
                for (((xs, q), d), bsums) in each {
                    *d = avx2::q8k_block(simd, xs, q, bsums);
                }
            });
        }
        for (((xs, q), d), bsums) in each {
            *d = q8k_block(xs, q, bsums);
        }
    }

    /// The superblocks of row `r`.
    pub fn row(&self, r: usize) -> (&[[i8; SUPER]], &[f32], &[[i16; SUPER / 16]]) {
        let range = r * self.blocks..(r + 1) * self.blocks;
        (&self.q[range.clone()], &self.d[range.clone()], &self.bsums[range])
    }

    /// Rows held.
    pub fn rows(&self) -> usize {
        self.d.len().checked_div(self.blocks).unwrap_or(0)
    }
}

/// Activation rows per tile of `Q8Tiles` and `Q8KTiles`.
pub const TILE: usize = 8;

/// Activation rows regrouped for the multi-row kernels (a batched decode, a prefill): rows
/// in tiles of `TILE`, each tile block-major, so that for block `i` the tile's eight
/// quantized blocks sit side by side and its eight scales form one vector (and its eight
/// sums: `Q8_1` block sums, or `Q8_K` sums of sixteen). A kernel then reads and unpacks a
/// weight block once for all eight rows, and scales it against them with one multiply. Rows
/// past the last one are zero.
#[derive(Debug, Clone)]
pub struct Tiled<Q, S> {
    /// `tiles * blocks` entries: tile `t`'s block `i` at `t * blocks + i`.
    pub q: Vec<[Q; TILE]>,
    pub d: Vec<[f32; TILE]>,
    pub s: Vec<[S; TILE]>,
    /// `Q8Rows::n`, twice the exact block sums (empty for `Q8_K` tiles).
    pub n: Vec<[i32; TILE]>,
    pub blocks: usize,
    pub rows: usize,
}

impl<Q, S> Default for Tiled<Q, S> {
    fn default() -> Self {
        Tiled { q: Vec::new(), d: Vec::new(), s: Vec::new(), n: Vec::new(), blocks: 0, rows: 0 }
    }
}

/// Tiles of `Q8Rows` (blocks of 32, for `Q4_1`, `Q5_0` and `Q8_0` weights).
pub type Q8Tiles = Tiled<[i8; BLOCK], f32>;

/// Tiles of `Q8KRows` (superblocks of 256, for `Q4_K` and `Q6_K` weights).
pub type Q8KTiles = Tiled<[i8; SUPER], [i16; SUPER / 16]>;

/// One tile of a `Tiled`.
#[derive(Debug)]
pub struct TileOf<'a, Q, S> {
    pub q: &'a [[Q; TILE]],
    pub d: &'a [[f32; TILE]],
    pub s: &'a [[S; TILE]],
    pub n: &'a [[i32; TILE]],
}

impl<Q, S> Clone for TileOf<'_, Q, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Q, S> Copy for TileOf<'_, Q, S> {}

/// One tile of `Q8Tiles`.
pub type Tile<'a> = TileOf<'a, [i8; BLOCK], f32>;

/// One tile of `Q8KTiles`.
pub type KTile<'a> = TileOf<'a, [i8; SUPER], [i16; SUPER / 16]>;

impl<Q: Copy, S: Copy> Tiled<Q, S> {
    /// Regroups rows of `blocks` blocks (`q`, `d`, `s` and, if not empty, `sums` hold every
    /// row's blocks in order), reusing the buffers; `zero` fills the rows past the last one.
    fn fill(&mut self, (q, d, s): (&[Q], &[f32], &[S]), sums: &[i32], blocks: usize, zero: (Q, S)) {
        let rows = d.len().checked_div(blocks).unwrap_or(0);
        let n = rows.div_ceil(TILE) * blocks;
        self.blocks = blocks;
        self.rows = rows;
        // Cleared first: the lanes past the last row of a partial tile stay zero.
        self.q.clear();
        self.q.resize(n, [zero.0; TILE]);
        self.d.clear();
        self.d.resize(n, [0.0; TILE]);
        self.s.clear();
        self.s.resize(n, [zero.1; TILE]);
        self.n.clear();
        self.n.resize(if sums.is_empty() { 0 } else { n }, [0; TILE]);
        for (b, ((q, &d), s)) in q.iter().zip(d).zip(s).enumerate() {
            let (r, i) = (b / blocks, b % blocks);
            let (at, slot) = ((r / TILE) * blocks + i, r % TILE);
            self.q[at][slot] = *q;
            self.d[at][slot] = d;
            self.s[at][slot] = *s;
            if let (Some(&v), Some(n)) = (sums.get(b), self.n.get_mut(at)) {
                n[slot] = v;
            }
        }
    }

    /// Tile `t`: its blocks, scales and sums.
    pub fn tile(&self, t: usize) -> TileOf<'_, Q, S> {
        let range = t * self.blocks..(t + 1) * self.blocks;
        TileOf {
            q: &self.q[range.clone()],
            d: &self.d[range.clone()],
            s: &self.s[range.clone()],
            n: self.n.get(range).unwrap_or(&[]),
        }
    }
}

impl Q8Tiles {
    /// Regroups `x`'s rows, reusing the buffers.
    pub fn regroup(&mut self, x: &Q8Rows) {
        self.fill((&x.q, &x.d, &x.s), &x.n, x.blocks, ([0; BLOCK], 0.0));
    }
}

impl Q8KTiles {
    /// Regroups `x`'s rows, reusing the buffers.
    pub fn regroup(&mut self, x: &Q8KRows) {
        self.fill((&x.q, &x.d, &x.bsums), &[], x.blocks, ([0; SUPER], [0; SUPER / 16]));
    }
}

/// `s` as consecutive fixed-size arrays (a tail shorter than `N` is left out).
pub fn arrays<T, const N: usize>(s: &[T]) -> impl Iterator<Item = &[T; N]> {
    s.chunks_exact(N).filter_map(|c| c.try_into().ok())
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// Blocks that exercise the edges: random magnitudes, ties at an exact multiplier, zeros,
    /// a largest magnitude present with both signs, and non-finite values.
    fn blocks(rng: &mut ChaCha8Rng, n: usize) -> Vec<Vec<f32>> {
        let mut out = Vec::new();
        for scale in [1e-3f32, 1.0, 40.0] {
            out.push((0..n).map(|_| rng.random_range(-scale..scale)).collect());
        }
        let mut ties: Vec<f32> = (0..n).map(|i| (i as f32 - 16.0) * 0.5).collect();
        ties[1] = 127.0;
        out.push(ties);
        out.push(vec![0.0; n]);
        let mut both: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        both[3] = -5.0;
        both[n - 2] = 5.0;
        out.push(both.clone());
        both[3] = 5.0;
        both[n - 2] = -5.0;
        out.push(both.clone());
        both[7] = f32::NAN;
        out.push(both.clone());
        both[9] = f32::INFINITY;
        out.push(both);
        out
    }

    /// The AVX2 quantizers give the portable ones' bits, values, scales and sums.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn simd_quantizers_equal_the_portable_ones() {
        let Some(simd) = pulp::x86::V3::try_new() else { return };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for xs in blocks(&mut rng, BLOCK) {
            let xs: &[f32; BLOCK] = xs.as_slice().try_into().unwrap();
            let (mut a, mut b) = ([0i8; BLOCK], [0i8; BLOCK]);
            let pa = q8_block(xs, &mut a);
            let pb = simd.vectorize(|| avx2::q8_block(simd, xs, &mut b));
            assert_eq!(a, b, "{xs:?}");
            assert_eq!((pa.0.to_bits(), pa.1), (pb.0.to_bits(), pb.1), "{xs:?}");
        }
        for xs in blocks(&mut rng, SUPER) {
            let xs: &[f32; SUPER] = xs.as_slice().try_into().unwrap();
            let (mut a, mut b) = ([0i8; SUPER], [0i8; SUPER]);
            let (mut sa, mut sb) = ([0i16; SUPER / 16], [0i16; SUPER / 16]);
            let da = q8k_block(xs, &mut a, &mut sa);
            let db = simd.vectorize(|| avx2::q8k_block(simd, xs, &mut b, &mut sb));
            assert_eq!((a, sa, da.to_bits()), (b, sb, db.to_bits()), "{xs:?}");
        }
    }

    /// The sign of the largest magnitude decides `Q8_K`'s scale: the first such value wins.
    #[test]
    fn q8k_scale_takes_the_first_largest_value() {
        let mut xs = [0.5f32; SUPER];
        xs[10] = -4.0;
        xs[20] = 4.0;
        let (mut q, mut s) = ([0i8; SUPER], [0i16; SUPER / 16]);
        assert_eq!(q8k_block(&xs, &mut q, &mut s), 4.0 / 127.0);
        assert_eq!((q[10], q[20], q[0]), (-127, 127, 16));
        assert_eq!(s[0], -127 + 16 * 15);
        // With the positive one first, the scale is negative.
        xs.swap(10, 20);
        assert_eq!(q8k_block(&xs, &mut q, &mut s), -4.0 / 127.0);
        assert_eq!((q[10], q[20], q[0]), (-127, 127, -16));
    }
}
