//! The concatenated output text of a run with a map from byte offsets back to step indices,
//! the common ground of segmentation and flags. Depends on `trace` only.

use std::ops::Range;

use crate::trace::Step;

/// All steps' text in order, and where each step's text starts in it.
#[derive(Debug, Clone, Default)]
pub struct StepText {
    pub text: String,
    starts: Vec<usize>,
}

impl StepText {
    pub fn new(steps: &[Step]) -> Self {
        let len = steps.iter().map(|s| s.text.len()).sum();
        let mut text = String::with_capacity(len);
        let mut starts = Vec::with_capacity(steps.len());
        for s in steps {
            starts.push(text.len());
            text.push_str(&s.text);
        }
        StepText { text, starts }
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The step whose text holds byte `byte` (a step with empty text never does).
    pub fn step_at(&self, byte: usize) -> usize {
        self.starts.partition_point(|&s| s <= byte).saturating_sub(1)
    }

    /// The half-open range of steps whose text overlaps the non-empty byte range `bytes`.
    pub fn steps_of(&self, bytes: Range<usize>) -> Range<usize> {
        let start = self.step_at(bytes.start);
        let end = self.step_at(bytes.end.saturating_sub(1).max(bytes.start)) + 1;
        start..end
    }

    /// Byte offset where step `i` starts (the text length past the last step).
    pub fn start_of(&self, i: usize) -> usize {
        self.starts.get(i).copied().unwrap_or(self.text.len())
    }

    /// The byte range of the steps `steps`.
    pub fn bytes_of(&self, steps: Range<usize>) -> Range<usize> {
        self.start_of(steps.start)..self.start_of(steps.end)
    }
}

/// Han ideographs and Japanese kana: written without spaces, so each character is a word.
pub fn is_ideographic(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
        | 0x20000..=0x2FA1F) // Extensions B.. and compatibility supplement
}

/// Appends `bytes` mapped to steps onto `out`, keeping the step ranges in `out` sorted and
/// disjoint: a span that starts in the step where the previous one ended begins after it, and
/// one that lies wholly inside the previous one's steps is merged into it. Returns whether a
/// new range was pushed.
pub fn push_disjoint(out: &mut Vec<Range<usize>>, text: &StepText, bytes: Range<usize>) -> bool {
    if bytes.is_empty() {
        return false;
    }
    let mut r = text.steps_of(bytes);
    if let Some(prev) = out.last_mut() {
        if r.start < prev.end {
            if r.end <= prev.end {
                return false;
            }
            r.start = prev.end;
        }
    }
    out.push(r);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Phase;

    pub(crate) fn steps(texts: &[&str]) -> Vec<Step> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| Step {
                index: i as u32,
                token_id: i as u32,
                text: (*t).to_string(),
                logprob: -0.1,
                entropy: 0.5,
                phase: Phase::Think,
                t_us: i as u64 * 1000,
                top: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn bytes_map_back_to_steps_skipping_empty_ones() {
        let t = StepText::new(&steps(&["ab", "", "c", "de"]));
        assert_eq!(t.text, "abcde");
        assert_eq!(t.step_at(0), 0);
        assert_eq!(t.step_at(2), 2);
        assert_eq!(t.step_at(4), 3);
        assert_eq!(t.steps_of(1..3), 0..3);
        assert_eq!(t.bytes_of(2..4), 2..5);
    }
}
