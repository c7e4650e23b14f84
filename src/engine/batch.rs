//! Batched decode of several samples that share one prompt (`Engine::generate_many`): the
//! prompt is prefilled once, its KV cache copied once per sample, and every step runs ONE
//! forward over the last tokens of the sequences still running (a matmul over N rows, so the
//! weights are read once per step for all of them; attention per sequence over its own cache).
//! Each sequence then gets its own statistics, its own seeded sampler, phase tracking and
//! events to its own `Recorder`: the same `Started`, `PromptRouting`, `Step` (with routing,
//! one iteration late) and `Finished` stream `generate` gives, so stores and screens see
//! ordinary runs. Sequences that finish (end of generation, token limit, full context) leave
//! the batch; a finished MoE sequence rides one more step so that its last token's routing is
//! recorded, as `generate` does with its extra forward.
//!
//! Models without batched decoding (`Model::supports_sequences` false) run the samples one
//! after the other through `generate`. Depends on the rest of `engine`, `record` and `trace`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::error::{Error, Result};
use super::generate::{PhaseTracker, RunRequest, RunSummary};
use super::models::SeqToken;
use super::sampler::{RawStats, Sampler};
use super::tokenizer::{StreamDecoder, Tokenizer};
use super::Engine;
use crate::record::{Event, Recorder};
use crate::trace::{Routing, RoutingDetail, Step, StopReason, Timings};

/// The most sequences decoded together; `generate_many` runs larger requests in batches.
pub const MAX_BATCH: usize = super::kernels::BATCH_ROWS;

/// Where one sequence of the batch is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Chooses a token at every step.
    Running,
    /// Stopped; its last token goes through one more forward for its routing.
    Closing(StopReason),
    /// Its `Finished` event is sent.
    Done(StopReason),
}

/// One sample's generation state (what `generate` keeps in locals).
struct Seq {
    sampler: Sampler,
    phases: PhaseTracker,
    decoder: StreamDecoder,
    history: Vec<u32>,
    /// The step reported one iteration late, with its own token's routing.
    pending: Option<(Step, Option<Routing>)>,
    timings: Timings,
    logits: Vec<f32>,
    index: usize,
    state: State,
}

/// What every sample of a request shares.
struct Shared<'a> {
    req: &'a RunRequest,
    tokenizer: &'a Tokenizer,
    prompt_len: usize,
    context: usize,
    forced: &'a [u32],
    moe: bool,
    start: Instant,
    decode_start: Instant,
}

/// A step's statistics and the sampler's token (`Seq::draw`).
type Drawn = (RawStats, u32);

/// What a step of a running sequence leads to.
enum Next {
    /// Feed this token at this position.
    Feed(SeqToken),
    /// The sequence stopped.
    Stop(StopReason),
}

impl Seq {
    /// Whether this step draws a token (running and under the token limit).
    fn draws(&self, sh: &Shared<'_>) -> bool {
        self.state == State::Running && self.index < sh.req.sampler.max_tokens
    }

    /// The statistics of the current logits and the sampler's draw: the costly part of a
    /// step, which depends on nothing but this sequence (see `draw_all`).
    fn draw(&mut self, top_logprobs: usize) -> Drawn {
        // Called from a task of candle's pool (`draw_all`), which cannot start another job.
        let stats = RawStats::of_in_task(&self.logits, top_logprobs);
        let sampled = self.sampler.sample(&self.logits, &self.history);
        (stats, sampled)
    }

    /// One step as `generate` takes it: statistics and draw (`drawn`, from `draw`), forced
    /// token, step event (the previous one), stop rules.
    fn step(
        &mut self,
        seq: usize,
        sh: &Shared<'_>,
        drawn: Option<Drawn>,
        recorder: &mut dyn Recorder,
    ) -> Next {
        let index = self.index;
        if index >= sh.req.sampler.max_tokens {
            return Next::Stop(StopReason::MaxTokens);
        }
        let (stats, sampled) = match drawn {
            Some(d) => d,
            None => self.draw(sh.req.top_logprobs),
        };
        let token = sh.forced.get(index).copied().unwrap_or(sampled);
        let t_us = sh.start.elapsed().as_micros() as u64;
        let text = self.decoder.push(sh.tokenizer.token_bytes(token));
        let phase = self.phases.observe(&text);
        let step = super::generate::step_of(
            sh.tokenizer,
            &self.logits,
            &stats,
            token,
            (index, t_us),
            text,
            phase,
        );
        if let Some((prev, routing)) = self.pending.replace((step, None)) {
            recorder.record(Event::Step { step: prev, routing });
        }
        self.history.push(token);
        self.timings.generated_tokens += 1;
        self.index += 1;
        if !sh.req.sampler.ignore_eos && sh.tokenizer.stop_ids().contains(&token) {
            return Next::Stop(StopReason::Eos);
        }
        if index + 1 == sh.req.sampler.max_tokens {
            return Next::Stop(StopReason::MaxTokens);
        }
        // The position the chosen token will occupy when it is fed back in.
        let pos = sh.prompt_len + index;
        if pos + 1 >= sh.context {
            return Next::Stop(StopReason::ContextFull);
        }
        Next::Feed(SeqToken { seq, token, pos })
    }

    /// The sequence stopped: the token whose routing its last step still lacks (MoE models)
    /// goes through one more forward first; otherwise it finishes now.
    fn close(
        &mut self,
        seq: usize,
        stop: StopReason,
        sh: &Shared<'_>,
        recorder: &mut dyn Recorder,
    ) -> Option<SeqToken> {
        self.timings.decode_us = sh.decode_start.elapsed().as_micros() as u64;
        if let Some((last, None)) = &self.pending {
            let pos = sh.prompt_len + last.index as usize;
            if sh.moe && pos < sh.context {
                self.state = State::Closing(stop);
                return Some(SeqToken { seq, token: last.token_id, pos });
            }
        }
        self.finish(stop, recorder);
        None
    }

    /// The last step (with the decoder's held bytes) and `Finished`.
    fn finish(&mut self, stop: StopReason, recorder: &mut dyn Recorder) {
        if let Some((mut last, routing)) = self.pending.take() {
            last.text.push_str(&self.decoder.finish());
            recorder.record(Event::Step { step: last, routing });
        }
        recorder.record(Event::Finished { stop, timings: self.timings });
        self.state = State::Done(stop);
    }
}

/// `Seq::draw` for every sequence that draws this step, the sequences spread over candle's
/// thread pool (idle between forwards): the statistics and the sampler read the whole
/// vocabulary, so done one sequence after the other they grew with N while the forward
/// barely did. Each sequence's draw is the same computation as alone, so the tokens are too.
fn draw_all(seqs: &mut [Seq], sh: &Shared<'_>) -> Vec<Option<Drawn>> {
    let top = sh.req.top_logprobs;
    let cells: Vec<Mutex<(&mut Seq, Option<Drawn>)>> =
        seqs.iter_mut().map(|s| Mutex::new((s, None))).collect();
    let cursor = AtomicUsize::new(0);
    candle_core::utils::barrier_pool().execute(|_| loop {
        let i = cursor.fetch_add(1, Ordering::Relaxed);
        let Some(cell) = cells.get(i) else { break };
        let Ok(mut cell) = cell.lock() else { break };
        if cell.0.draws(sh) {
            cell.1 = Some(cell.0.draw(top));
        }
    });
    cells.into_iter().map(|c| c.into_inner().ok().and_then(|c| c.1)).collect()
}

impl Engine {
    /// Runs `req` once per seed (each sample's `sampler.seed` replaced by its seed), all
    /// sharing the prompt; sample i reports to `recorders[i]`. Every sample gives the same
    /// tokens and logprobs as `generate` run alone with that seed.
    ///
    /// The prompt is prefilled once and the samples decode together, one batched forward
    /// per step; models without batched decoding run the samples one after the other.
    /// `cancel` stops every sample (`StopReason::User`).
    pub fn generate_many(
        &mut self,
        req: &RunRequest,
        seeds: &[u64],
        recorders: &mut [&mut dyn Recorder],
        cancel: &AtomicBool,
    ) -> Result<Vec<RunSummary>> {
        if recorders.len() != seeds.len() {
            return Err(Error::Sampler(format!(
                "{} seeds but {} recorders: each sample needs its own",
                seeds.len(),
                recorders.len()
            )));
        }
        let with_seed = |seed: u64| {
            let mut r = req.clone();
            r.sampler.seed = seed;
            r
        };
        if seeds.len() > MAX_BATCH {
            // Past `MAX_BATCH` rows a matmul may take another kernel than a lone decode does
            // (`kernels::BATCH_ROWS`), so larger requests run as several batches.
            let mut out = Vec::with_capacity(seeds.len());
            for (seeds, recs) in seeds.chunks(MAX_BATCH).zip(recorders.chunks_mut(MAX_BATCH)) {
                out.extend(self.generate_many(req, seeds, recs, cancel)?);
            }
            return Ok(out);
        }
        if seeds.len() <= 1 || !self.model.supports_sequences() {
            let mut out = Vec::with_capacity(seeds.len());
            for (&seed, rec) in seeds.iter().zip(recorders.iter_mut()) {
                out.push(self.generate(&with_seed(seed), &mut **rec, cancel)?);
            }
            return Ok(out);
        }
        let result = self.decode_together(req, seeds, recorders, cancel);
        self.model.end_sequences();
        result
    }

    /// The batched path of `generate_many` (at least two seeds, a model that batches).
    fn decode_together(
        &mut self,
        req: &RunRequest,
        seeds: &[u64],
        recorders: &mut [&mut dyn Recorder],
        cancel: &AtomicBool,
    ) -> Result<Vec<RunSummary>> {
        let mut samplers = Vec::with_capacity(seeds.len());
        for &seed in seeds {
            let mut spec = req.sampler.clone();
            spec.seed = seed;
            samplers.push(Sampler::new(&spec)?);
        }
        let super::generate::Started { rendered, prompt_ids, context, forced, initial } =
            self.start(req)?;
        for rec in recorders.iter_mut() {
            rec.record(Event::Started {
                rendered_prompt: rendered.clone(),
                prompt_tokens: prompt_ids.clone(),
                phase: initial,
                stop_ids: self.tokenizer.stop_ids().to_vec(),
            });
        }
        let start = Instant::now();
        self.model.set_routing_detail(req.routing);
        let moe = self.model.is_moe() && req.routing != RoutingDetail::Off;
        let (logits, routing) = self.prefill_prompt(&prompt_ids)?;
        let prefill_us = start.elapsed().as_micros() as u64;
        if moe && req.prompt_routing {
            for rec in recorders.iter_mut() {
                rec.record(Event::PromptRouting(routing.clone()));
            }
        }
        self.model.fork_sequences(seeds.len())?;
        let sh = Shared {
            req,
            tokenizer: &self.tokenizer,
            prompt_len: prompt_ids.len(),
            context,
            forced: &forced,
            moe,
            start,
            decode_start: Instant::now(),
        };
        let mut seqs: Vec<Seq> = samplers
            .into_iter()
            .map(|sampler| Seq {
                sampler,
                phases: PhaseTracker::new(initial),
                decoder: StreamDecoder::new(),
                history: prompt_ids.clone(),
                pending: None,
                timings: Timings {
                    prompt_tokens: prompt_ids.len() as u32,
                    prefill_us,
                    ..Timings::default()
                },
                logits: logits.clone(),
                index: 0,
                state: State::Running,
            })
            .collect();
        loop {
            let cancelled = cancel.load(Ordering::Relaxed);
            let mut drawn = match cancelled {
                true => Vec::new(),
                false => draw_all(&mut seqs, &sh),
            };
            drawn.resize_with(seqs.len(), || None);
            let mut rows = Vec::with_capacity(seqs.len());
            for (i, ((s, rec), d)) in
                seqs.iter_mut().zip(recorders.iter_mut()).zip(drawn).enumerate()
            {
                if s.state != State::Running {
                    continue;
                }
                let next = if cancelled {
                    Next::Stop(StopReason::User)
                } else {
                    s.step(i, &sh, d, &mut **rec)
                };
                match next {
                    Next::Feed(row) => rows.push(row),
                    Next::Stop(stop) => rows.extend(s.close(i, stop, &sh, &mut **rec)),
                }
            }
            if rows.is_empty() {
                break;
            }
            let out = self.model.forward_sequences(&rows)?;
            let mut routing: Vec<Option<Routing>> = match moe {
                true => self.model.take_routing().into_iter().map(Some).collect(),
                false => Vec::new(),
            };
            if out.len() != rows.len() {
                return Err(Error::Worker(format!(
                    "a batched step of {} rows gave {} rows of logits",
                    rows.len(),
                    out.len()
                )));
            }
            routing.resize(rows.len(), None);
            for ((row, logits), route) in rows.iter().zip(out).zip(routing) {
                let (Some(s), Some(rec)) = (seqs.get_mut(row.seq), recorders.get_mut(row.seq))
                else {
                    continue;
                };
                if let Some(p) = s.pending.as_mut().filter(|_| moe) {
                    p.1 = route;
                }
                match s.state {
                    State::Running => s.logits = logits,
                    State::Closing(stop) => s.finish(stop, &mut **rec),
                    State::Done(_) => {}
                }
            }
        }
        Ok(seqs
            .iter()
            .map(|s| RunSummary {
                stop: match s.state {
                    State::Done(stop) | State::Closing(stop) => stop,
                    State::Running => StopReason::User,
                },
                timings: s.timings,
            })
            .collect())
    }
}
