//! The answer-now probe: replays a recorded run's tokens once and, at each requested
//! boundary, branches the KV cache, feeds an answer suffix (`</think>` and an answer prefix
//! such as "\n\nThe final answer is"), greedy-decodes a short answer with its probability,
//! then truncates the cache back to the boundary and goes on. One prefix pass for the whole
//! run, plus one short branch per boundary. Depends on the rest of `engine` and `trace`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::error::{Error, Result};
use super::generate::Prompt;
use super::tokenizer::StreamDecoder;
use super::Engine;

/// What to probe.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeRequest {
    pub prompt: Prompt,
    /// The run's generated tokens (the prefix replayed).
    pub tokens: Vec<u32>,
    /// Step indices (increasing, at most `tokens.len()`) before which the model is asked.
    pub boundaries: Vec<usize>,
    /// Text fed at each boundary before the answer is decoded.
    pub suffix: String,
    /// Most answer tokens decoded per boundary.
    pub max_tokens: usize,
}

/// The answer at one boundary.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeAnswer {
    /// The step before which it was asked.
    pub at: usize,
    pub tokens: Vec<u32>,
    pub text: String,
    /// Sum of the greedy tokens' log-probabilities (the answer's probability is its exp).
    pub logprob: f64,
    /// Time of the branch: the suffix, the decode and the truncation (µs).
    pub us: u64,
}

/// Every boundary's answer and what the replay cost.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOutcome {
    pub answers: Vec<ProbeAnswer>,
    /// Prompt prefill (µs).
    pub prefill_us: u64,
    /// Replaying the run's tokens between boundaries, in all (µs).
    pub replay_us: u64,
}

/// `ln softmax(logits)[i]`.
fn log_softmax_at(logits: &[f32], i: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|l| f64::from(l - max).exp()).sum();
    logits.get(i).map_or(f64::NEG_INFINITY, |l| f64::from(l - max) - sum.ln())
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = (0usize, f32::NEG_INFINITY);
    for (i, l) in logits.iter().enumerate() {
        if *l > best.1 {
            best = (i, *l);
        }
    }
    best.0 as u32
}

impl Engine {
    /// Runs the probe (see the module doc). `progress(done, total)` is called after each
    /// boundary; `cancel` stops between boundaries with the answers so far.
    pub fn probe(
        &mut self,
        req: &ProbeRequest,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<ProbeOutcome> {
        if req.boundaries.windows(2).any(|w| w[0] > w[1])
            || req.boundaries.last().is_some_and(|b| *b > req.tokens.len())
        {
            return Err(Error::Sampler(
                "probe boundaries must be increasing and inside the run".into(),
            ));
        }
        let (_, prompt_ids) = self.prepare(&req.prompt)?;
        let suffix = self.tokenizer.encode(&req.suffix)?;
        let context = self.model.context_length();
        let need = prompt_ids.len() + req.tokens.len() + suffix.len() + req.max_tokens;
        if need > context {
            return Err(Error::PromptTooLong { prompt: need, context });
        }
        let vocab = self.tokenizer.vocab_size().max(self.model.vocab_size());
        if let Some(bad) = req.tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::Sampler(format!(
                "token id {bad} of the run is outside the vocabulary ({vocab} tokens)"
            )));
        }
        let start = Instant::now();
        self.model.set_routing_detail(crate::trace::RoutingDetail::Off);
        let (mut last, _) = self.prefill_prompt(&prompt_ids)?;
        let prefill_us = start.elapsed().as_micros() as u64;
        let mut pos = prompt_ids.len();
        let mut done = 0usize;
        let mut replay_us = 0u64;
        let mut answers = Vec::with_capacity(req.boundaries.len());
        let stops = self.tokenizer.stop_ids().to_vec();
        for (n, &b) in req.boundaries.iter().enumerate() {
            if cancel.load(Ordering::Relaxed) {
                break;
            }
            if b > done {
                let t = Instant::now();
                last = self.model.forward(&req.tokens[done..b], pos)?;
                replay_us += t.elapsed().as_micros() as u64;
                pos += b - done;
                done = b;
            }
            let t = Instant::now();
            let base = pos;
            let mut logits =
                if suffix.is_empty() { last.clone() } else { self.model.forward(&suffix, base)? };
            let first = base + suffix.len();
            let mut decoder = StreamDecoder::new();
            let (mut tokens, mut text, mut logprob) = (Vec::new(), String::new(), 0.0f64);
            for at in first..first + req.max_tokens {
                let tok = argmax(&logits);
                if stops.contains(&tok) {
                    break;
                }
                logprob += log_softmax_at(&logits, tok as usize);
                tokens.push(tok);
                text.push_str(&decoder.push(self.tokenizer.token_bytes(tok)));
                // A short answer ends with its line.
                if text.trim_start().contains('\n') || tokens.len() == req.max_tokens {
                    break;
                }
                logits = self.model.forward(&[tok], at)?;
            }
            text.push_str(&decoder.finish());
            self.model.truncate_cache(base);
            answers.push(ProbeAnswer {
                at: b,
                tokens,
                text,
                logprob,
                us: t.elapsed().as_micros() as u64,
            });
            progress(n + 1, req.boundaries.len());
        }
        Ok(ProbeOutcome { answers, prefill_us, replay_us })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_and_argmax() {
        let l = [1.0f32, 3.0, 2.0];
        assert_eq!(argmax(&l), 1);
        let z: f64 = l.iter().map(|x| f64::from(*x).exp()).sum();
        assert!((log_softmax_at(&l, 2) - (2f64.exp() / z).ln()).abs() < 1e-9);
    }
}
