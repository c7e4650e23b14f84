//! The answer-now probe of a recorded run: where to ask (each reasoning-step boundary inside
//! the thinking, and its end), the engine request (`engine::probe`), and what the answers say:
//! whether each matches the run's final answer (`resample::FinalAnswer`), the reasoning step
//! from which the answer settled for good and the thinking tokens spent after it
//! (overthinking), or that it never settled (underthinking). Kept beside the run as the
//! analysis part "probe". Depends on `engine`, `analysis`, `store`, `trace` and `resample`;
//! never on `cli` or `tui`.

use serde::{Deserialize, Serialize};

use crate::analysis::config::ProbeConfig;
use crate::analysis::segment;
use crate::engine::probe::{ProbeOutcome, ProbeRequest};
use crate::runs::replay::{Parent, Result};
use crate::runs::resample::FinalAnswer;
use crate::store::Store;
use crate::trace::{Phase, RunId, Step};

/// The name the probe is kept under beside a run.
pub const PART: &str = "probe";

/// Where the probe asks: before these steps (token indices), each the start of reasoning step
/// `reasoning_steps[i]` (the last one may be the end of the thinking).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub boundaries: Vec<usize>,
    pub reasoning_steps: Vec<usize>,
    /// The step the thinking ends at (its `</think>`), or the run's end when it does not think.
    pub think_end: usize,
    pub thinks: bool,
}

/// The boundaries of a run's thinking: every reasoning step that starts before its end, and
/// the end itself (the run's end for a run without thinking).
pub fn plan(steps: &[Step], close_think: &str) -> Plan {
    let seg = segment(steps);
    let (think_end, thinks) = match &seg.think {
        Some(t) => {
            let close =
                t.clone().find(|&i| !close_think.is_empty() && steps[i].text.contains(close_think));
            (close.unwrap_or(t.end), true)
        }
        None => (steps.len(), false),
    };
    let mut boundaries = Vec::new();
    let mut reasoning_steps = Vec::new();
    for (n, rs) in seg.steps.iter().enumerate() {
        if rs.span.start < think_end && boundaries.last() != Some(&rs.span.start) {
            boundaries.push(rs.span.start);
            reasoning_steps.push(n);
        }
    }
    if boundaries.last() != Some(&think_end) {
        let n = seg.steps.iter().filter(|s| s.span.start < think_end).count();
        boundaries.push(think_end);
        reasoning_steps.push(n);
    }
    Plan { boundaries, reasoning_steps, think_end, thinks }
}

/// The text fed at each boundary.
pub fn suffix(plan: &Plan, cfg: &ProbeConfig) -> String {
    if plan.thinks {
        format!("{}{}", cfg.close_think, cfg.answer_prefix)
    } else {
        cfg.answer_prefix.clone()
    }
}

/// The engine request probing `parent` under `plan`.
pub fn request(parent: &Parent, plan: &Plan, cfg: &ProbeConfig) -> Result<ProbeRequest> {
    Ok(ProbeRequest {
        prompt: parent.prompt()?,
        tokens: parent.steps[..plan.think_end.min(parent.steps.len())]
            .iter()
            .map(|s| s.token_id)
            .collect(),
        boundaries: plan.boundaries.clone(),
        suffix: suffix(plan, cfg),
        max_tokens: cfg.max_tokens,
    })
}

/// One boundary's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbePoint {
    /// The step before which the model was asked.
    pub at: usize,
    /// The reasoning step starting there (`count` of them for the end of the thinking).
    pub reasoning_step: usize,
    /// The decoded answer text (after the answer prefix).
    pub text: String,
    /// The answer extracted from it (`FinalAnswer::short`).
    pub answer: String,
    /// Log-probability of the greedy answer tokens.
    pub logprob: f64,
    /// Whether it agrees with the run's final answer.
    pub matches: bool,
    /// Time of the branch (µs).
    pub us: u64,
}

/// The probe as kept beside the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredProbe {
    /// Steps of the run when it was probed.
    pub steps: usize,
    pub suffix: String,
    /// The run's final answer the points are compared with (shortened).
    pub final_answer: String,
    pub think_end: usize,
    pub thinks: bool,
    pub points: Vec<ProbePoint>,
    /// Index into `points` from which every answer matches the final one; `None`: it never
    /// settled (the last answer differs).
    pub settled: Option<usize>,
    pub prefill_us: u64,
    pub replay_us: u64,
}

impl StoredProbe {
    /// The reasoning step from which the answer settled for good.
    pub fn answer_settled_step(&self) -> Option<usize> {
        self.settled.and_then(|i| self.points.get(i)).map(|p| p.reasoning_step)
    }

    /// The token step from which the answer settled.
    pub fn settled_at(&self) -> Option<usize> {
        self.settled.and_then(|i| self.points.get(i)).map(|p| p.at)
    }

    /// Thinking tokens generated after the answer settled (overthinking).
    pub fn tokens_after_settle(&self) -> Option<usize> {
        self.settled_at().map(|at| self.think_end.saturating_sub(at))
    }

    /// Mean time of one branch (µs).
    pub fn mean_branch_us(&self) -> f64 {
        let n = self.points.len().max(1) as f64;
        self.points.iter().map(|p| p.us as f64).sum::<f64>() / n
    }
}

/// From which point on every answer matches: `None` when the last one does not.
pub fn settle(matches: &[bool]) -> Option<usize> {
    if !*matches.last()? {
        return None;
    }
    Some(matches.iter().rposition(|m| !m).map_or(0, |i| i + 1))
}

/// The answer stated in a probe's text (the answer prefix put back in front, so that "The
/// final answer is 42" is read as a stated answer).
pub fn probe_answer(prefix: &str, text: &str) -> FinalAnswer {
    let step = Step {
        index: 0,
        token_id: 0,
        text: format!("{}{text}", prefix.trim_start()),
        logprob: 0.0,
        entropy: 0.0,
        phase: Phase::Answer,
        t_us: 0,
        top: Vec::new(),
    };
    FinalAnswer::of(&[step])
}

/// Whether a probe answer agrees with the run's: as `FinalAnswer` compares them, and where the
/// run states no answer, when its answer text contains the probe's stated value.
pub fn agrees(run: &FinalAnswer, probe: &FinalAnswer) -> bool {
    if run.stated.is_none() {
        if let Some(v) = &probe.stated {
            let norm = |s: &str| s.to_lowercase().split_whitespace().collect::<Vec<_>>().join(" ");
            let v = norm(v.value.trim_end_matches(['.', '!']));
            return !v.is_empty() && norm(&run.text).contains(&v);
        }
    }
    !run.changed(probe)
}

/// The probe's result: each answer compared with the run's final answer (that of its answer
/// part; for a run that never answered, the answer at the end of its thinking).
pub fn summarize(
    steps: &[Step],
    plan: &Plan,
    cfg: &ProbeConfig,
    outcome: &ProbeOutcome,
) -> StoredProbe {
    let has_answer = if plan.thinks {
        segment(steps).answer.is_some_and(|a| !a.is_empty())
    } else {
        !steps.is_empty()
    };
    let answers: Vec<FinalAnswer> =
        outcome.answers.iter().map(|a| probe_answer(&cfg.answer_prefix, &a.text)).collect();
    let reference = if has_answer {
        FinalAnswer::of(steps)
    } else {
        answers.last().cloned().unwrap_or_else(|| FinalAnswer::of(&[]))
    };
    let matches: Vec<bool> = answers.iter().map(|a| agrees(&reference, a)).collect();
    let points = outcome
        .answers
        .iter()
        .zip(&answers)
        .zip(&matches)
        .map(|((a, fa), m)| ProbePoint {
            at: a.at,
            reasoning_step: plan
                .boundaries
                .iter()
                .position(|b| *b == a.at)
                .and_then(|i| plan.reasoning_steps.get(i).copied())
                .unwrap_or(0),
            text: a.text.clone(),
            answer: fa.short(),
            logprob: a.logprob,
            matches: *m,
            us: a.us,
        })
        .collect();
    StoredProbe {
        steps: steps.len(),
        suffix: suffix(plan, cfg),
        final_answer: reference.short(),
        think_end: plan.think_end,
        thinks: plan.thinks,
        points,
        settled: settle(&matches),
        prefill_us: outcome.prefill_us,
        replay_us: outcome.replay_us,
    }
}

/// The probe kept beside a run, if one was stored for its current steps.
pub fn stored(store: &Store, run: RunId) -> Result<Option<StoredProbe>> {
    let steps = store.step_count(run);
    // A value this build cannot decode (an older layout) is treated as absent.
    let p: Option<StoredProbe> = store.analysis_part(run, PART).ok().flatten();
    Ok(p.filter(|p| p.steps == steps))
}

/// Keeps a probe beside its run.
pub fn keep(store: &Store, run: RunId, probe: &StoredProbe) -> Result<()> {
    store.put_analysis_part(run, PART, probe)?;
    store.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::test_util::run_steps;
    use crate::engine::probe::ProbeAnswer;

    #[test]
    fn settling_is_the_start_of_the_last_run_of_matches() {
        assert_eq!(settle(&[]), None);
        assert_eq!(settle(&[true, true]), Some(0));
        assert_eq!(settle(&[false, true, false, true, true]), Some(3));
        assert_eq!(settle(&[true, true, false]), None);
    }

    #[test]
    fn probe_answers_are_read_with_their_prefix() {
        let a = probe_answer("\n\nThe final answer is", " 42.\n");
        assert_eq!(a.short(), "42");
        let b = probe_answer("\n\nThe final answer is", " $\\boxed{42}$");
        assert_eq!(b.short(), "42");
        let run = FinalAnswer::of(&run_steps(Some("6*7 is 42."), "The answer is 42."));
        assert!(agrees(&run, &a) && agrees(&run, &b));
        assert!(!agrees(&run, &probe_answer("The final answer is", " 41")));
        // A run that states no answer: its text must contain the probe's value.
        let plain = FinalAnswer::of(&run_steps(None, "Paris is the capital of France."));
        assert!(agrees(&plain, &probe_answer("The final answer is", " Paris.")));
        assert!(!agrees(&plain, &probe_answer("The final answer is", " Lyon.")));
    }

    #[test]
    fn a_crafted_run_settles_where_its_answers_start_to_agree() {
        let steps = run_steps(
            Some("First try 5.\n\nWait, recount: 6.\n\nCheck again: 6 it is.\n\nDone."),
            "The answer is 6.",
        );
        let cfg = ProbeConfig {
            close_think: "</think>".into(),
            answer_prefix: "The final answer is".into(),
            max_tokens: 8,
        };
        let plan = plan(&steps, &cfg.close_think);
        assert!(plan.thinks);
        assert!(plan.boundaries.len() >= 4, "{plan:?}");
        assert_eq!(plan.boundaries.last(), Some(&plan.think_end));
        assert!(steps[plan.think_end].text.contains("</think>"));
        // The model's answers at each boundary: 5, then 6 from the second step on.
        let texts = [" 5.", " 6.", " 6.", " 6.", " 6.", " 6.", " 6."];
        let outcome = ProbeOutcome {
            answers: plan
                .boundaries
                .iter()
                .enumerate()
                .map(|(i, b)| ProbeAnswer {
                    at: *b,
                    tokens: vec![1],
                    text: texts[i.min(texts.len() - 1)].into(),
                    logprob: -0.5,
                    us: 10,
                })
                .collect(),
            prefill_us: 1,
            replay_us: 1,
        };
        let p = summarize(&steps, &plan, &cfg, &outcome);
        assert_eq!(p.final_answer, "6");
        assert_eq!(p.settled, Some(1));
        assert_eq!(p.settled_at(), Some(plan.boundaries[1]));
        assert_eq!(p.answer_settled_step(), Some(plan.reasoning_steps[1]));
        assert_eq!(p.tokens_after_settle(), Some(plan.think_end - plan.boundaries[1]));
        assert!(!p.points[0].matches && p.points[1..].iter().all(|x| x.matches));
        // Never settled: the last answer differs.
        let mut o2 = outcome.clone();
        if let Some(last) = o2.answers.last_mut() {
            last.text = " 7.".into();
        }
        let p2 = summarize(&steps, &plan, &cfg, &o2);
        assert_eq!(p2.settled, None);
        assert_eq!(p2.tokens_after_settle(), None);
    }
}
