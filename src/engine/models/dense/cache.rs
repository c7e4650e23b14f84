//! A layer's KV cache: growing buffers of past keys and values, appended to by a prompt's
//! tensors or, in a decode step, by one position's vectors written in place.

use candle_core::{CpuStorage, DType, Device, InplaceOp1, Layout, Tensor};
use half::slice::HalfFloatSliceExt;

use crate::engine::error::{Error, Result};

/// Keys and values of past positions for one layer, in `(1, n_head_kv, capacity, head_dim)`
/// buffers of `dtype` (f16 or f32, `models::kv_cache_dtype`) that double when full.
pub(super) struct KvCache {
    pub(super) k: Option<Tensor>,
    pub(super) v: Option<Tensor>,
    pub(super) len: usize,
    pub(super) dtype: DType,
}

impl KvCache {
    pub(super) fn new(dtype: DType) -> Self {
        KvCache { k: None, v: None, len: 0, dtype }
    }

    /// Makes room for `need` positions of `h` heads of `d` values (doubling, at most `max`
    /// unless more are needed) and returns the buffers.
    fn reserve(
        &mut self,
        need: usize,
        (h, d): (usize, usize),
        max: usize,
        dev: &Device,
    ) -> Result<(&Tensor, &Tensor)> {
        let cap = self.k.as_ref().map(|c| c.dim(2)).transpose()?.unwrap_or(0);
        if need > cap {
            let new_cap = need.max(cap * 2).max(256).min(max.max(need));
            let grow = |old: &Option<Tensor>| -> Result<Tensor> {
                let fresh = Tensor::zeros((1, h, new_cap, d), self.dtype, dev)?;
                if let Some(old) = old {
                    if self.len > 0 {
                        fresh.slice_set(&old.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                    }
                }
                Ok(fresh)
            };
            self.k = Some(grow(&self.k)?);
            self.v = Some(grow(&self.v)?);
        }
        match (&self.k, &self.v) {
            (Some(kc), Some(vc)) => Ok((kc, vc)),
            _ => Err(Error::Worker("KV cache was not allocated".into())),
        }
    }

    /// Appends `k`, `v` of shape `(1, h, t, d)` and returns views of everything cached (in
    /// the cache's element type).
    pub(super) fn append(
        &mut self,
        k: &Tensor,
        v: &Tensor,
        max: usize,
    ) -> Result<(Tensor, Tensor)> {
        let (_, h, t, d) = k.dims4()?;
        let (need, at, dtype) = (self.len + t, self.len, self.dtype);
        let (kc, vc) = self.reserve(need, (h, d), max, k.device())?;
        kc.slice_set(&k.to_dtype(dtype)?, 2, at)?;
        vc.slice_set(&v.to_dtype(dtype)?, 2, at)?;
        let views = (kc.narrow(2, 0, need)?, vc.narrow(2, 0, need)?);
        self.len = need;
        Ok(views)
    }

    /// Appends one position, `k` and `v` holding `heads` heads of `dim` values each, written
    /// straight into the buffers in main memory: the values `append` would store (the same
    /// f32-to-f16 rounding), without a tensor per value or a copy.
    pub(super) fn append_row(
        &mut self,
        k: &[f32],
        v: &[f32],
        dim: usize,
        max: usize,
    ) -> Result<()> {
        let heads = k.len() / dim.max(1);
        if dim == 0 || k.len() != heads * dim || v.len() != k.len() {
            return Err(Error::Worker(format!("a KV row of {} keys, {} values", k.len(), v.len())));
        }
        let at = self.len;
        let (kc, vc) = self.reserve(at + 1, (heads, dim), max, &Device::Cpu)?;
        kc.inplace_op1(&WriteRow { values: k, at, dim })?;
        vc.inplace_op1(&WriteRow { values: v, at, dim })?;
        self.len = at + 1;
        Ok(())
    }
}

/// Writes one position's values (`dim` per head, heads in order) at position `at` of a
/// contiguous `(1, heads, cap, dim)` buffer.
struct WriteRow<'a> {
    values: &'a [f32],
    at: usize,
    dim: usize,
}

impl InplaceOp1 for WriteRow<'_> {
    fn name(&self) -> &'static str {
        "kv-write-row"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let dims = layout.shape().dims();
        let (Some(start), [1, heads, cap, dim]) = (layout.contiguous_offsets(), dims) else {
            candle_core::bail!("a KV cache buffer of shape {dims:?}, not contiguous (1, h, cap, d)")
        };
        if (*dim, *heads * *dim) != (self.dim, self.values.len()) || self.at >= *cap {
            candle_core::bail!(
                "a KV row of {} values at {} in {dims:?}",
                self.values.len(),
                self.at
            )
        }
        let rows = self.values.chunks_exact(self.dim);
        let at = |h: usize| start.0 + (h * cap + self.at) * dim;
        match storage {
            CpuStorage::F16(buf) => {
                for (h, row) in rows.enumerate() {
                    buf[at(h)..at(h) + dim].convert_from_f32_slice(row);
                }
            }
            CpuStorage::F32(buf) => {
                for (h, row) in rows.enumerate() {
                    buf[at(h)..at(h) + dim].copy_from_slice(row);
                }
            }
            _ => candle_core::bail!("a KV cache neither f16 nor f32"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `append_row` stores what `append` stores, in both element types, across a growth of
    /// the buffers.
    #[test]
    fn a_row_written_in_place_is_the_appended_tensor() {
        let (h, d, dev) = (3, 8, Device::Cpu);
        for dtype in [DType::F16, DType::F32] {
            let (mut a, mut b) = (KvCache::new(dtype), KvCache::new(dtype));
            for pos in 0..300 {
                let k: Vec<f32> =
                    (0..h * d).map(|i| (i * 31 + pos * 7) as f32 / 97.0 - 1.3).collect();
                let v: Vec<f32> = k.iter().map(|x| x * -2.7 + 0.1).collect();
                let kt = Tensor::from_vec(k.clone(), (1, h, 1, d), &dev).unwrap();
                let vt = Tensor::from_vec(v.clone(), (1, h, 1, d), &dev).unwrap();
                a.append(&kt, &vt, 4096).unwrap();
                b.append_row(&k, &v, d, 4096).unwrap();
            }
            assert_eq!(a.len, b.len);
            for (x, y) in [(&a.k, &b.k), (&a.v, &b.v)] {
                let (x, y) = (x.as_ref().unwrap(), y.as_ref().unwrap());
                assert_eq!(x.dims(), y.dims());
                let flat = |t: &Tensor| t.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
                assert_eq!(flat(x).to_vec1::<f32>().unwrap(), flat(y).to_vec1::<f32>().unwrap());
            }
        }
        let mut c = KvCache::new(DType::F16);
        assert!(c.append_row(&[1.0; 5], &[1.0; 5], 2, 16).is_err());
        assert!(c.append_row(&[1.0; 4], &[1.0; 2], 2, 16).is_err());
        assert_eq!(c.len, 0);
    }
}
