//! Structural flags: the `<think>` block's integrity (missing open or close, cut off by the
//! token limit, empty answer, reasoning leaking into the answer) and a final answer that
//! differs from the conclusion of the chain of thought. Depends on `trace` only.

use std::ops::Range;

use super::flags::{auto, quote, sentence_at};
use super::segment::{Segments, MARKERS};
use super::text::StepText;
use crate::trace::{Flag, FlagKind, Phase, Run, Severity, Step, StopReason};

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// Flags about the think block of a run.
pub fn think_integrity(run: &Run, steps: &[Step], text: &StepText, seg: &Segments) -> Vec<Flag> {
    let mut out = Vec::new();
    let Some(last) = steps.len().checked_sub(1) else { return out };
    let think_bytes = seg.think.clone().map(|r| text.bytes_of(r));
    let opened_here = think_bytes.as_ref().is_some_and(|b| text.text[b.clone()].contains(OPEN));
    let opened_by_prompt = run.rendered_prompt.trim_end().ends_with(OPEN);
    let close_at = text.text.find(CLOSE);
    let flag = |span: Range<usize>, sev, detail: &str| {
        auto(span, FlagKind::ThinkIntegrity, sev, detail.to_string())
    };
    if let Some(at) = close_at {
        if !opened_here && !opened_by_prompt && !run.rendered_prompt.is_empty() {
            let i = text.step_at(at);
            out.push(flag(i..i + 1, Severity::Warn, "'</think>' without an opening '<think>'"));
        }
    }
    let ends_thinking = steps[last].phase == Phase::Think;
    if ends_thinking && seg.think.is_some() {
        let span = last..last + 1;
        match run.stop {
            Some(StopReason::MaxTokens | StopReason::ContextFull) => out.push(flag(
                span,
                Severity::Error,
                &format!(
                    "thinking cut off by the token limit after {} tokens, no answer",
                    seg.think.as_ref().map_or(0, ExactSizeIterator::len)
                ),
            )),
            Some(StopReason::Eos) => out.push(flag(
                span,
                Severity::Error,
                "generation ended inside '<think>': thinking never closed",
            )),
            Some(StopReason::User) | None => {}
        }
    }
    let answer_text = seg.answer.clone().map(|r| &text.text[text.bytes_of(r)]).unwrap_or("");
    if seg.think.is_some() && !ends_thinking && answer_text.trim().is_empty() {
        let (sev, detail) = match run.stop {
            Some(StopReason::MaxTokens | StopReason::ContextFull) => {
                (Severity::Error, "cut off by the token limit before the answer")
            }
            _ => (Severity::Error, "empty answer after '</think>'"),
        };
        out.push(flag(seg.answer.clone().unwrap_or(last..last + 1), sev, detail));
    }
    if let Some(answer) = seg.answer.clone() {
        out.extend(leaks(text, seg, answer));
    }
    out
}

/// Reasoning in the answer: think tags, or steps opened by a backtracking marker.
fn leaks(text: &StepText, seg: &Segments, answer: Range<usize>) -> Vec<Flag> {
    let mut out = Vec::new();
    let bytes = text.bytes_of(answer.clone());
    for tag in [OPEN, CLOSE] {
        if let Some(at) = text.text[bytes.clone()].find(tag) {
            let i = text.step_at(bytes.start + at);
            let detail = format!("reasoning leaks into the answer: '{tag}' after the think block");
            out.push(auto(i..i + 1, FlagKind::ThinkIntegrity, Severity::Warn, detail));
        }
    }
    for st in seg.steps.iter().filter(|s| answer.start <= s.span.start && s.span.end <= answer.end)
    {
        let Some(m) = &st.marker else { continue };
        if MARKERS.iter().any(|mk| mk.text == m && mk.backtrack) {
            let detail = format!("reasoning leaks into the answer: {}", quote(m, 20));
            let span = sentence_at(seg, st.span.start);
            out.push(auto(span, FlagKind::ThinkIntegrity, Severity::Warn, detail));
        }
    }
    out
}

/// Where an answer was stated: its text and its byte range.
#[derive(Debug, Clone, PartialEq)]
pub struct Stated {
    pub value: String,
    pub bytes: Range<usize>,
    pub boxed: bool,
}

/// The last `\boxed{...}` in `text[bytes]`, else the last "answer is ..." statement.
pub fn stated_answer(text: &str, bytes: Range<usize>) -> Option<Stated> {
    let part = &text[bytes.clone()];
    if let Some(at) = part.rfind("\\boxed{") {
        let inner_start = at + "\\boxed{".len();
        let mut depth = 1usize;
        for (i, c) in part[inner_start..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                let end = inner_start + i;
                return Some(Stated {
                    value: part[inner_start..end].to_string(),
                    bytes: bytes.start + at..bytes.start + end + 1,
                    boxed: true,
                });
            }
        }
    }
    const CUES: &[&str] = &[
        "answer is",
        "answer:",
        "answer =",
        "answer would be",
        "answer should be",
        "答案是",
        "答案为",
        "答案：",
        "答案:",
    ];
    let lower = part.to_ascii_lowercase();
    let (at, cue) = CUES.iter().filter_map(|c| lower.rfind(c).map(|a| (a, *c))).max()?;
    let from = at + cue.len();
    let rest = &part[from..];
    let end = rest
        .char_indices()
        .find(|&(i, c)| {
            matches!(c, '\n' | '。' | '，' | ';' | '；')
                || (matches!(c, '.' | ',')
                    && !rest[i + 1..].starts_with(|d: char| d.is_ascii_digit()))
        })
        .map_or(rest.len(), |(i, _)| i);
    let value = rest[..end].trim().trim_matches(|c: char| c == '*' || c.is_whitespace());
    (!value.is_empty()).then(|| Stated {
        value: value.to_string(),
        bytes: bytes.start + from..bytes.start + from + end,
        boxed: false,
    })
}

/// The numbers in `s` (commas inside numbers dropped), sorted.
fn numbers(s: &str) -> Vec<f64> {
    let cleaned = s.replace(',', "");
    let mut out: Vec<f64> = Vec::new();
    let mut cur = String::new();
    for c in cleaned.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() || (c == '.' && !cur.is_empty()) || (c == '-' && cur.is_empty()) {
            cur.push(c);
        } else {
            if let Ok(v) = cur.trim_end_matches('.').parse::<f64>() {
                out.push(v);
            }
            cur.clear();
        }
    }
    out.sort_by(f64::total_cmp);
    out
}

/// Whether the sorted list `a` is a sub-multiset of the sorted list `b`.
pub(super) fn subset(a: &[f64], b: &[f64]) -> bool {
    let mut j = 0;
    for x in a {
        while j < b.len() && b[j] < *x - 1e-9 {
            j += 1;
        }
        if j == b.len() || (b[j] - x).abs() > 1e-9 {
            return false;
        }
        j += 1;
    }
    true
}

fn normalized(s: &str) -> String {
    s.replace("\\text{", "{")
        .replace("\\!", "")
        .replace("\\,", "")
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '$' | '{' | '}' | '*'))
        .collect::<String>()
        .trim_end_matches('.')
        .to_lowercase()
}

/// Whether two stated answers disagree: neither's numbers hold the other's, or both are boxed and their
/// normalized texts differ. Free-text statements without numbers are never compared.
pub fn disagree(a: &Stated, b: &Stated) -> bool {
    let (na, nb) = (numbers(&a.value), numbers(&b.value));
    if !na.is_empty() && !nb.is_empty() {
        // "23 and 12" against "12" agrees: one list must hold the other.
        return !subset(&na, &nb) && !subset(&nb, &na);
    }
    a.boxed && b.boxed && normalized(&a.value) != normalized(&b.value)
}

/// The final answer against the conclusion the chain of thought reached.
pub fn answer_mismatch(text: &StepText, seg: &Segments) -> Option<Flag> {
    let (think, answer) = (seg.think.clone()?, seg.answer.clone()?);
    let mut think_bytes = text.bytes_of(think);
    if text.text[think_bytes.clone()].ends_with(CLOSE) {
        think_bytes.end -= CLOSE.len();
    }
    let concluded = stated_answer(&text.text, think_bytes)?;
    let given = stated_answer(&text.text, text.bytes_of(answer))?;
    disagree(&given, &concluded).then(|| {
        let detail = format!(
            "answer {} but the reasoning concluded {}",
            quote(&given.value, 30),
            quote(&concluded.value, 30)
        );
        auto(text.steps_of(given.bytes.clone()), FlagKind::AnswerMismatch, Severity::Warn, detail)
    })
}
