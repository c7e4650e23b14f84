//! The logit lens: for the token at a step of a recorded run, what every block's residual
//! stream predicts — the residual after each block through the final norm and the output
//! head, its top tokens and the rank and log-probability of the token finally chosen. The
//! replayed prefix stays in the KV cache (`LensState`), so a neighbouring step costs one
//! token's forward pass (the cache is truncated to go back). Depends on the rest of `engine`.

use super::error::{Error, Result};
use super::generate::Prompt;
use super::Engine;

/// One block's prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct LensLayer {
    pub layer: usize,
    /// The most likely tokens: (id, display text, log-probability).
    pub top: Vec<(u32, String, f32)>,
    /// 1-based rank of the chosen token in this block's distribution.
    pub chosen_rank: usize,
    pub chosen_logprob: f32,
}

/// A run's prompt and tokens replayed for the lens, and how much of them the cache holds.
#[derive(Debug, Clone)]
pub struct LensState {
    seq: Vec<u32>,
    prompt_len: usize,
    filled: usize,
}

impl LensState {
    /// Generated tokens (steps) the state covers.
    pub fn steps(&self) -> usize {
        self.seq.len() - self.prompt_len
    }
}

/// `ln softmax(logits)` computed in f64.
fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = logits.iter().map(|l| f64::from(l - max).exp()).sum::<f64>().ln();
    logits.iter().map(|l| (f64::from(l - max) - lse) as f32).collect()
}

impl Engine {
    /// Starts a lens over a run: its prompt and generated tokens. Nothing is computed yet.
    pub fn lens_begin(&mut self, prompt: &Prompt, tokens: &[u32]) -> Result<LensState> {
        let (_, prompt_ids) = self.prepare(prompt)?;
        if prompt_ids.is_empty() {
            return Err(Error::Template("the prompt is empty".into()));
        }
        let mut seq = prompt_ids.clone();
        seq.extend_from_slice(tokens);
        if seq.len() > self.model.context_length() {
            return Err(Error::PromptTooLong {
                prompt: seq.len(),
                context: self.model.context_length(),
            });
        }
        self.model.truncate_cache(0);
        self.model.set_routing_detail(crate::trace::RoutingDetail::Off);
        Ok(LensState { seq, prompt_len: prompt_ids.len(), filled: 0 })
    }

    /// The lens at generated step `step`: each block's prediction of that step's token, with
    /// `top` tokens each.
    pub fn lens_at(
        &mut self,
        st: &mut LensState,
        step: usize,
        top: usize,
    ) -> Result<Vec<LensLayer>> {
        if step >= st.steps() {
            return Err(Error::Sampler(format!(
                "the run has {} steps; there is no step {step}",
                st.steps()
            )));
        }
        // The position whose output predicts `step`.
        let p = st.prompt_len + step - 1;
        if st.filled > p {
            self.model.truncate_cache(p);
            st.filled = p;
        } else if st.filled < p {
            self.model.capture_residuals(false);
            self.model.forward(&st.seq[st.filled..p], st.filled)?;
            st.filled = p;
        }
        self.model.capture_residuals(true);
        let out = self.model.forward(&st.seq[p..p + 1], p);
        let rows = self.model.take_residuals();
        self.model.capture_residuals(false);
        out?;
        st.filled = p + 1;
        let chosen = st.seq[p + 1] as usize;
        let mut layers = Vec::with_capacity(rows.len());
        for (layer, row) in rows.iter().enumerate() {
            let lp = log_softmax(&self.model.lens_logits(row)?);
            let chosen_logprob = lp.get(chosen).copied().unwrap_or(f32::NEG_INFINITY);
            let chosen_rank = 1 + lp.iter().filter(|l| **l > chosen_logprob).count();
            let mut idx: Vec<usize> = (0..lp.len()).collect();
            let k = top.min(idx.len());
            if k > 0 {
                idx.select_nth_unstable_by(k - 1, |a, b| lp[*b].total_cmp(&lp[*a]));
                idx.truncate(k);
                idx.sort_by(|a, b| lp[*b].total_cmp(&lp[*a]).then(a.cmp(b)));
            } else {
                idx.clear();
            }
            let top = idx
                .into_iter()
                .map(|i| (i as u32, self.tokenizer.token_display(i as u32).to_string(), lp[i]))
                .collect();
            layers.push(LensLayer { layer, top, chosen_rank, chosen_logprob });
        }
        Ok(layers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_sums_to_one() {
        let lp = log_softmax(&[0.5, 2.0, -1.0]);
        let s: f64 = lp.iter().map(|l| f64::from(*l).exp()).sum();
        assert!((s - 1.0).abs() < 1e-6);
        assert!(lp[1] > lp[0] && lp[0] > lp[2]);
    }
}
