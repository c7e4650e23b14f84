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
    /// Blocks per row.
    pub blocks: usize,
}

impl Q8Rows {
    /// Quantizes `x`, rows of `k` values each (`k` a multiple of 32), reusing the buffers.
    pub fn quantize(&mut self, x: &[f32], k: usize) {
        let blocks = k / BLOCK;
        let n = x.len() / BLOCK;
        self.blocks = blocks;
        self.q.clear();
        self.q.resize(n, [0; BLOCK]);
        self.d.clear();
        self.d.resize(n, 0.0);
        self.s.clear();
        self.s.resize(n, 0.0);
        for (((xs, q), d), s) in
            arrays::<f32, BLOCK>(x).zip(&mut self.q).zip(&mut self.d).zip(&mut self.s)
        {
            // As ggml's x86 `quantize_row_q8_0`/`_q8_1` (what llama.cpp runs here): values
            // times 127 / amax rounded half to even (`vroundps`), `d` = amax / 127 and
            // `s` = d * sum (d unrounded) stored as f16. Candle's differ in the last bit (1 / d,
            // halves away from zero, `s` from f16 operands), which the reference test shows.
            let amax = xs.iter().fold(0f32, |a, v| a.max(v.abs()));
            let inv = if amax != 0.0 { 127.0 / amax } else { 0.0 };
            let mut sum = 0i32;
            for (qv, &v) in q.iter_mut().zip(xs) {
                // `as` saturates; |v * inv| <= 127 up to rounding anyway.
                *qv = (v * inv).round_ties_even() as i8;
                sum += i32::from(*qv);
            }
            let scale = amax / 127.0;
            *d = f16::from_f32(scale).to_f32();
            *s = f16::from_f32(scale * sum as f32).to_f32();
        }
    }

    /// The blocks of row `r`.
    pub fn row(&self, r: usize) -> (&[[i8; BLOCK]], &[f32], &[f32]) {
        let range = r * self.blocks..(r + 1) * self.blocks;
        (&self.q[range.clone()], &self.d[range.clone()], &self.s[range])
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
    /// ggml's `quantize_row_q8_K_ref`: the value of largest magnitude maps to -127 (so +128
    /// cannot occur and the clamp only guards rounding), and rounding is to nearest, ties to
    /// even (ggml's `nearest_int`).
    pub fn quantize(&mut self, x: &[f32], k: usize) {
        let blocks = k / SUPER;
        let n = x.len() / SUPER;
        self.blocks = blocks;
        self.q.clear();
        self.q.resize(n, [0; SUPER]);
        self.d.clear();
        self.d.resize(n, 0.0);
        self.bsums.clear();
        self.bsums.resize(n, [0; SUPER / 16]);
        for (((xs, q), d), bsums) in
            arrays::<f32, SUPER>(x).zip(&mut self.q).zip(&mut self.d).zip(&mut self.bsums)
        {
            let (mut max, mut amax) = (0f32, 0f32);
            for &v in xs {
                if v.abs() > amax {
                    amax = v.abs();
                    max = v;
                }
            }
            if amax == 0.0 {
                continue; // zeros already
            }
            let iscale = -127.0 / max;
            for (qv, &v) in q.iter_mut().zip(xs) {
                *qv = (iscale * v).round_ties_even().clamp(-128.0, 127.0) as i8;
            }
            for (s, run) in bsums.iter_mut().zip(q.chunks_exact(16)) {
                *s = run.iter().map(|&v| i16::from(v)).sum();
            }
            *d = 1.0 / iscale;
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
    pub blocks: usize,
    pub rows: usize,
}

impl<Q, S> Default for Tiled<Q, S> {
    fn default() -> Self {
        Tiled { q: Vec::new(), d: Vec::new(), s: Vec::new(), blocks: 0, rows: 0 }
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
    /// Regroups rows of `blocks` blocks (`q`, `d`, `s` hold every row's blocks in order),
    /// reusing the buffers; `zero` fills the rows past the last one.
    fn fill(&mut self, q: &[Q], d: &[f32], s: &[S], blocks: usize, zero: (Q, S)) {
        let rows = d.len().checked_div(blocks).unwrap_or(0);
        let n = rows.div_ceil(TILE) * blocks;
        self.blocks = blocks;
        self.rows = rows;
        self.q.clear();
        self.q.resize(n, [zero.0; TILE]);
        self.d.clear();
        self.d.resize(n, [0.0; TILE]);
        self.s.clear();
        self.s.resize(n, [zero.1; TILE]);
        for (b, ((q, &d), s)) in q.iter().zip(d).zip(s).enumerate() {
            let (r, i) = (b / blocks, b % blocks);
            let (at, slot) = ((r / TILE) * blocks + i, r % TILE);
            self.q[at][slot] = *q;
            self.d[at][slot] = d;
            self.s[at][slot] = *s;
        }
    }

    /// Tile `t`: its blocks, scales and sums.
    pub fn tile(&self, t: usize) -> TileOf<'_, Q, S> {
        let range = t * self.blocks..(t + 1) * self.blocks;
        TileOf { q: &self.q[range.clone()], d: &self.d[range.clone()], s: &self.s[range] }
    }
}

impl Q8Tiles {
    /// Regroups `x`'s rows, reusing the buffers.
    pub fn regroup(&mut self, x: &Q8Rows) {
        self.fill(&x.q, &x.d, &x.s, x.blocks, ([0; BLOCK], 0.0));
    }
}

impl Q8KTiles {
    /// Regroups `x`'s rows, reusing the buffers.
    pub fn regroup(&mut self, x: &Q8KRows) {
        self.fill(&x.q, &x.d, &x.bsums, x.blocks, ([0; SUPER], [0; SUPER / 16]));
    }
}

/// `s` as consecutive fixed-size arrays (a tail shorter than `N` is left out).
pub fn arrays<T, const N: usize>(s: &[T]) -> impl Iterator<Item = &[T; N]> {
    s.chunks_exact(N).filter_map(|c| c.try_into().ok())
}
