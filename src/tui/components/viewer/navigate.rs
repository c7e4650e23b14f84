//! Moving the viewer's cursor: by token, line, word, sentence and reasoning step (from
//! `analysis::segment`), to flags, search matches and low-confidence tokens, keeping it inside
//! a viewport `h` rows high. Part of the viewer's update; no I/O. May import the viewer and
//! `components`.

use super::{Unit, Viewer};
use crate::tui::components::Effect;

impl Viewer {
    /// Steps in the run shown.
    pub fn len(&self) -> usize {
        self.view.as_ref().map_or(0, crate::tui::run_view::RunView::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Puts the cursor on `step` (clamped), scrolling a viewport of `h` rows to it.
    pub fn move_to(&mut self, step: usize, h: usize) {
        let n = self.len();
        if n == 0 {
            return;
        }
        self.cursor = step.min(n - 1);
        let Some(v) = &self.view else { return };
        let line = v.line_of(self.cursor);
        if line < self.top_line {
            self.top_line = line;
        } else if line >= self.top_line + h {
            self.top_line = line + 1 - h;
        }
    }

    pub(super) fn find_step(&self, forward: bool, pred: impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.len();
        if forward {
            (self.cursor + 1..n).find(|&i| pred(i))
        } else {
            (0..self.cursor).rev().find(|&i| pred(i))
        }
    }

    pub(super) fn jump_flag(&mut self, forward: bool, h: usize) -> Effect {
        let Some(v) = &self.view else { return Effect::None };
        let c = self.cursor as u32;
        let target = if forward {
            v.flags.iter().map(|f| f.start).find(|&s| s > c)
        } else {
            v.flags.iter().rev().map(|f| f.start).find(|&s| s < c)
        };
        match target {
            Some(t) => self.move_to(t as usize, h),
            None if v.flags.is_empty() => return Effect::Message("this run has no flags".into()),
            None => return Effect::Message("no more flags".into()),
        }
        Effect::None
    }

    pub(super) fn jump_match(&mut self, forward: bool, h: usize) -> Effect {
        let Some(v) = &self.view else { return Effect::None };
        if self.matches.is_empty() {
            return Effect::Message(if self.search.is_empty() {
                "no search; press / to search".into()
            } else {
                format!("'{}' not found", self.search)
            });
        }
        let (start, end) = (v.offsets[self.cursor], v.offsets[self.cursor + 1]);
        let pick = if forward {
            self.matches.iter().find(|m| m.0 >= end).or(self.matches.first())
        } else {
            self.matches.iter().rev().find(|m| m.0 < start).or(self.matches.last())
        };
        if let Some(&(b, _)) = pick {
            let s = v.step_at_byte(b);
            self.move_to(s, h);
        }
        Effect::None
    }

    /// Searches the run for `needle` (ASCII case folded) and moves to the first match at or
    /// after the cursor.
    pub fn run_search(&mut self, needle: &str, h: usize) -> Effect {
        self.search = needle.to_string();
        self.matches.clear();
        let Some(v) = &self.view else { return Effect::None };
        if needle.is_empty() {
            return Effect::None;
        }
        let hay = v.text.to_ascii_lowercase();
        let pat = needle.to_ascii_lowercase();
        self.matches = hay.match_indices(&pat).map(|(b, m)| (b, b + m.len())).collect();
        // The first match at or after the cursor.
        let here = v.offsets[self.cursor];
        match self.matches.iter().find(|m| m.1 > here).or(self.matches.first()) {
            Some(&(b, _)) => {
                let s = v.step_at_byte(b);
                self.move_to(s, h);
                Effect::None
            }
            None => Effect::Message(format!("'{needle}' not found")),
        }
    }

    /// Moves to the start of the next (or this / the previous) word, sentence or reasoning
    /// step, as the analysis module segments the run.
    pub(super) fn segment_move(&mut self, what: Unit, forward: bool, h: usize) -> Effect {
        let Some(v) = &mut self.view else { return Effect::None };
        v.resegment();
        let seg = &v.segments;
        let starts: Vec<usize> = match what {
            Unit::Word => seg.words.iter().map(|r| r.start).collect(),
            Unit::Sentence => seg.sentences.iter().map(|r| r.start).collect(),
            Unit::Step => seg.steps.iter().map(|s| s.span.start).collect(),
        };
        let c = self.cursor;
        let target = if forward {
            starts.iter().copied().find(|&s| s > c)
        } else {
            starts.iter().rev().copied().find(|&s| s < c)
        };
        match target {
            Some(t) => {
                self.move_to(t, h);
                Effect::None
            }
            None => {
                let name = match what {
                    Unit::Word => "word",
                    Unit::Sentence => "sentence",
                    Unit::Step => "reasoning step",
                };
                Effect::Message(format!("no {} {name}", if forward { "next" } else { "previous" }))
            }
        }
    }

    pub(super) fn line_move(&mut self, delta: isize, h: usize) {
        let Some(v) = &self.view else { return };
        let line = v.line_of(self.cursor) as isize + delta;
        let line = line.clamp(0, v.lines.len() as isize - 1) as usize;
        let s = v.first_step_of_line(line);
        self.move_to(s, h);
    }
}
