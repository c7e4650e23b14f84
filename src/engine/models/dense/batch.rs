//! Batched decode for the dense decoder (`Model::fork_sequences`, `forward_sequences`):
//! several sequences that share a prefilled prompt, one forward per step over their last
//! tokens. Norms, projections, RoPE and feed-forward (dense or MoE) run over all rows at once;
//! attention is per sequence, against caches kept side by side in one buffer per layer.

use candle_core::{DType, Tensor};

use super::{Dense, KvCache, Layer};
use crate::engine::error::{Error, Result};
use crate::engine::models::SeqToken;

/// The KV caches of the sequences of a batched decode, for one layer: one `(seqs, n_head_kv,
/// capacity, head_dim)` buffer for keys and one for values, so that a step in which every
/// sequence takes a token at the same position attends for all of them in one batched matmul.
/// Sequence `s` is the contiguous view `narrow(0, s, 1)`, laid out as a `KvCache` buffer.
pub(super) struct SeqCaches {
    k: Tensor,
    v: Tensor,
    /// Positions cached per sequence.
    len: Vec<usize>,
}

impl SeqCaches {
    /// `n` copies of `cache`'s positions, with room to grow.
    fn fork(cache: &KvCache, n: usize, context: usize) -> Result<Self> {
        let (Some(k), Some(v)) = (&cache.k, &cache.v) else {
            return Err(Error::Worker("batched decode before any prefill".into()));
        };
        let (_, h, _, d) = k.dims4()?;
        let len = cache.len;
        let cap = (len * 2).max(len + 256).min(context.max(len + 1));
        let copy = |src: &Tensor| -> Result<Tensor> {
            let buf = Tensor::zeros((n, h, cap, d), src.dtype(), src.device())?;
            let prompt = src.narrow(2, 0, len)?.contiguous()?;
            let all = Tensor::cat(&vec![&prompt; n], 0)?;
            buf.slice_set(&all, 2, 0)?;
            Ok(buf)
        };
        Ok(SeqCaches { k: copy(k)?, v: copy(v)?, len: vec![len; n] })
    }

    /// Makes room for position `pos` in every sequence (doubling, as `KvCache` does).
    fn reserve(&mut self, pos: usize, context: usize) -> Result<()> {
        let (n, h, cap, d) = self.k.dims4()?;
        if pos < cap {
            return Ok(());
        }
        let used = self.len.iter().copied().max().unwrap_or(0);
        let new_cap = (pos + 1).max(cap * 2).min(context.max(pos + 1));
        let grow = |old: &Tensor| -> Result<Tensor> {
            let fresh = Tensor::zeros((n, h, new_cap, d), old.dtype(), old.device())?;
            if used > 0 {
                fresh.slice_set(&old.narrow(2, 0, used)?.contiguous()?, 2, 0)?;
            }
            Ok(fresh)
        };
        self.k = grow(&self.k)?;
        self.v = grow(&self.v)?;
        Ok(())
    }

    /// Writes a lockstep step's keys and values, `(1, heads, n, d)` with row `s` sequence
    /// `s`'s, at position `pos` of every sequence (`reserve` first).
    fn put_lockstep(&mut self, k: &Tensor, v: &Tensor, pos: usize) -> Result<()> {
        // (1, heads, n, d) -> (n, heads, 1, d): the sequences become the batch.
        let dtype = self.k.dtype();
        self.k.slice_set(&k.transpose(0, 2)?.contiguous()?.to_dtype(dtype)?, 2, pos)?;
        self.v.slice_set(&v.transpose(0, 2)?.contiguous()?.to_dtype(dtype)?, 2, pos)?;
        for l in self.len.iter_mut() {
            *l = pos + 1;
        }
        Ok(())
    }

    /// Sequence `s` as a `KvCache` whose buffers are views into the shared ones (appends
    /// within the capacity write through; `reserve` first).
    fn view(&self, s: usize) -> Result<KvCache> {
        let len = *self
            .len
            .get(s)
            .ok_or_else(|| Error::Worker(format!("no sequence {s} in the batch")))?;
        let (k, v) = (self.k.narrow(0, s, 1)?, self.v.narrow(0, s, 1)?);
        Ok(KvCache { k: Some(k), v: Some(v), len, dtype: self.k.dtype() })
    }
}

impl Dense {
    /// Attention of a batched decode step: `x` is `(1, rows, n_embd)`, row `i` the next token
    /// of sequence `rows[i].seq` at `rows[i].pos`. The projections and RoPE run over all rows
    /// at once (the weights are read once). When every sequence takes a token at the same
    /// position (the usual step), attention is one batched matmul over the sequences' caches;
    /// otherwise (some sequences have left) it runs row by row, as `attention` does for one
    /// token.
    fn attention_rows(
        &self,
        layer: &Layer,
        caches: &mut SeqCaches,
        x: &Tensor,
        rows: &[SeqToken],
        (cos, sin): (&Tensor, &Tensor),
    ) -> Result<Tensor> {
        let hp = &self.hp;
        // RoPE over every row at once: the tables hold each row's own position.
        let (q, k, v) = self.qkv(layer, x, cos, sin)?;
        for row in rows {
            let have = caches.len.get(row.seq).copied();
            if have != Some(row.pos) {
                return Err(Error::Worker(format!(
                    "sequence {} caches {have:?} positions, its token is at {}",
                    row.seq, row.pos
                )));
            }
            caches.reserve(row.pos, hp.context_length)?;
        }
        let pos = rows.first().map_or(0, |r| r.pos);
        let lockstep = rows.len() == caches.len.len()
            && rows.iter().enumerate().all(|(i, r)| r.seq == i && r.pos == pos);
        if self.cpu_attention() {
            if let Some(out) = self.cached_rows(caches, &q, &k, &v, rows, lockstep)? {
                return layer.wo.forward(&out);
            }
        }
        if lockstep {
            // (1, heads, n, d) -> (n, heads, 1, d): the sequences become the batch.
            let q = q.transpose(0, 2)?.contiguous()?;
            caches.put_lockstep(&k, &v, pos)?;
            let total = pos + 1;
            let k_all = caches.k.narrow(2, 0, total)?.to_dtype(DType::F32)?;
            let v_all = caches.v.narrow(2, 0, total)?.to_dtype(DType::F32)?;
            let n = rows.len();
            let n_rep = hp.n_head / hp.n_head_kv;
            let q = q.reshape((n, hp.n_head_kv, n_rep, hp.head_dim))?;
            let scale = 1.0 / (hp.head_dim as f64).sqrt();
            let scores = (q.matmul(&k_all.t()?)? * scale)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let out = probs.matmul(&v_all)?; // (n, n_kv, n_rep, d)
            let out = out.reshape((1, n, hp.n_head * hp.head_dim))?;
            return layer.wo.forward(&out);
        }
        let mut outs = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let mut cache = caches.view(row.seq)?;
            let qi = q.narrow(2, i, 1)?.contiguous()?;
            let ki = k.narrow(2, i, 1)?.contiguous()?;
            let vi = v.narrow(2, i, 1)?.contiguous()?;
            outs.push(self.attend(&mut cache, &qi, &ki, &vi, row.pos)?);
            if let Some(l) = caches.len.get_mut(row.seq) {
                *l = cache.len;
            }
        }
        let out = Tensor::cat(&outs, 1)?;
        layer.wo.forward(&out)
    }

    /// `attention_rows` on the CPU: each row's key and value go into its sequence's cache
    /// (all at once when in lockstep), then every row attends in one `cached_attention` call,
    /// the kernel a lone decode uses. `None` where the caches are not CPU buffers.
    fn cached_rows(
        &self,
        caches: &mut SeqCaches,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        rows: &[SeqToken],
        lockstep: bool,
    ) -> Result<Option<Tensor>> {
        let hp = &self.hp;
        if lockstep {
            caches.put_lockstep(k, v, rows.first().map_or(0, |r| r.pos))?;
        } else {
            for (i, row) in rows.iter().enumerate() {
                let mut cache = caches.view(row.seq)?;
                let ki = k.narrow(2, i, 1)?.contiguous()?;
                let vi = v.narrow(2, i, 1)?.contiguous()?;
                cache.append(&ki, &vi, hp.context_length)?;
                if let Some(l) = caches.len.get_mut(row.seq) {
                    *l = cache.len;
                }
            }
        }
        let (_, h, cap, d) = caches.k.dims4()?;
        let seqs: Vec<(usize, usize)> = rows
            .iter()
            .map(|r| (r.seq * h * cap * d, caches.len.get(r.seq).copied().unwrap_or(0)))
            .collect();
        // (1, heads, rows, d) -> rows of (heads, d).
        let q = q.transpose(1, 2)?.flatten_all()?.to_vec1::<f32>()?;
        self.cached_attention(&q, (&caches.k, &caches.v), &seqs, cap)
    }

    pub(super) fn fork_seqs(&mut self, n: usize) -> Result<()> {
        let context = self.hp.context_length;
        self.seqs = self
            .layers
            .iter()
            .map(|l| SeqCaches::fork(&l.cache, n, context))
            .collect::<Result<_>>()?;
        Ok(())
    }

    pub(super) fn forward_seqs(&mut self, rows: &[SeqToken]) -> Result<Vec<Vec<f32>>> {
        if rows.is_empty() {
            return Err(Error::Worker("forward_sequences called with no rows".into()));
        }
        let t = rows.len();
        let tokens: Vec<u32> = rows.iter().map(|r| r.token).collect();
        let mut cos = Vec::with_capacity(t);
        let mut sin = Vec::with_capacity(t);
        for r in rows {
            let (c, s) = self.rope.tables(r.pos, 1, &self.device)?;
            cos.push(c);
            sin.push(s);
        }
        let (cos, sin) = (Tensor::cat(&cos, 0)?, Tensor::cat(&sin, 0)?);
        // The rows go through the model as the tokens of one sequence would (norms, matmuls
        // and experts work row by row); only attention tells the sequences apart.
        let mut x = self.embed(&tokens)?;
        let eps = self.hp.rms_eps as f32;
        let mut layers = std::mem::take(&mut self.layers);
        let mut seqs = std::mem::take(&mut self.seqs);
        let mut probe = std::mem::take(&mut self.probe);
        probe.begin(t, self.hp.gating.is_some());
        let result = (|| -> Result<Tensor> {
            for (li, layer) in layers.iter_mut().enumerate() {
                let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, eps)?;
                let attn = match seqs.get_mut(li) {
                    Some(caches) => self.attention_rows(layer, caches, &h, rows, (&cos, &sin))?,
                    None => return Err(Error::Worker("no sequences were forked".into())),
                };
                x = (x + attn)?;
                let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, eps)?;
                let y = layer.ffn.forward(&mut probe, &h)?;
                x = (&x + y)?;
            }
            Ok(x.clone())
        })();
        self.layers = layers;
        self.seqs = seqs;
        self.probe = probe;
        let x = result?;
        let h = candle_nn::ops::rms_norm(&x.contiguous()?, &self.output_norm, eps)?;
        let logits = self.output.forward(&h)?;
        Ok(logits.squeeze(0)?.to_dtype(DType::F32)?.to_vec2::<f32>()?)
    }
}
