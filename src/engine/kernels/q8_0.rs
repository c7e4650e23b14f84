//! `Q8_0` weights (blocks of 32 `i8` with an f16 scale: 34 bytes) against `Q8_0` activations,
//! read straight from the GGUF bytes: `Σ d * dx * Σ w·x`, the integer part over fixed 16-lane
//! arrays that LLVM keeps in vector registers. Depends on `quant`.

use half::f16;

use super::quant::{arrays, BLOCK};

/// Bytes of one `Q8_0` block.
pub const BLOCK_BYTES: usize = 34;

/// Dot product of one weight row (`blocks * 34` bytes) with one quantized activation row.
#[inline]
pub fn dot(w: &[u8], xq: &[[i8; BLOCK]], xd: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    for ((b, x), &dx) in arrays::<u8, BLOCK_BYTES>(w).zip(xq).zip(xd) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        let mut p = [0i32; 16];
        for j in 0..16 {
            let lo = b[2 + j] as i8;
            let hi = b[18 + j] as i8;
            p[j] = i32::from(lo) * i32::from(x[j]) + i32::from(hi) * i32::from(x[j + 16]);
        }
        let scale = d * dx;
        for j in 0..16 {
            acc[j] += scale * p[j] as f32;
        }
    }
    acc.iter().sum()
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
