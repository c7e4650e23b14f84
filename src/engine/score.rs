//! Teacher-forced scoring: a model's view of a given text. The prompt is rendered with the
//! model's chat template, the text is turned into the model's tokens (a run's own ids, its
//! token texts looked up in the vocabulary, or the model's tokenization with each token mapped
//! back to the text's steps), and the whole sequence is prefilled in chunks; the logits after
//! every position give each forced token's logprob, entropy, top-k and rank, exactly as if the
//! model had generated it, and MoE routing comes from the same prefill. Depends on `trace`,
//! `record` and the rest of `engine`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::error::{Error, Result};
use super::generate::{PhaseTracker, Prompt, RunSummary};
use super::sampler::RawStats;
use super::tokenizer::StreamDecoder;
use super::Engine;
use crate::record::{Event, Recorder, ScoredTokens};
use crate::trace::{Phase, Routing, RoutingDetail, Step, StopReason, Timings, UNKNOWN_TOKEN};

/// Tokens prefilled per forward pass when the caller does not say.
pub const DEFAULT_CHUNK: usize = 256;

/// One step of the text to score: a recorded step's token id (`UNKNOWN_TOKEN` when the source
/// gave none), its text and its phase.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreInput {
    pub token_id: u32,
    pub text: String,
    pub phase: Phase,
}

/// What to score.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRequest {
    pub prompt: Prompt,
    pub steps: Vec<ScoreInput>,
    /// The fingerprint of the model that produced `steps` (empty when unknown): the steps'
    /// token ids are used only when it is this model's.
    pub fingerprint: String,
    pub top_logprobs: usize,
    pub routing: RoutingDetail,
    /// Tokens per forward pass (`DEFAULT_CHUNK` when 0).
    pub chunk: usize,
    /// How the scored text ended (the stop reason the scored run reports).
    pub stop: StopReason,
}

/// The token sequence a score will force, decided before it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ScorePlan {
    pub rendered_prompt: String,
    pub prompt_ids: Vec<u32>,
    pub ids: Vec<u32>,
    pub tokens: ScoredTokens,
    /// For each forced token, the input step it lines up with; empty when one for one.
    pub parent_steps: Vec<u32>,
    pub initial: Phase,
}

const OPEN_TAG: &str = "<think>\n";
const CLOSE_TAG: &str = "\n</think>\n\n";

/// The text to force as pieces, each from an input step (`Some(i)`) or inserted (`None`): the
/// `<think>`/`</think>` tags the model's template expects around reasoning that was recorded
/// without them (a server's `reasoning_content`).
fn pieces(steps: &[ScoreInput], prompt_opens_think: bool) -> Vec<(String, Option<u32>)> {
    let tagged = steps.iter().any(|s| s.text.contains("<think>") || s.text.contains("</think>"));
    let first_think = steps.iter().position(|s| s.phase == Phase::Think);
    let mut out = Vec::with_capacity(steps.len() + 2);
    let mut in_think = false;
    for (i, s) in steps.iter().enumerate() {
        if !tagged && first_think == Some(i) {
            if !prompt_opens_think {
                out.push((OPEN_TAG.to_string(), None));
            }
            in_think = true;
        }
        if !tagged && in_think && s.phase == Phase::Answer {
            out.push((CLOSE_TAG.to_string(), None));
            in_think = false;
        }
        out.push((s.text.clone(), Some(i as u32)));
    }
    out
}

impl Engine {
    /// Decides the token sequence of a score: the steps' own ids when they come from this
    /// model's vocabulary (same fingerprint); else each step's text looked up as one token of
    /// this vocabulary when every step is one; else this model's tokenization of the text.
    pub fn plan_score(&self, req: &ScoreRequest) -> Result<ScorePlan> {
        let (rendered_prompt, prompt_ids) = self.prepare(&req.prompt)?;
        if prompt_ids.is_empty() {
            return Err(Error::Template("the prompt is empty".into()));
        }
        if req.steps.is_empty() {
            return Err(Error::Sampler("the run to score has no steps".into()));
        }
        let opens = super::template::prompt_opens_think(&rendered_prompt);
        let initial = if opens { Phase::Think } else { Phase::Answer };
        let vocab = self.tokenizer.vocab_size().max(self.model.vocab_size());
        let same_model = !req.fingerprint.is_empty() && req.fingerprint == self.info.fingerprint;
        if same_model && req.steps.iter().all(|s| (s.token_id as usize) < vocab) {
            return Ok(ScorePlan {
                rendered_prompt,
                prompt_ids,
                ids: req.steps.iter().map(|s| s.token_id).collect(),
                tokens: ScoredTokens::ParentIds,
                parent_steps: Vec::new(),
                initial,
            });
        }
        let pieces = pieces(&req.steps, opens);
        let inserted = pieces.iter().any(|(_, from)| from.is_none());
        // Every step's text one token of this vocabulary (a server trace of the same model).
        let mut by_bytes: HashMap<&[u8], u32> = HashMap::new();
        for id in (0..self.tokenizer.vocab_size() as u32).rev() {
            let b = self.tokenizer.token_bytes(id);
            if !b.is_empty() {
                by_bytes.insert(b, id);
            }
        }
        let mut ids = Vec::new();
        let mut from = Vec::new();
        let mut one_each = true;
        for (k, (text, step)) in pieces.iter().enumerate() {
            match (step, by_bytes.get(text.as_bytes())) {
                (Some(i), Some(&id)) => {
                    ids.push(id);
                    from.push(*i);
                }
                (None, _) => {
                    let at = owner(&pieces, k);
                    for id in self.tokenizer.encode(text)? {
                        ids.push(id);
                        from.push(at);
                    }
                }
                (Some(_), None) => {
                    one_each = false;
                    break;
                }
            }
        }
        if one_each {
            return Ok(ScorePlan {
                rendered_prompt,
                prompt_ids,
                ids,
                tokens: ScoredTokens::TokenTexts,
                parent_steps: if inserted { from } else { Vec::new() },
                initial,
            });
        }
        // This model's tokenization of the whole text, each token mapped to the step holding
        // its first byte.
        let mut text = String::new();
        let mut starts: Vec<(usize, u32)> = Vec::with_capacity(pieces.len());
        for (i, (piece, _)) in pieces.iter().enumerate() {
            starts.push((text.len(), owner(&pieces, i)));
            text.push_str(piece);
        }
        let ids = self.tokenizer.encode(&text)?;
        if ids.is_empty() {
            return Err(Error::Tokenizer("the text to score has no tokens".into()));
        }
        let mut offset = 0usize;
        let mut parent_steps = Vec::with_capacity(ids.len());
        for &id in &ids {
            let k = starts.partition_point(|&(start, _)| start <= offset).saturating_sub(1);
            parent_steps.push(starts.get(k).map_or(0, |&(_, s)| s));
            offset += self.tokenizer.token_bytes(id).len();
        }
        Ok(ScorePlan {
            rendered_prompt,
            prompt_ids,
            ids,
            tokens: ScoredTokens::Retokenized,
            parent_steps,
            initial,
        })
    }

    /// Scores a planned sequence: prefills the prompt and the forced tokens `chunk` at a time
    /// and reports one `Step` per forced token (its logprob under this model, entropy, top-k)
    /// with its routing, as `generate` would have had this model chosen those tokens.
    pub fn score(
        &mut self,
        req: &ScoreRequest,
        plan: &ScorePlan,
        recorder: &mut dyn Recorder,
        cancel: &AtomicBool,
    ) -> Result<RunSummary> {
        let n_prompt = plan.prompt_ids.len();
        let feed: Vec<u32> = plan.prompt_ids.iter().chain(&plan.ids).copied().collect();
        let context = self.model.context_length();
        if feed.len() > context {
            return Err(Error::PromptTooLong { prompt: feed.len(), context });
        }
        let vocab = self.tokenizer.vocab_size().max(self.model.vocab_size());
        if let Some(bad) = feed.iter().find(|&&t| t as usize >= vocab || t == UNKNOWN_TOKEN) {
            return Err(Error::Sampler(format!(
                "token id {bad} is outside the vocabulary ({vocab} tokens)"
            )));
        }
        recorder.record(Event::Started {
            rendered_prompt: plan.rendered_prompt.clone(),
            prompt_tokens: plan.prompt_ids.clone(),
            phase: plan.initial,
            stop_ids: self.tokenizer.stop_ids().to_vec(),
        });
        let chunk = if req.chunk == 0 { DEFAULT_CHUNK } else { req.chunk };
        let moe = self.model.is_moe() && req.routing != RoutingDetail::Off;
        self.model.truncate_cache(0);
        self.model.set_routing_detail(req.routing);
        let start = Instant::now();
        let mut timings = Timings { prompt_tokens: n_prompt as u32, ..Timings::default() };
        let mut phases = PhaseTracker::new(plan.initial);
        let mut decoder = StreamDecoder::new();
        let mut pending: VecDeque<Step> = VecDeque::new();
        let mut routes: VecDeque<Routing> = VecDeque::new();
        let mut prompt_routing: Option<Vec<Routing>> = Some(Vec::new());
        let mut stop = req.stop;
        let mut at = 0;
        while at < feed.len() {
            if cancel.load(Ordering::Relaxed) {
                stop = StopReason::User;
                break;
            }
            let end = (at + chunk).min(feed.len());
            let tokenizer = &self.tokenizer;
            let top_k = req.top_logprobs;
            self.model.forward_each(&feed[at..end], at, &mut |i, logits| {
                // The logits after position p choose the token at p + 1.
                let p = at + i;
                if p + 1 < n_prompt || p + 1 >= feed.len() {
                    return Ok(());
                }
                let index = p + 1 - n_prompt;
                let token = feed[p + 1];
                let stats = RawStats::of(logits, top_k);
                let mut text = decoder.push(tokenizer.token_bytes(token));
                if p + 2 == feed.len() {
                    text.push_str(&decoder.finish());
                }
                let phase = phases.observe(&text);
                let t_us = start.elapsed().as_micros() as u64;
                pending.push_back(super::generate::step_of(
                    tokenizer,
                    logits,
                    &stats,
                    token,
                    (index, t_us),
                    text,
                    phase,
                ));
                Ok(())
            })?;
            if end <= n_prompt || at < n_prompt {
                timings.prefill_us = start.elapsed().as_micros() as u64;
            }
            if moe {
                for (i, r) in self.model.take_routing().into_iter().enumerate() {
                    match prompt_routing.as_mut().filter(|_| at + i < n_prompt) {
                        Some(pr) => pr.push(r),
                        None => routes.push_back(r),
                    }
                }
                if end >= n_prompt {
                    if let Some(pr) = prompt_routing.take() {
                        recorder.record(Event::PromptRouting(pr));
                    }
                }
            }
            // A step is reported with the routing of its own token (position n_prompt + index).
            while let Some(step) = pending.pop_front() {
                let routing = match moe {
                    true => match routes.pop_front() {
                        Some(r) => Some(r),
                        None => {
                            pending.push_front(step);
                            break;
                        }
                    },
                    false => None,
                };
                timings.generated_tokens += 1;
                recorder.record(Event::Step { step, routing });
            }
            at = end;
        }
        for step in pending {
            timings.generated_tokens += 1;
            recorder.record(Event::Step { step, routing: None });
        }
        timings.decode_us = (start.elapsed().as_micros() as u64).saturating_sub(timings.prefill_us);
        recorder.record(Event::Finished { stop, timings });
        Ok(RunSummary { stop, timings })
    }
}

impl Engine {
    /// Prefills a prompt from position 0 (the cache emptied first), `DEFAULT_CHUNK` tokens per
    /// forward pass, and returns the logits after its last token and, for MoE models, every
    /// prompt token's routing in order. One pass over a long prompt would hold the attention
    /// scores of every token against every other at once (a 2k-token prompt: 150 MB per layer
    /// on the demo model) and ran at half the speed; chunks keep them small and the batched
    /// matmuls full.
    pub(crate) fn prefill_prompt(&mut self, ids: &[u32]) -> Result<(Vec<f32>, Vec<Routing>)> {
        self.prefill_chunks(ids, DEFAULT_CHUNK)
    }

    /// Prefills `ids` from position 0, `chunk` tokens per forward pass, computing only the
    /// logits after each chunk's last token (the engine's plain prefill, for benchmarks).
    pub fn prefill(&mut self, ids: &[u32], chunk: usize) -> Result<()> {
        let context = self.model.context_length();
        if ids.len() > context {
            return Err(Error::PromptTooLong { prompt: ids.len(), context });
        }
        self.prefill_chunks(ids, chunk).map(|_| ())
    }

    /// `prefill_prompt` with `chunk` tokens per forward pass.
    fn prefill_chunks(&mut self, ids: &[u32], chunk: usize) -> Result<(Vec<f32>, Vec<Routing>)> {
        self.model.truncate_cache(0);
        let chunk = chunk.max(1);
        let (mut logits, mut routing) = (Vec::new(), Vec::new());
        for (i, part) in ids.chunks(chunk).enumerate() {
            logits = self.model.forward(part, i * chunk)?;
            routing.extend(self.model.take_routing());
        }
        Ok((logits, routing))
    }
}

/// The input step piece `i` lines up with: its own, or for an inserted tag the next step
/// (the last one when the tag ends the text).
fn owner(pieces: &[(String, Option<u32>)], i: usize) -> u32 {
    pieces[i..]
        .iter()
        .find_map(|(_, s)| *s)
        .or_else(|| pieces[..i].iter().rev().find_map(|(_, s)| *s))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(text: &str, phase: Phase) -> ScoreInput {
        ScoreInput { token_id: UNKNOWN_TOKEN, text: text.into(), phase }
    }

    #[test]
    fn reasoning_without_tags_gets_them_where_the_template_expects() {
        let steps =
            [input("hm", Phase::Think), input(" ok", Phase::Think), input("42", Phase::Answer)];
        let got = pieces(&steps, false);
        let texts: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(texts, [OPEN_TAG, "hm", " ok", CLOSE_TAG, "42"]);
        assert_eq!(got[0].1, None);
        assert_eq!(got[4].1, Some(2));
        // A template that opens <think> itself: only the closing tag is added.
        let texts: Vec<String> = pieces(&steps, true).into_iter().map(|(t, _)| t).collect();
        assert_eq!(texts, ["hm", " ok", CLOSE_TAG, "42"]);
    }

    #[test]
    fn tagged_text_is_left_as_it_is() {
        let steps = [input("<think>", Phase::Think), input("x", Phase::Think)];
        let texts: Vec<String> = pieces(&steps, false).into_iter().map(|(t, _)| t).collect();
        assert_eq!(texts, ["<think>", "x"]);
    }
}
