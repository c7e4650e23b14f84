//! Segmentation of a run's output into think and answer, words, sentences and reasoning
//! steps (paragraphs and discourse markers such as "Wait" or "等等"), every one as a
//! half-open range of step indices. The TUI moves by these ranges. Depends on `trace` only.

use std::ops::Range;

use super::text::{is_ideographic, push_disjoint, StepText};
use crate::trace::{Phase, Step};

/// The structure of a run's output. All ranges are half-open ranges of step indices, sorted
/// and pairwise disjoint within each list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Segments {
    /// From the first to the last thinking step.
    pub think: Option<Range<usize>>,
    /// From the first to the last answer step.
    pub answer: Option<Range<usize>>,
    pub words: Vec<Range<usize>>,
    pub sentences: Vec<Range<usize>>,
    pub steps: Vec<ReasoningStep>,
}

/// One reasoning step: a paragraph, or the part of one from a discourse marker on.
#[derive(Debug, Clone, PartialEq)]
pub struct ReasoningStep {
    pub span: Range<usize>,
    /// The discourse marker that opens the step, as written ("Wait", "Let me check", "等等").
    pub marker: Option<String>,
}

/// A discourse marker that opens a reasoning step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub text: &'static str,
    /// Whether it reverses what came before ("Wait", "Actually"): a backtrack.
    pub backtrack: bool,
}

const fn m(text: &'static str, backtrack: bool) -> Marker {
    Marker { text, backtrack }
}

/// Markers in English and Chinese, longest first where one is a prefix of another.
pub const MARKERS: &[Marker] = &[
    m("But wait", true),
    m("Wait", true),
    m("Actually", true),
    m("Hold on", true),
    m("On second thought", true),
    m("Oops", true),
    m("No, wait", true),
    m("Hmm", false),
    m("Hm", false),
    m("Alternatively", false),
    m("Another approach", false),
    m("Let me check", false),
    m("Let me verify", false),
    m("Let me double-check", false),
    m("Let me double check", false),
    m("Let me recheck", false),
    m("Let me re-check", false),
    m("Let me reconsider", false),
    m("Let me think again", false),
    m("Let me try", false),
    m("Double-check", false),
    m("However", false),
    m("But", false),
    m("等一下", true),
    m("等等", true),
    m("不对", true),
    m("其实", true),
    m("实际上", true),
    m("嗯", false),
    m("或者", false),
    m("另一种方法", false),
    m("让我检查", false),
    m("让我验证", false),
    m("让我再", false),
    m("我再检查", false),
    m("再检查", false),
    m("但是", false),
    m("不过", false),
    m("然而", false),
];

/// The marker `sentence` starts with, ignoring leading markdown (`**`, `-`, `#`, `>`).
pub fn marker_of(sentence: &str) -> Option<(&'static Marker, &str)> {
    let s = sentence.trim_start_matches(|c: char| c.is_whitespace() || "*#->_".contains(c));
    MARKERS.iter().find_map(|mk| {
        let rest = s.strip_prefix(mk.text)?;
        let ascii = mk.text.is_ascii();
        let next = rest.chars().next();
        // "Hmmm" is "Hmm"; "Butter" is not "But".
        let boundary = !ascii
            || match next {
                None => true,
                Some('m') => mk.text.starts_with("Hm"),
                Some(c) => !c.is_alphanumeric(),
            };
        boundary.then(|| (mk, &s[..mk.text.len()]))
    })
}

/// Segments a run's steps. Sentences and reasoning steps never cross the think/answer border.
pub fn segment(steps: &[Step]) -> Segments {
    segment_text(&StepText::new(steps), steps)
}

/// `segment` over text already joined.
pub fn segment_text(text: &StepText, steps: &[Step]) -> Segments {
    let mut seg = Segments {
        think: phase_range(steps, Phase::Think),
        answer: phase_range(steps, Phase::Answer),
        words: words(text, 0..text.text.len()),
        ..Segments::default()
    };
    for region in regions(steps) {
        let bytes = text.bytes_of(region);
        for s in sentences(&text.text, bytes) {
            let pushed = push_disjoint(&mut seg.sentences, text, s.bytes.clone());
            let marker = marker_of(&text.text[s.bytes.clone()]).map(|(_, t)| t.to_string());
            let opens_step = s.paragraph_start || marker.is_some();
            let Some(span) = seg.sentences.last().cloned() else { continue };
            match seg.steps.last_mut() {
                // A sentence inside the previous one's tokens stays in that step.
                Some(last) if !pushed => last.span.end = last.span.end.max(span.end),
                Some(last) if !opens_step => last.span.end = span.end,
                _ => seg.steps.push(ReasoningStep { span, marker }),
            }
        }
    }
    seg
}

fn phase_range(steps: &[Step], phase: Phase) -> Option<Range<usize>> {
    let first = steps.iter().position(|s| s.phase == phase)?;
    let last = steps.iter().rposition(|s| s.phase == phase)?;
    Some(first..last + 1)
}

/// Maximal runs of steps with the same phase.
fn regions(steps: &[Step]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        match out.last_mut() {
            Some(r) if steps[r.start].phase == s.phase => r.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

/// Words: runs of non-space characters, each ideograph a word of its own.
fn words(text: &StepText, bytes: Range<usize>) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.text[bytes.clone()].char_indices() {
        let at = bytes.start + i;
        if c.is_whitespace() || is_ideographic(c) {
            if let Some(s) = start.take() {
                push_disjoint(&mut out, text, s..at);
            }
            if is_ideographic(c) {
                push_disjoint(&mut out, text, at..at + c.len_utf8());
            }
        } else if start.is_none() {
            start = Some(at);
        }
    }
    if let Some(s) = start {
        push_disjoint(&mut out, text, s..bytes.end);
    }
    out
}

/// A sentence's bytes and whether it opens a paragraph.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sentence {
    pub bytes: Range<usize>,
    pub paragraph_start: bool,
}

const CLOSERS: &[char] = &['"', '\'', ')', ']', '”', '’', '」', '』', '）', '*'];

/// Sentences of `text[bytes]`: ended by `.`, `!`, `?` or `…` before a space, by `。！？；`,
/// or by a line break. A blank line starts a paragraph. `1.` at a line start does not end one.
pub(crate) fn sentences(text: &str, bytes: Range<usize>) -> Vec<Sentence> {
    let part = &text[bytes.clone()];
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut newlines = 2usize; // the region start counts as a paragraph start
    let mut para = true;
    let mut chars = part.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\n' {
            if let Some(s) = start.take() {
                out.push(Sentence {
                    bytes: bytes.start + s..bytes.start + i,
                    paragraph_start: para,
                });
                para = false;
            }
            newlines += 1;
            continue;
        }
        if c.is_whitespace() {
            continue;
        }
        let s = *start.get_or_insert_with(|| {
            if newlines >= 2 {
                para = true;
            }
            i
        });
        newlines = 0;
        let ends = match c {
            '。' | '！' | '？' | '；' => true,
            '.' | '!' | '?' | '…' => {
                let next = chars.clone().find(|(_, c)| !CLOSERS.contains(c)).map(|(_, c)| c);
                let list_item = c == '.' && part[s..i].chars().all(|c| c.is_ascii_digit());
                next.is_none_or(char::is_whitespace) && !list_item
            }
            _ => false,
        };
        if ends {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if !CLOSERS.contains(&d) {
                    break;
                }
                end = j + d.len_utf8();
                chars.next();
            }
            out.push(Sentence { bytes: bytes.start + s..bytes.start + end, paragraph_start: para });
            para = false;
            start = None;
        }
    }
    if let Some(s) = start {
        let end = part.trim_end().len();
        out.push(Sentence { bytes: bytes.start + s..bytes.start + end, paragraph_start: para });
    }
    out
}

#[cfg(test)]
#[path = "segment_tests.rs"]
mod tests;
