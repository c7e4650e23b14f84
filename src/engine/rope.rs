//! Rotary position embeddings computed in f32 (f64 on the host, then rounded), for any
//! position the context allows.
//!
//! candle's own model files build their tables in f16 (exact only up to position 2048) or stop
//! at 4096 positions; here the angles for the positions of each forward call are computed on
//! the fly from the inverse frequencies, which include Llama-3.1's `rope_freqs` factors and
//! linear scaling. Depends on candle only.

use candle_core::{Device, Tensor};

use super::error::Result;

/// How pairs of dimensions are rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs (x0, x1), (x2, x3), ...: llama.cpp's NORM type, used by `llama` GGUFs.
    Interleaved,
    /// Halves (x0, x_{d/2}), ...: llama.cpp's NEOX type, used by Qwen.
    Neox,
}

/// Inverse frequencies and style of a model's rotary embedding.
#[derive(Debug, Clone)]
pub struct Rope {
    pub style: RopeStyle,
    /// Number of rotated dimensions per head (a prefix of the head when smaller than it).
    pub dims: usize,
    inv_freq: Vec<f64>,
}

impl Rope {
    /// `freq_factors` are Llama-3.1's per-pair divisors (`rope_freqs.weight`); `linear_factor`
    /// is the context-extension factor of linear scaling (1 for none).
    pub fn new(
        style: RopeStyle,
        dims: usize,
        base: f64,
        freq_factors: Option<&[f32]>,
        linear_factor: f64,
    ) -> Self {
        let inv_freq = (0..dims / 2)
            .map(|i| {
                let mut f = base.powf(-2.0 * i as f64 / dims as f64) / linear_factor;
                if let Some(ff) = freq_factors.and_then(|ff| ff.get(i)) {
                    f /= *ff as f64;
                }
                f
            })
            .collect();
        Rope { style, dims, inv_freq }
    }

    /// YaRN (llama.cpp's `rope_yarn` with ext_factor 1, beta_fast 32, beta_slow 1): each
    /// frequency mixes the interpolated (`/factor`) and the original one by a ramp over the
    /// dimension index between the correction dimensions of `orig_ctx`. The magnitude factor
    /// is left to the caller (DeepSeek folds it into the attention scale).
    pub fn yarn(style: RopeStyle, dims: usize, base: f64, factor: f64, orig_ctx: usize) -> Self {
        let corr = |beta: f64| {
            dims as f64 * (orig_ctx as f64 / (beta * 2.0 * std::f64::consts::PI)).ln()
                / (2.0 * base.ln())
        };
        let low = corr(32.0).floor().max(0.0);
        let high = corr(1.0).ceil().min(dims as f64 - 1.0);
        let inv_freq = (0..dims / 2)
            .map(|i| {
                let extra = base.powf(-2.0 * i as f64 / dims as f64);
                let inter = extra / factor;
                let ramp = 1.0 - ((i as f64 - low) / (high - low).max(0.001)).clamp(0.0, 1.0);
                inter * (1.0 - ramp) + extra * ramp
            })
            .collect();
        Rope { style, dims, inv_freq }
    }

    /// cos and sin tables of shape `(len, dims/2)` for positions `start..start+len`.
    pub fn tables(&self, start: usize, len: usize, device: &Device) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for p in start..start + len {
            let (c, s) = self.row(p);
            cos.extend(c);
            sin.extend(s);
        }
        Ok((
            Tensor::from_vec(cos, (len, half), device)?,
            Tensor::from_vec(sin, (len, half), device)?,
        ))
    }

    /// cos and sin of position `pos`'s angles, `dims/2` each (a row of `tables`).
    pub fn row(&self, pos: usize) -> (Vec<f32>, Vec<f32>) {
        self.inv_freq
            .iter()
            .map(|f| {
                let a = pos as f64 * f;
                (a.cos() as f32, a.sin() as f32)
            })
            .unzip()
    }

    /// Rotates one head `x` in place by a `row` (the first `dims` values; the rest stay), with
    /// the arithmetic of candle's `rope_i` and `rope` that `apply` runs, so the two agree bit
    /// for bit.
    pub fn rotate(&self, x: &mut [f32], cos: &[f32], sin: &[f32]) {
        let half = self.dims / 2;
        let pair = |x: &mut [f32], i1: usize, i2: usize, c: f32, s: f32| {
            let (a, b) = (x[i1], x[i2]);
            x[i1] = a * c - b * s;
            x[i2] = a * s + b * c;
        };
        for (i, (&c, &s)) in cos.iter().zip(sin).enumerate().take(half) {
            match self.style {
                RopeStyle::Interleaved => pair(x, 2 * i, 2 * i + 1, c, s),
                RopeStyle::Neox => pair(x, i, i + half, c, s),
            }
        }
    }

    /// Rotates `x` of shape `(batch, heads, len, head_dim)` (contiguous) with the given tables.
    pub fn apply(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let head_dim = x.dim(3)?;
        let rotate = |t: &Tensor| match self.style {
            RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(t, cos, sin),
            RopeStyle::Neox => candle_nn::rotary_emb::rope(t, cos, sin),
        };
        if self.dims == head_dim {
            return Ok(rotate(x)?);
        }
        let rotated = rotate(&x.narrow(3, 0, self.dims)?.contiguous()?)?;
        let rest = x.narrow(3, self.dims, head_dim - self.dims)?;
        Ok(Tensor::cat(&[&rotated, &rest], 3)?.contiguous()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rotating by position p then reading the angle back: a pair (1, 0) at position p becomes
    /// (cos pθ, sin pθ) in both styles, at any position (f16 tables fail this past 2048).
    #[test]
    fn rotation_angles_are_exact_at_long_positions() {
        let dev = Device::Cpu;
        for style in [RopeStyle::Interleaved, RopeStyle::Neox] {
            let rope = Rope::new(style, 4, 10_000.0, None, 1.0);
            // x0 = 1 is paired with x1 (interleaved) or x2 (NEOX).
            let x = vec![1f32, 0.0, 0.0, 0.0];
            let xt = Tensor::from_vec(x, (1, 1, 1, 4), &dev).unwrap();
            let pos = 70_001;
            let (c, s) = rope.tables(pos, 1, &dev).unwrap();
            let y: Vec<f32> =
                rope.apply(&xt, &c, &s).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let want = (pos as f64).cos() as f32;
            let got_sin = match style {
                RopeStyle::Interleaved => y[1],
                RopeStyle::Neox => y[2],
            };
            assert!((y[0] - want).abs() < 1e-5, "{style:?} {y:?}");
            assert!((got_sin - (pos as f64).sin() as f32).abs() < 1e-5, "{style:?} {y:?}");
        }
    }

    /// `rotate` on one head is `apply` on it, bit for bit, in both styles and with a rotated
    /// prefix shorter than the head.
    #[test]
    fn rotating_a_head_in_place_is_apply() {
        let dev = Device::Cpu;
        for (style, dims) in
            [(RopeStyle::Interleaved, 8), (RopeStyle::Neox, 8), (RopeStyle::Neox, 4)]
        {
            let rope = Rope::new(style, dims, 10_000.0, None, 1.0);
            let x: Vec<f32> = (0..8).map(|i| (i as f32 * 0.7).sin() * 3.0).collect();
            let pos = 1234;
            let (c, s) = rope.tables(pos, 1, &dev).unwrap();
            let xt = Tensor::from_vec(x.clone(), (1, 1, 1, 8), &dev).unwrap();
            let want: Vec<f32> =
                rope.apply(&xt, &c, &s).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let (c, s) = rope.row(pos);
            let mut got = x.clone();
            rope.rotate(&mut got, &c, &s);
            assert_eq!(got, want, "{style:?} {dims}");
            assert_ne!(got, x);
        }
    }

    #[test]
    fn frequency_factors_divide_the_frequencies() {
        let plain = Rope::new(RopeStyle::Neox, 4, 100.0, None, 1.0);
        let scaled = Rope::new(RopeStyle::Neox, 4, 100.0, Some(&[1.0, 8.0]), 1.0);
        assert_eq!(plain.inv_freq[0], scaled.inv_freq[0]);
        assert!((plain.inv_freq[1] / 8.0 - scaled.inv_freq[1]).abs() < 1e-15);
        let linear = Rope::new(RopeStyle::Neox, 4, 100.0, None, 4.0);
        assert!((plain.inv_freq[1] / 4.0 - linear.inv_freq[1]).abs() < 1e-15);
    }
}
