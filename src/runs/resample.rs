//! Resampling from a point of a recorded run: the child runs and engine requests of N
//! continuations (the prefix before the point forced, other seeds), the final answer of a run,
//! and the summary of how often it changed (the counterfactual importance of what came after
//! that point). Shared by `thinkdbg resample` and the terminal UI's resample panel. Depends on
//! `replay`, `analysis`, `store`, `trace` and the engine's request type; never on `cli` or `tui`.

use crate::analysis::answer::{agree, extract, Answer};
use crate::analysis::integrity::{stated_answer, Stated};
use crate::analysis::segment;
use crate::analysis::text::StepText;
use crate::engine::generate::RunRequest;
use crate::runs::replay::{Error, Parent, Result};
use crate::sanitize::for_terminal;
use crate::store::Store;
use crate::trace::{Run, RunId, SamplerSpec, Step};

/// The temperature used when the parent was greedy (greedy continuations would all agree).
pub const GREEDY_FALLBACK_TEMPERATURE: f32 = 0.7;

/// How many continuations when neither the user nor the config file says.
pub const DEFAULT_SAMPLES: usize = 8;

/// `[resample] samples` of the user's `config.toml` (see `analysis::config`), else of the
/// built-in `assets/config.toml`, else `DEFAULT_SAMPLES`.
pub fn configured_samples() -> Result<usize> {
    let from = samples_in;
    if let Some(path) = crate::analysis::config::user_config_path().filter(|p| p.is_file()) {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Invalid(format!("reading '{}': {e}", path.display())))?;
        if let Some(n) = from(&path, &text)? {
            return Ok(n);
        }
    }
    let builtin = std::path::Path::new("assets/config.toml (built in)");
    Ok(from(builtin, crate::analysis::config::DEFAULT_CONFIG)?.unwrap_or(DEFAULT_SAMPLES))
}

/// The most continuations one resample starts.
pub const MAX_SAMPLES: usize = 256;

/// `[resample] samples` of one config file's text, if it sets it.
fn samples_in(path: &std::path::Path, text: &str) -> Result<Option<usize>> {
    let bad = |what: String| Error::Invalid(format!("'{}': {what}", path.display()));
    let table: toml::Table = text.parse().map_err(|e| bad(format!("{e}")))?;
    let Some(v) = table.get("resample").and_then(|r| r.get("samples")) else {
        return Ok(None);
    };
    match v.as_integer() {
        Some(n) if n >= 1 && n as usize <= MAX_SAMPLES => Ok(Some(n as usize)),
        _ => Err(bad(format!("key 'resample.samples' must be 1 to {MAX_SAMPLES}, not {v}"))),
    }
}

/// The token step where reasoning step `n` (0-based, as `thinkdbg show` and the TUI number
/// them) starts: resampling from it regenerates that step and everything after it.
pub fn reasoning_step_start(parent: &Parent, n: usize) -> Result<u32> {
    let steps = segment(&parent.steps).steps;
    match steps.get(n) {
        Some(s) => Ok(s.span.start as u32),
        None => Err(Error::Invalid(format!(
            "run '{}' has {} reasoning steps; there is no step {n}",
            parent.run.id,
            steps.len()
        ))),
    }
}

/// Where a continuation's text (its steps from `at` on) first differs from the parent's, by
/// words (whitespace-insensitive): up to `words` of the continuation's words from there, with
/// `…` where text was left out; `None` when the two texts are the same.
pub fn first_difference(parent: &[Step], child: &[Step], at: u32, words: usize) -> Option<String> {
    let text = |steps: &[Step]| -> String {
        steps.iter().filter(|s| s.index >= at).map(|s| s.text.as_str()).collect()
    };
    let (a, b) = (text(parent), text(child));
    let (wa, wb): (Vec<&str>, Vec<&str>) =
        (a.split_whitespace().collect(), b.split_whitespace().collect());
    let same = wa.iter().zip(&wb).take_while(|(x, y)| x == y).count();
    if same == wa.len() && same == wb.len() {
        return None;
    }
    let shown: Vec<&str> = wb.iter().skip(same).take(words).copied().collect();
    let mut out = String::new();
    if same > 0 {
        out.push('…');
    }
    out.push_str(&shown.join(" "));
    if same + shown.len() < wb.len() {
        out.push('…');
    }
    if shown.is_empty() {
        out.push_str("(ends here)");
    }
    Some(out)
}

/// The sampler of the continuations: the parent's, at `temperature` if given, else at the
/// parent's temperature (or `GREEDY_FALLBACK_TEMPERATURE` when the parent was greedy). Fails
/// when `max_tokens` does not reach past `at` or the sampler is invalid.
pub fn sampler(parent: &SamplerSpec, temperature: Option<f32>, at: u32) -> Result<SamplerSpec> {
    let mut s = parent.clone();
    s.temperature = temperature.unwrap_or(if s.temperature > 0.0 {
        s.temperature
    } else {
        GREEDY_FALLBACK_TEMPERATURE
    });
    if s.max_tokens <= at as usize {
        return Err(Error::Invalid(format!(
            "the resample starts at step {at} but at most {} tokens are generated; raise max tokens",
            s.max_tokens
        )));
    }
    crate::engine::sampler::Sampler::new(&s)?;
    Ok(s)
}

/// Creates `samples` child runs of `parent` in its session (parent = it, fork step `at`,
/// labels `resample@AT/I`, seeds after the sampler's) with the request that records each.
pub fn plan(
    store: &Store,
    parent: &Parent,
    at: u32,
    samples: usize,
    sampler: &SamplerSpec,
) -> Result<Vec<(Run, RunRequest)>> {
    if samples == 0 || samples > MAX_SAMPLES {
        return Err(Error::Invalid(format!("'samples' is {samples}; give 1 to {MAX_SAMPLES}")));
    }
    let prefix = parent.prefix(at)?;
    let mut jobs = Vec::with_capacity(samples);
    for i in 0..samples {
        let mut s = sampler.clone();
        s.seed = sampler.seed.wrapping_add(1 + i as u64);
        let request = RunRequest {
            prompt: parent.prompt()?,
            sampler: s.clone(),
            top_logprobs: parent.top_logprobs(),
            forced: prefix.clone(),
            forced_text: None,
            routing: crate::trace::RoutingDetail::Selected,
            prompt_routing: true,
        };
        let child = parent.child(store, at, format!("resample@{at}/{}", i + 1), s)?;
        jobs.push((child, request));
    }
    Ok(jobs)
}

/// The final answer of a run, as `analysis::answer` finds it (`\boxed{}`, "the answer is
/// ...", "Answer: ...", yes / no, a final number, else the last sentence) in its answer part
/// (or in all its text when it has none), with the answer text itself.
#[derive(Debug, Clone)]
pub struct FinalAnswer {
    /// The `\boxed{}` or "the answer is ..." statement, when there is one.
    pub stated: Option<Stated>,
    /// The answer found by any rule, compared by value where numeric.
    pub answer: Option<Answer>,
    pub text: String,
}

impl FinalAnswer {
    pub fn of(steps: &[Step]) -> FinalAnswer {
        let text = StepText::new(steps);
        let seg = segment(steps);
        let bytes = match seg.answer {
            Some(a) => text.bytes_of(a),
            None => 0..text.text.len(),
        };
        let answer = text.text[bytes.clone()].split_whitespace().collect::<Vec<_>>().join(" ");
        FinalAnswer {
            stated: stated_answer(&text.text, bytes.clone()),
            answer: extract(&text.text, bytes),
            text: answer,
        }
    }

    /// Whether `other` reached a different final answer: compared as found answers (by value
    /// where numeric) when both have one, else as whitespace-normalized answer text.
    pub fn changed(&self, other: &FinalAnswer) -> bool {
        match (&self.answer, &other.answer) {
            (Some(a), Some(b)) => !agree(a, b),
            _ => self.text != other.text,
        }
    }

    /// At most 60 characters of the answer, safe for a terminal.
    pub fn short(&self) -> String {
        let s = self.answer.as_ref().map_or(self.text.as_str(), |s| s.value.as_str());
        let mut out: String = for_terminal(s, false).chars().take(60).collect();
        if s.chars().count() > 60 {
            out.push('…');
        }
        if out.is_empty() {
            out.push_str("(empty)");
        }
        out
    }
}

/// Continuations that reached the same final answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerGroup {
    /// The first member's answer, shortened (`FinalAnswer::short`).
    pub answer: String,
    pub runs: Vec<RunId>,
    /// Whether this answer differs from the original run's.
    pub changed: bool,
}

/// How the continuations' final answers compare with the original's.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub original: String,
    /// Largest group first.
    pub groups: Vec<AnswerGroup>,
    /// Continuations whose answer differs from the original's.
    pub changed: usize,
    pub total: usize,
}

impl Summary {
    /// Groups `answers` (continuation run, its final answer) against `original`.
    pub fn new(original: &FinalAnswer, answers: &[(RunId, FinalAnswer)]) -> Summary {
        let mut reps: Vec<&FinalAnswer> = Vec::new();
        let mut groups: Vec<AnswerGroup> = Vec::new();
        let mut changed = 0;
        for (id, a) in answers {
            let differs = original.changed(a);
            changed += usize::from(differs);
            match reps.iter().position(|r| !r.changed(a)) {
                Some(g) => groups[g].runs.push(*id),
                None => {
                    reps.push(a);
                    groups.push(AnswerGroup {
                        answer: a.short(),
                        runs: vec![*id],
                        changed: differs,
                    });
                }
            }
        }
        groups.sort_by_key(|g| std::cmp::Reverse(g.runs.len()));
        Summary { original: original.short(), groups, changed, total: answers.len() }
    }

    /// The fraction of continuations whose answer changed.
    pub fn importance(&self) -> f64 {
        self.changed as f64 / self.total.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Phase;

    fn steps(text: &[(&str, Phase)]) -> Vec<Step> {
        text.iter()
            .enumerate()
            .map(|(i, (t, p))| Step {
                index: i as u32,
                token_id: 0,
                text: (*t).into(),
                logprob: 0.0,
                entropy: 0.0,
                phase: *p,
                t_us: 0,
                top: vec![],
            })
            .collect()
    }

    #[test]
    fn answers_compare_by_stated_value_then_by_text() {
        use Phase::*;
        let a = FinalAnswer::of(&steps(&[
            ("<think>6*7</think>", Think),
            ("The answer is 42.", Answer),
        ]));
        let b = FinalAnswer::of(&steps(&[
            ("<think>hm</think>", Think),
            ("So the answer is 42", Answer),
        ]));
        let c =
            FinalAnswer::of(&steps(&[("<think>hm</think>", Think), ("The answer is 41.", Answer)]));
        assert!(!a.changed(&b));
        assert!(a.changed(&c));
        let d = FinalAnswer::of(&steps(&[("Paris  is nice", Answer)]));
        let e = FinalAnswer::of(&steps(&[("Paris is\nnice", Answer)]));
        let f = FinalAnswer::of(&steps(&[("Lyon", Answer)]));
        assert!(!d.changed(&e) && d.changed(&f));
        assert_eq!(a.short(), "42");
    }

    #[test]
    fn a_continuation_is_shown_from_where_its_words_part_from_the_parents() {
        use Phase::Answer;
        let words = |t: &[&str]| steps(&t.iter().map(|w| (*w, Answer)).collect::<Vec<_>>());
        let parent = words(&["To", " check", " if", " 91", " is", " prime,", " try", " 7."]);
        // The first two steps are the forced prefix; only what follows is compared.
        let same_prefix = words(&["X", "Y", " if", " 91", " is", " prime,", " try", " 7."]);
        assert_eq!(first_difference(&parent, &same_prefix, 2, 6), None);
        let other = words(&[
            "To", " check", " if", " 91", "  is", " odd,", " it", " is", " not", " even", " at",
            " all",
        ]);
        assert_eq!(first_difference(&parent, &other, 2, 3).as_deref(), Some("…odd, it is…"));
        let shorter = words(&["To", " check", " if", " 91"]);
        assert_eq!(first_difference(&parent, &shorter, 2, 3).as_deref(), Some("…(ends here)"));
        let at_once = words(&["To", " check", " Since"]);
        assert_eq!(first_difference(&parent, &at_once, 2, 3).as_deref(), Some("Since"));
    }

    #[test]
    fn the_sample_count_comes_from_the_config_text() {
        let p = std::path::Path::new("c.toml");
        let builtin = samples_in(p, crate::analysis::config::DEFAULT_CONFIG).unwrap();
        assert_eq!(builtin, Some(DEFAULT_SAMPLES));
        assert_eq!(samples_in(p, "[resample]\nsamples = 3\n").unwrap(), Some(3));
        assert_eq!(samples_in(p, "[analysis.entropy]\nwindow = 3\n").unwrap(), None);
        let err = samples_in(p, "[resample]\nsamples = 0\n").unwrap_err().to_string();
        assert!(err.contains("'c.toml'") && err.contains("'resample.samples'"), "{err}");
    }

    #[test]
    fn summary_groups_equal_answers_and_counts_the_changed_ones() {
        use Phase::Answer;
        let ans = |t: &str| FinalAnswer::of(&steps(&[(t, Answer)]));
        let original = ans("The answer is 4.");
        let answers = vec![
            (RunId(1), ans("The answer is 5.")),
            (RunId(2), ans("So the answer is 4")),
            (RunId(3), ans("the answer is 5")),
            (RunId(4), ans("The answer is 5!")),
            (RunId(5), ans("no idea")),
        ];
        let s = Summary::new(&original, &answers);
        assert_eq!(s.total, 5);
        assert_eq!(s.changed, 4);
        assert!((s.importance() - 0.8).abs() < 1e-9);
        let counts: Vec<(usize, bool)> =
            s.groups.iter().map(|g| (g.runs.len(), g.changed)).collect();
        assert_eq!(counts, vec![(3, true), (1, false), (1, true)]);
        assert_eq!(s.groups[0].runs, vec![RunId(1), RunId(3), RunId(4)]);
        assert_eq!(s.groups.iter().map(|g| g.runs.len()).sum::<usize>(), s.total);
        assert_eq!(s.original, "4");
    }
}
