//! `Q8_0` weights (blocks of 32 `i8` with an f16 scale: 34 bytes) against `Q8_0` activations,
//! read straight from the GGUF bytes: `Σ d * dx * Σ w·x`, the integer part as an
//! unsigned-by-signed byte sum that LLVM vectorizes into VNNI dot instructions. Depends on `quant`.

use half::f16;

use super::quant::{arrays, Q8Rows, BLOCK};

/// Bytes of one `Q8_0` block.
pub const BLOCK_BYTES: usize = 34;

/// Dot product of one weight row (`blocks * 34` bytes) with one quantized activation row.
///
/// `w·x = |w|·(sign(w) x)`: the magnitudes are unsigned, so the sum has the unsigned-by-signed
/// form LLVM turns into `vpdpbusd` (AVX-VNNI) or `vpmaddubsw` (AVX2), as ggml's own x86 code
/// does with `vpsignb`. Activations are in [-127, 127], so negating them cannot overflow.
#[inline]
pub fn dot(w: &[u8], xq: &[[i8; BLOCK]], xd: &[f32]) -> f32 {
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

/// Dot products of one weight row with every row of `xq` (`out` has one value per row), the
/// block's magnitudes and signs taken once for all rows. Every row's result is bit-identical
/// to `dot` on that row (same operations, same order).
#[inline]
pub fn dot_rows(w: &[u8], xq: &Q8Rows, out: &mut [f32]) {
    let blocks = xq.blocks;
    let rows = out.len();
    for a in out.iter_mut() {
        *a = 0.0;
    }
    for (i, b) in arrays::<u8, BLOCK_BYTES>(w).enumerate().take(blocks) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        let mut u = [0u8; BLOCK];
        let mut neg = [false; BLOCK];
        for j in 0..BLOCK {
            let v = b[2 + j] as i8;
            u[j] = v.unsigned_abs();
            neg[j] = v < 0;
        }
        for (r, acc) in out.iter_mut().enumerate().take(rows) {
            let at = r * blocks + i;
            let x = &xq.q[at];
            let mut y = [0i8; BLOCK];
            for j in 0..BLOCK {
                y[j] = if neg[j] { x[j].wrapping_neg() } else { x[j] };
            }
            let mut sum = 0i32;
            for j in 0..BLOCK {
                sum += i32::from(u[j]) * i32::from(y[j]);
            }
            *acc += d * xq.d[at] * sum as f32;
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
