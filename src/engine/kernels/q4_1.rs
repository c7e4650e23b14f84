//! `Q4_1` weights (blocks of 32 four-bit values with an f16 scale `d` and minimum `m`: 20
//! bytes) against `Q8_1` activations, read straight from the GGUF bytes. A block's dot product
//! is `d * dx * Σ q·x + m * s`; the integer part is written as an unsigned-by-signed byte
//! sum that LLVM vectorizes into VNNI dot instructions. Depends on `quant`.

use half::f16;

use super::quant::{arrays, BLOCK};

/// Bytes of one `Q4_1` block.
pub const BLOCK_BYTES: usize = 20;

/// Dot product of one weight row (`blocks * 20` bytes) with one quantized activation row.
///
/// The nibbles are unpacked into a `[u8; 32]` and multiplied with the `i8` activations in a
/// sum LLVM turns into one `vpdpbusd` (AVX-VNNI) or `vpmaddubsw` (AVX2) per block.
#[inline]
pub fn dot(w: &[u8], xq: &[[i8; BLOCK]], xd: &[f32], xs: &[f32]) -> f32 {
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
