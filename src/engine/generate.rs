//! One generation: render the prompt, prefill, then for every step compute the raw
//! distribution's statistics, choose a token, decode its text, track the think/answer phase
//! and hand a `Step` to the `Recorder` (`crate::record`).
//!
//! Recording is synchronous and cheap (a channel send in practice), so generation never waits
//! on the store or the terminal. Depends on `trace`, `record` and the rest of `engine`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::error::{Error, Result};
use super::sampler::{RawStats, Sampler};
use super::tokenizer::{StreamDecoder, Tokenizer};
use super::Engine;
use crate::record::{Event, Recorder};
use crate::trace::{
    Message, Phase, Routing, RoutingDetail, SamplerSpec, Step, StopReason, Timings, TopToken,
};

/// What to generate from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Prompt {
    /// Chat messages, rendered with the model's chat template and a generation prompt.
    Chat(Vec<Message>),
    /// Text tokenized as given (special tokens parsed); BOS added only if the GGUF asks for it.
    Raw(String),
}

/// A request for one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    pub prompt: Prompt,
    pub sampler: SamplerSpec,
    /// How many alternatives to keep per step.
    pub top_logprobs: usize,
    /// Tokens to emit at the first steps instead of the sampled ones (a fork re-runs its
    /// parent's prefix and then its chosen token). The sampler still draws at those steps, so
    /// forcing a run's own tokens reproduces it exactly.
    #[serde(default)]
    pub forced: Vec<u32>,
    /// Text whose tokens are forced after `forced` (a fork to a typed continuation).
    #[serde(default)]
    pub forced_text: Option<String>,
    /// How much MoE routing to record (dense models have none).
    #[serde(default)]
    pub routing: RoutingDetail,
    /// Also record how the prompt's tokens were routed (`Event::PromptRouting`).
    #[serde(default = "yes")]
    pub prompt_routing: bool,
}

fn yes() -> bool {
    true
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunSummary {
    pub stop: StopReason,
    pub timings: Timings,
}

/// The step a generation records for `token`, chosen at step `index`, `t_us` after the start:
/// its logprob and entropy under `logits` (`stats` are theirs) and the top alternatives.
pub(super) fn step_of(
    tokenizer: &Tokenizer,
    logits: &[f32],
    stats: &RawStats,
    token: u32,
    (index, t_us): (usize, u64),
    text: String,
    phase: Phase,
) -> Step {
    let top = stats
        .top
        .iter()
        .map(|&(id, logprob)| TopToken {
            id,
            text: tokenizer.token_display(id).to_string(),
            logprob,
        })
        .collect();
    let logit = logits.get(token as usize).copied().unwrap_or(f32::NEG_INFINITY);
    Step {
        index: index as u32,
        token_id: token,
        text,
        logprob: stats.logprob(logit),
        entropy: stats.entropy,
        phase,
        t_us,
        top,
    }
}

/// What `Engine::start` checked and prepared for a generation.
pub(super) struct Started {
    pub rendered: String,
    pub prompt_ids: Vec<u32>,
    pub context: usize,
    /// Every forced token: `RunRequest::forced`, then the tokens of `forced_text`.
    pub forced: Vec<u32>,
    pub initial: Phase,
}

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// Follows `<think>` and `</think>` through the generated text, whether they are single tokens
/// or spelled out over several.
#[derive(Debug, Clone)]
pub struct PhaseTracker {
    phase: Phase,
    /// The last few characters seen, so a tag split across tokens is still found.
    tail: String,
}

impl PhaseTracker {
    pub fn new(initial: Phase) -> Self {
        PhaseTracker { phase: initial, tail: String::new() }
    }

    /// The phase of a step whose visible text is `text`; tags belong to the thinking.
    pub fn observe(&mut self, text: &str) -> Phase {
        if text.is_empty() {
            return self.phase;
        }
        let mut combined = std::mem::take(&mut self.tail);
        let fresh_from = combined.len();
        combined.push_str(text);
        let mut step_phase = self.phase;
        let mut i = 0;
        while i < combined.len() {
            let rest = &combined[i..];
            let (tag, next) = if rest.starts_with(OPEN) {
                (OPEN.len(), Phase::Think)
            } else if rest.starts_with(CLOSE) {
                (CLOSE.len(), Phase::Answer)
            } else {
                i += rest.chars().next().map_or(1, char::len_utf8);
                continue;
            };
            // Only tags that end in this step's text count; older ones were seen before.
            if i + tag > fresh_from {
                step_phase = Phase::Think;
                self.phase = next;
            }
            i += tag;
        }
        let keep = combined.char_indices().rev().nth(CLOSE.len() - 2).map_or(0, |(idx, _)| idx);
        self.tail = combined[keep..].to_string();
        step_phase
    }
}

impl Engine {
    /// The prompt text and its tokens, exactly as the model will see them.
    pub fn prepare(&self, prompt: &Prompt) -> Result<(String, Vec<u32>)> {
        let (text, add_bos) = match prompt {
            Prompt::Raw(text) => (text.clone(), self.tokenizer.add_bos()),
            Prompt::Chat(messages) => match &self.template {
                // As in Hugging Face's apply_chat_template: the template decides about BOS.
                Some(t) => (t.render(messages, true)?, false),
                None => {
                    return Err(Error::Template(
                        "the model has no 'tokenizer.chat_template'; pass --raw to give the prompt text as is".into(),
                    ))
                }
            },
        };
        let mut ids = Vec::new();
        if add_bos {
            if let Some(bos) = self.tokenizer.bos() {
                ids.push(bos);
            }
        }
        ids.extend(self.tokenizer.encode(&text)?);
        Ok((text, ids))
    }

    /// The checks every generation makes before its prefill, in this order: the prompt
    /// rendered and tokenized, not empty and shorter than the context; the forced tokens (and
    /// forced text) inside the vocabulary; the phase the prompt leaves the model in.
    pub(super) fn start(&self, req: &RunRequest) -> Result<Started> {
        let (rendered, prompt_ids) = self.prepare(&req.prompt)?;
        let context = self.model.context_length();
        if prompt_ids.is_empty() {
            return Err(Error::Template("the prompt is empty".into()));
        }
        if prompt_ids.len() >= context {
            return Err(Error::PromptTooLong { prompt: prompt_ids.len(), context });
        }
        let vocab = self.tokenizer.vocab_size().max(self.model.vocab_size());
        let mut forced = req.forced.clone();
        if let Some(text) = &req.forced_text {
            let ids = self.tokenizer.encode(text)?;
            if ids.is_empty() {
                return Err(Error::Sampler("the forced text is empty".into()));
            }
            forced.extend(ids);
        }
        if let Some(bad) = forced.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::Sampler(format!(
                "forced token id {bad} is outside the vocabulary ({vocab} tokens)"
            )));
        }
        let initial = if super::template::prompt_opens_think(&rendered) {
            Phase::Think
        } else {
            Phase::Answer
        };
        Ok(Started { rendered, prompt_ids, context, forced, initial })
    }

    /// Runs one generation, reporting to `recorder`. Stops at an end-of-generation token, at
    /// `max_tokens`, at the end of the context, or when `cancel` becomes true.
    pub fn generate(
        &mut self,
        req: &RunRequest,
        recorder: &mut dyn Recorder,
        cancel: &AtomicBool,
    ) -> Result<RunSummary> {
        let mut sampler = Sampler::new(&req.sampler)?;
        let Started { rendered, prompt_ids, context, forced, initial } = self.start(req)?;
        recorder.record(Event::Started {
            rendered_prompt: rendered,
            prompt_tokens: prompt_ids.clone(),
            phase: initial,
            stop_ids: self.tokenizer.stop_ids().to_vec(),
        });
        let mut phases = PhaseTracker::new(initial);
        let mut decoder = StreamDecoder::new();
        let mut timings = Timings { prompt_tokens: prompt_ids.len() as u32, ..Timings::default() };
        let start = Instant::now();
        self.model.set_routing_detail(req.routing);
        let moe = self.model.is_moe() && req.routing != RoutingDetail::Off;
        let (mut logits, routing) = self.prefill_prompt(&prompt_ids)?;
        timings.prefill_us = start.elapsed().as_micros() as u64;
        if moe && req.prompt_routing {
            recorder.record(Event::PromptRouting(routing));
        }
        let decode_start = Instant::now();
        let mut history = prompt_ids.clone();
        // A step is reported one iteration late, with the routing of its own token (MoE
        // models: computed when the token is fed back in) and any bytes the decoder still held.
        let mut pending: Option<(Step, Option<Routing>)> = None;
        let mut stop = StopReason::MaxTokens;
        for index in 0..req.sampler.max_tokens {
            if cancel.load(Ordering::Relaxed) {
                stop = StopReason::User;
                break;
            }
            if logits.len() != self.tokenizer.vocab_size() && index == 0 {
                tracing::debug!(
                    logits = logits.len(),
                    vocab = self.tokenizer.vocab_size(),
                    "output rows differ from the vocabulary"
                );
            }
            let stats = RawStats::of(&logits, req.top_logprobs);
            let sampled = sampler.sample(&logits, &history);
            let token = forced.get(index).copied().unwrap_or(sampled);
            let t_us = start.elapsed().as_micros() as u64;
            let text = decoder.push(self.tokenizer.token_bytes(token));
            let phase = phases.observe(&text);
            let step = step_of(&self.tokenizer, &logits, &stats, token, (index, t_us), text, phase);
            if let Some((prev, routing)) = pending.replace((step, None)) {
                recorder.record(Event::Step { step: prev, routing });
            }
            history.push(token);
            timings.generated_tokens += 1;
            if !req.sampler.ignore_eos && self.tokenizer.stop_ids().contains(&token) {
                stop = StopReason::Eos;
                break;
            }
            if index + 1 == req.sampler.max_tokens {
                break;
            }
            // The position the chosen token will occupy when it is fed back in.
            let pos = prompt_ids.len() + index;
            if pos + 1 >= context {
                stop = StopReason::ContextFull;
                break;
            }
            logits = self.model.forward(&[token], pos)?;
            if let Some(p) = pending.as_mut().filter(|_| moe) {
                p.1 = self.model.take_routing().pop();
            }
        }
        timings.decode_us = decode_start.elapsed().as_micros() as u64;
        if let Some((mut last, mut routing)) = pending.take() {
            // Bytes of a character the generation stopped in the middle of.
            last.text.push_str(&decoder.finish());
            let pos = prompt_ids.len() + last.index as usize;
            if moe && routing.is_none() && pos < context {
                // One extra forward so the last step has its routing too.
                self.model.forward(&[last.token_id], pos)?;
                routing = self.model.take_routing().pop();
            }
            recorder.record(Event::Step { step: last, routing });
        }
        recorder.record(Event::Finished { stop, timings });
        Ok(RunSummary { stop, timings })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phases(initial: Phase, pieces: &[&str]) -> Vec<Phase> {
        let mut t = PhaseTracker::new(initial);
        pieces.iter().map(|p| t.observe(p)).collect()
    }

    #[test]
    fn single_token_tags_switch_phase() {
        use Phase::*;
        assert_eq!(
            phases(Answer, &["<think>", "hm", "</think>", "Yes"]),
            vec![Think, Think, Think, Answer]
        );
    }

    #[test]
    fn tags_spelled_over_several_tokens_are_found() {
        use Phase::*;
        assert_eq!(
            phases(Think, &["ok", "</", "think", ">", "\n\n", "42"]),
            vec![Think, Think, Think, Think, Answer, Answer]
        );
        assert_eq!(phases(Answer, &["<", "think>", "x"]), vec![Answer, Think, Think]);
    }

    #[test]
    fn an_old_tag_in_the_tail_is_not_seen_twice() {
        use Phase::*;
        assert_eq!(phases(Think, &["</think>", "a", "b"]), vec![Think, Answer, Answer]);
    }
}
