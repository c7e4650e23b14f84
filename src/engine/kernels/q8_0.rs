//! `Q8_0` weights (blocks of 32 `i8` with an f16 scale: 34 bytes) against `Q8_0` activations,
//! read straight from the GGUF bytes: `Σ d * dx * Σ w·x`, with the kernels of `signed`.
//! Depends on `quant` and `signed`.

use half::f16;

use super::quant::{Q8Rows, Q8Tiles, BLOCK};
use super::signed::{self, Format};

/// Bytes of one `Q8_0` block.
pub const BLOCK_BYTES: usize = 34;

/// The `Q8_0` block format.
pub struct Q8_0;

impl Format<BLOCK_BYTES> for Q8_0 {
    #[inline(always)]
    fn unpack(b: &[u8; BLOCK_BYTES]) -> (f32, [i8; BLOCK]) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        let mut q = [0i8; BLOCK];
        for (q, &v) in q.iter_mut().zip(&b[2..]) {
            *q = v as i8;
        }
        (d, q)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn unpack_avx2(_: pulp::x86::V3, b: &[u8; BLOCK_BYTES]) -> (f32, std::arch::x86_64::__m256i) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        let mut q = [0u8; BLOCK];
        q.copy_from_slice(&b[2..]);
        (d, pulp::cast(q))
    }
}

/// Dot product of one weight row (`blocks * 34` bytes) with one quantized activation row.
#[inline]
pub fn dot(w: &[u8], xq: &[[i8; BLOCK]], xd: &[f32]) -> f32 {
    signed::dot::<BLOCK_BYTES, Q8_0>(w, xq, xd)
}

/// The portable dot product (what CPUs without AVX2 run).
#[inline]
pub fn dot_portable(w: &[u8], xq: &[[i8; BLOCK]], xd: &[f32]) -> f32 {
    signed::dot_portable::<BLOCK_BYTES, Q8_0>(w, xq, xd)
}

/// Dot products of one weight row with every activation row, each bit-identical to `dot`.
#[inline]
pub fn dot_rows(w: &[u8], xq: &Q8Rows, tiles: &Q8Tiles, first: usize, out: &mut [f32]) {
    signed::dot_rows::<BLOCK_BYTES, Q8_0>(w, xq, tiles, first, out)
}

/// The weights of one block as floats (for tests and checks).
pub fn dequantize_block(b: &[u8; BLOCK_BYTES]) -> [f32; BLOCK] {
    let (d, q) = Q8_0::unpack(b);
    q.map(|q| d * f32::from(q))
}
