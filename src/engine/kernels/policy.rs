//! When a matrix uses this module's kernels rather than candle's: the environment's choice
//! (`THINKDBG_KERNELS`), and past `BATCH_ROWS` rows, whether candle has a tiled matmul for
//! the matrix. Depends on `Kind` only.

use super::{quant, Kind};

/// Whether the kernels are used: `THINKDBG_KERNELS=candle` or `=ours` decide (for A/B runs and
/// CI; `ours` takes both types at every size); otherwise optimised builds use them and debug
/// builds don't (candle's code is optimised even there, see Cargo.toml's profiles), so
/// unoptimised tests stay fast. CI runs the engine tests once more with `THINKDBG_KERNELS=ours`.
pub(super) fn policy() -> Policy {
    match std::env::var("THINKDBG_KERNELS").as_deref() {
        Ok("candle") => Policy::Never,
        Ok("ours") => Policy::Always,
        _ if cfg!(debug_assertions) => Policy::Never,
        _ => Policy::Default,
    }
}

/// When a matrix uses this module's kernel rather than candle's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Policy {
    Never,
    Always,
    /// `Q4_1` and `Q5_0` always (candle has no SIMD path for them). `Q8_0`, `Q4_K` and `Q6_K`
    /// up to `BATCH_ROWS` rows: a decode and a batched decode (bit-identical row for row, so a
    /// sample decoded in a batch gives the tokens it gives alone; candle's kernels are not);
    /// above that, a prefill, candle's tiled VNNI matmuls are faster where the CPU has
    /// AVX-512 VNNI (`bench decode --synth qwen3moe:qwen3moe-mid`, 2 threads, `Q8_0`: prefill
    /// 420 against 289 tok/s), where candle tiles the matrix (`candle_tiles`).
    Default,
}

/// Whether candle 0.11 repacks an `(out, in)` matrix of `kind` into its tiles for a matmul of
/// many rows (its `repack_x86::select`): on x86, rows of whole superblocks in tiles of 16
/// weight rows, and for `Q8_0` a CPU with VNNI. Otherwise its matmul is a dot product per
/// activation row and weight row, with no tiling, which this module's tiled kernels beat (a
/// `Q8_0` `attn_v` of 576 columns in the demo model's `Q4_K_M` file). Elsewhere candle's
/// matmul is taken as before.
pub(super) fn candle_tiles(kind: Kind, out: usize, inp: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let cpu = match kind {
            Kind::Q8_0 => {
                (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni"))
                    || (is_x86_feature_detected!("avxvnni") && is_x86_feature_detected!("avx2"))
            }
            _ => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
        };
        cpu && inp % quant::SUPER == 0 && out % 16 == 0
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (kind, out, inp);
        true
    }
}
