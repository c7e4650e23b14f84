//! The run viewer: one run shown on the trace, flags and routing screens, which share its
//! state: the `RunView`, the token cursor and the viewport's first line, the span mark
//! (visual selection), what the text is coloured by, the MoE layer, the search and its
//! matches, the selected row of the Flags list and the run followed live. Keys of those
//! screens (`update_trace`, `update_flags`), movement (`navigate.rs`), opening the annotation
//! and resample dialogs on the selection, and a followed run's events (`on_engine`) change it
//! here; storing and deleting annotations is `App`'s (asked for with `Effect::Delete` and
//! `Effect::Submit`). Drawing is in `draw/`, one file per pane.
//!
//! May import `components`, `run_view`, `theme`, `action`, `provenance` and the crate's
//! `analysis`, `record`, `runs`, `trace`, `export`, `engine::lens` and `tui::text`.

pub mod draw;
pub mod lens;
mod navigate;

use super::ctx::Ctx;
use super::flag_editor::FlagEditor;
use super::note_editor::NoteEditor;
use super::resample::form::ResampleForm;
use super::{Annotation, Effect, Overlay, Screen};
use crate::analysis::experts::{mask, Association, Counts, Marker};
use crate::record::Event;
use crate::runs::resample;
use crate::trace::{Flag, Origin, RunId, RunStatus, StopReason};
use crate::tui::action::Action;
use crate::tui::run_view::{RunView, LOW_LOGPROB};

/// What the trace text is coloured by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColourBy {
    Logprob,
    Entropy,
    /// The top expert of the chosen layer (MoE runs only).
    Expert,
    /// DeepConf token confidence (the timeline shows it with the early-stop marker).
    Confidence,
    /// Plain phase colours, with syntax colours in code blocks.
    Syntax,
}

impl ColourBy {
    pub fn label(self) -> &'static str {
        match self {
            ColourBy::Logprob => "logprob",
            ColourBy::Entropy => "entropy",
            ColourBy::Expert => "expert",
            ColourBy::Confidence => "confidence",
            ColourBy::Syntax => "syntax",
        }
    }
}

/// What `w`/`b`, `(`/`)` and `{`/`}` move by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Word,
    Sentence,
    Step,
}

/// One row of the Flags list: a flag (index into the view's flags) or a note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagRow {
    Flag(usize),
    Note(usize),
}

/// Whether step `i` lies in the half-open span (an empty span covers its start).
fn covers(start: u32, end: u32, i: usize) -> bool {
    let i = i as u32;
    start <= i && i < end.max(start + 1)
}

/// The viewer's state.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub view: Option<RunView>,
    pub cursor: usize,
    /// First logical line of the trace viewport.
    pub top_line: usize,
    pub mark: Option<usize>,
    pub colour: ColourBy,
    pub layer: usize,
    pub search: String,
    /// Byte ranges in the run text that match `search`.
    pub matches: Vec<(usize, usize)>,
    pub flag_sel: usize,
    /// The run recording in this process, followed live.
    pub live: Option<RunId>,
    /// The marker whose cognitive experts the routing screen highlights (`cycle_marker`).
    pub marker: Option<Marker>,
    /// Every (layer, expert)'s nPMI with `marker` over the run, highest first.
    pub cognitive: Vec<Association>,
    /// The inspector's layers view (logit lens) and what it computed.
    pub lens: lens::Lens,
}

impl Default for Viewer {
    fn default() -> Viewer {
        Viewer {
            view: None,
            cursor: 0,
            top_line: 0,
            mark: None,
            colour: ColourBy::Logprob,
            layer: 0,
            search: String::new(),
            matches: Vec::new(),
            flag_sel: 0,
            live: None,
            marker: None,
            cognitive: Vec::new(),
            lens: lens::Lens::default(),
        }
    }
}

impl Viewer {
    /// Shows `view` (its code highlighted for the syntect theme `syntax`), the cursor at the
    /// start.
    pub fn set_view(&mut self, mut view: RunView, syntax: &str) {
        view.rehighlight(syntax);
        self.view = Some(view);
        self.cursor = 0;
        self.top_line = 0;
        self.mark = None;
        self.matches.clear();
        self.flag_sel = 0;
        self.layer = 0;
        self.recount_cognitive();
        if self.colour == ColourBy::Expert && !self.view.as_ref().is_some_and(RunView::is_moe) {
            self.colour = ColourBy::Logprob;
        }
    }

    /// The nPMI of every expert with the chosen marker over the run shown (empty when off).
    fn recount_cognitive(&mut self) {
        self.cognitive.clear();
        let (Some(m), Some(v)) = (self.marker, self.view.as_ref()) else { return };
        let routing: Vec<(u32, crate::trace::Routing)> = v
            .routing
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i as u32, r.clone()?)))
            .collect();
        let mut counts = Counts::default();
        counts.add(&routing, &mask(&v.steps, &v.flags, m));
        self.cognitive = counts.associations();
    }

    /// The highlighted experts of `layer`: the chosen marker's top 3 with positive nPMI.
    pub fn cognitive_of(&self, layer: usize) -> Vec<(u16, f64)> {
        self.cognitive
            .iter()
            .filter(|a| usize::from(a.layer) == layer && a.npmi > 0.0 && a.marked > 0)
            .take(3)
            .map(|a| (a.expert, a.npmi))
            .collect()
    }

    /// The id of the run shown.
    pub fn run_id(&self) -> Option<RunId> {
        self.view.as_ref().map(|v| v.run.id)
    }

    /// Keys on the trace and routing screens.
    pub fn update_trace(&mut self, action: Action, cx: &Ctx) -> Effect {
        let Some(v) = &self.view else { return Effect::None };
        let n = v.len();
        let h = cx.trace_height();
        match action {
            Action::NextToken => self.move_to(self.cursor + 1, h),
            Action::PrevToken => self.move_to(self.cursor.saturating_sub(1), h),
            Action::LineDown => self.line_move(1, h),
            Action::LineUp => self.line_move(-1, h),
            Action::PageDown => self.line_move(h as isize, h),
            Action::PageUp => self.line_move(-(h as isize), h),
            Action::Start => self.move_to(0, h),
            Action::End => self.move_to(n.saturating_sub(1), h),
            Action::NextWord => return self.segment_move(Unit::Word, true, h),
            Action::PrevWord => return self.segment_move(Unit::Word, false, h),
            Action::NextSentence => return self.segment_move(Unit::Sentence, true, h),
            Action::PrevSentence => return self.segment_move(Unit::Sentence, false, h),
            Action::NextStep => return self.segment_move(Unit::Step, true, h),
            Action::PrevStep => return self.segment_move(Unit::Step, false, h),
            Action::NextFlag => return self.jump_flag(true, h),
            Action::PrevFlag => return self.jump_flag(false, h),
            Action::NextLowConfidence | Action::PrevLowConfidence => {
                let fwd = action == Action::NextLowConfidence;
                let steps = &v.steps;
                match self.find_step(fwd, |i| steps[i].logprob < LOW_LOGPROB) {
                    Some(i) => self.move_to(i, h),
                    None => return Effect::Message("no more low-confidence tokens".into()),
                }
            }
            Action::NextFork | Action::PrevFork => {
                let fwd = action == Action::NextFork;
                let forks = &v.dynamics.forks;
                let at = if fwd {
                    forks.iter().find(|&&i| i > self.cursor)
                } else {
                    forks.iter().rev().find(|&&i| i < self.cursor)
                };
                match at {
                    Some(&i) => self.move_to(i, h),
                    None if forks.is_empty() => {
                        return Effect::Message("no forking tokens in this run".into())
                    }
                    None => return Effect::Message("no more forking tokens".into()),
                }
            }
            Action::Search => return Effect::Prompt(String::new()),
            Action::SearchNext => return self.jump_match(true, h),
            Action::SearchPrev => return self.jump_match(false, h),
            Action::CycleColour => {
                self.colour = match self.colour {
                    ColourBy::Logprob => ColourBy::Entropy,
                    ColourBy::Entropy if v.is_moe() => ColourBy::Expert,
                    ColourBy::Entropy | ColourBy::Expert => ColourBy::Syntax,
                    ColourBy::Syntax => ColourBy::Confidence,
                    ColourBy::Confidence => ColourBy::Logprob,
                };
            }
            Action::NextLayer if v.layers > 0 => self.layer = (self.layer + 1) % v.layers,
            Action::PrevLayer if v.layers > 0 => {
                self.layer = (self.layer + v.layers - 1) % v.layers;
            }
            Action::Mark => {
                self.mark = if self.mark.is_some() { None } else { Some(self.cursor) };
            }
            Action::CycleMarker if v.is_moe() => {
                self.marker = match self.marker {
                    None => Some(Marker::Think),
                    Some(Marker::Think) => Some(Marker::Backtrack),
                    Some(Marker::Backtrack) => Some(Marker::LanguageSwitch),
                    Some(Marker::LanguageSwitch) => None,
                };
                self.recount_cognitive();
                return Effect::Message(match self.marker {
                    Some(m) => format!("cognitive experts of '{}' highlighted", m.as_str()),
                    None => "cognitive experts: off".into(),
                });
            }
            Action::DeleteAnnotation => return self.delete_at_cursor(),
            _ => {}
        }
        Effect::None
    }

    /// Keys on the Flags screen.
    pub fn update_flags(&mut self, action: Action, cx: &Ctx) -> Effect {
        let rows = self.flag_rows();
        match action {
            Action::Down => self.flag_sel = (self.flag_sel + 1).min(rows.len().saturating_sub(1)),
            Action::Up => self.flag_sel = self.flag_sel.saturating_sub(1),
            Action::Open => {
                let Some(v) = &self.view else { return Effect::None };
                let start = match rows.get(self.flag_sel) {
                    Some(FlagRow::Flag(i)) => v.flags.get(*i).map(|f| f.start),
                    Some(FlagRow::Note(i)) => v.notes.get(*i).map(|n| n.start),
                    None => None,
                };
                if let Some(s) = start {
                    self.move_to(s as usize, cx.trace_height());
                    return Effect::Screen(Screen::Trace);
                }
            }
            Action::EditAnnotation => return self.edit_selected_row(),
            Action::DeleteAnnotation => return self.delete_selected_row(),
            _ => {}
        }
        Effect::None
    }

    /// Flag indexes grouped by kind (in the order kinds first appear), as the Flags screen
    /// lists them.
    pub fn flag_order(&self) -> Vec<usize> {
        let Some(v) = &self.view else { return Vec::new() };
        let mut kinds = Vec::new();
        for f in &v.flags {
            if !kinds.contains(&&f.kind) {
                kinds.push(&f.kind);
            }
        }
        kinds
            .iter()
            .flat_map(|k| {
                v.flags.iter().enumerate().filter(move |(_, f)| &f.kind == *k).map(|(i, _)| i)
            })
            .collect()
    }

    /// The rows of the Flags list: flags grouped by kind, then the notes.
    pub fn flag_rows(&self) -> Vec<FlagRow> {
        let notes = self.view.as_ref().map_or(0, |v| v.notes.len());
        self.flag_order()
            .into_iter()
            .map(FlagRow::Flag)
            .chain((0..notes).map(FlagRow::Note))
            .collect()
    }

    /// The selected steps as a half-open span: the span mark to the cursor, else the cursor's
    /// token.
    pub fn selection(&self) -> Option<(u32, u32)> {
        let v = self.view.as_ref().filter(|v| !v.is_empty())?;
        let c = self.cursor.min(v.len() - 1);
        let (a, b) = match self.mark {
            Some(m) => (m.min(c), m.max(c)),
            None => (c, c),
        };
        Some((a as u32, b as u32 + 1))
    }

    /// The flags whose span holds the cursor, most severe first.
    pub fn flags_at_cursor(&self) -> Vec<&Flag> {
        let Some(v) = &self.view else { return Vec::new() };
        let mut at: Vec<&Flag> =
            v.flags.iter().filter(|f| covers(f.start, f.end, self.cursor)).collect();
        at.sort_by_key(|f| std::cmp::Reverse(f.severity));
        at
    }

    /// The note at the cursor (index into the view's notes).
    pub fn note_at_cursor(&self) -> Option<usize> {
        let v = self.view.as_ref()?;
        v.notes.iter().position(|n| covers(n.start, n.end, self.cursor))
    }

    /// The user flag at the cursor (index into the view's flags).
    pub fn user_flag_at_cursor(&self) -> Option<usize> {
        let v = self.view.as_ref()?;
        v.flags.iter().position(|f| f.origin == Origin::User && covers(f.start, f.end, self.cursor))
    }

    /// `a`: a note on the selection; with no selection, edits the note at the cursor.
    pub fn open_note(&self, cx: &Ctx) -> Effect {
        let Some(v) = self.view.as_ref().filter(|_| cx.store.is_some()) else {
            return Effect::Message("no run to annotate".into());
        };
        let run = v.run.id;
        if self.mark.is_none() {
            if let Some(n) = self.note_at_cursor().and_then(|i| v.notes.get(i)) {
                return Effect::Open(Overlay::Note(NoteEditor::edit(run, n)));
            }
        }
        match self.selection() {
            Some((a, b)) => Effect::Open(Overlay::Note(NoteEditor::new(run, a, b))),
            None => Effect::Message("no token to annotate".into()),
        }
    }

    /// `F`: a user flag on the selection; with no selection, edits the user flag at the cursor.
    pub fn open_user_flag(&self, cx: &Ctx) -> Effect {
        let Some(v) = self.view.as_ref().filter(|_| cx.store.is_some()) else {
            return Effect::Message("no run to flag".into());
        };
        let run = v.run.id;
        if self.mark.is_none() {
            if let Some(f) = self.user_flag_at_cursor().and_then(|i| v.flags.get(i)) {
                return Effect::Open(Overlay::UserFlag(FlagEditor::edit(run, f)));
            }
        }
        match self.selection() {
            Some((a, b)) => Effect::Open(Overlay::UserFlag(FlagEditor::new(run, a, b))),
            None => Effect::Message("no token to flag".into()),
        }
    }

    /// `D` in the trace: deletes the note at the cursor, else the user flag there.
    fn delete_at_cursor(&self) -> Effect {
        let Some(v) = &self.view else { return Effect::None };
        let what = if let Some(n) = self.note_at_cursor().and_then(|i| v.notes.get(i)) {
            Annotation::Note(v.run.id, n.clone())
        } else if let Some(f) = self.user_flag_at_cursor().and_then(|i| v.flags.get(i)) {
            Annotation::Flag(v.run.id, f.clone())
        } else {
            return Effect::Message("no note or user flag at the cursor".into());
        };
        Effect::Delete { what, from_list: false }
    }

    /// `e` on the Flags list: edits the selected note or user flag.
    fn edit_selected_row(&self) -> Effect {
        let Some(v) = &self.view else { return Effect::None };
        let run = v.run.id;
        match self.flag_rows().get(self.flag_sel) {
            Some(FlagRow::Note(i)) => match v.notes.get(*i) {
                Some(n) => Effect::Open(Overlay::Note(NoteEditor::edit(run, n))),
                None => Effect::None,
            },
            Some(FlagRow::Flag(i)) => match v.flags.get(*i) {
                Some(f) if f.origin == Origin::User => {
                    Effect::Open(Overlay::UserFlag(FlagEditor::edit(run, f)))
                }
                Some(_) => Effect::Message(
                    "automatic flags come from analysis; they cannot be edited".into(),
                ),
                None => Effect::None,
            },
            None => Effect::Message("nothing selected".into()),
        }
    }

    /// `d` on the Flags list: deletes the selected note or user flag.
    fn delete_selected_row(&self) -> Effect {
        let Some(v) = &self.view else { return Effect::None };
        let run = v.run.id;
        let what = match self.flag_rows().get(self.flag_sel) {
            Some(FlagRow::Note(i)) => match v.notes.get(*i) {
                Some(n) => Annotation::Note(run, n.clone()),
                None => return Effect::None,
            },
            Some(FlagRow::Flag(i)) => match v.flags.get(*i) {
                Some(f) if f.origin == Origin::User => Annotation::Flag(run, f.clone()),
                Some(_) => {
                    return Effect::Message(
                        "automatic flags come from analysis; they cannot be deleted".into(),
                    )
                }
                None => return Effect::None,
            },
            None => return Effect::None,
        };
        Effect::Delete { what, from_list: true }
    }

    /// `r`: the resample form for the reasoning step at the cursor, `samples` continuations
    /// proposed.
    pub fn resample_form(&mut self, samples: usize, cx: &Ctx) -> Effect {
        let Some(v) = self.view.as_mut().filter(|v| !v.is_empty()) else {
            return Effect::Message("no run to resample".into());
        };
        if cx.store.is_none() {
            return Effect::Message("no store".into());
        }
        v.resegment();
        let c = self.cursor.min(v.len() - 1);
        let Some((n, step)) =
            v.segments.steps.iter().enumerate().rev().find(|(_, s)| s.span.start <= c)
        else {
            return Effect::Message("no reasoning step at the cursor".into());
        };
        let preview: String = v.steps[step.span.start..step.span.end.min(step.span.start + 8)]
            .iter()
            .map(|s| s.text.as_str())
            .collect();
        let t = v.run.sampler.temperature;
        Effect::Open(Overlay::Resample(ResampleForm {
            run: v.run.id,
            reasoning_step: n,
            at: step.span.start as u32,
            preview,
            samples: samples.to_string(),
            max_tokens: v.run.sampler.max_tokens_text(),
            temperature: if t > 0.0 { t } else { resample::GREEDY_FALLBACK_TEMPERATURE },
            focus: 0,
        }))
    }

    /// An event of the run followed live (`live`), when it is the one shown: its steps are
    /// appended (the cursor follows while it is at the end), its end is recorded. `syntax` is
    /// the syntect theme, `h` the viewport's height. Returns the message to show.
    pub fn on_engine(&mut self, ev: Event, syntax: &str, h: usize) -> Option<String> {
        let live = self.live?;
        let v = self.view.as_mut().filter(|v| v.run.id == live)?;
        match ev {
            Event::Loaded { model, .. } => v.run.model = model,
            Event::Started { rendered_prompt, prompt_tokens, .. } => {
                v.run.rendered_prompt = rendered_prompt;
                v.run.prompt_tokens = prompt_tokens;
            }
            Event::Step { step, routing } => {
                if (step.index as usize) < v.len() {
                    // Already read from the store when the run was opened.
                    return None;
                }
                let at_end = v.is_empty() || self.cursor + 1 >= v.len();
                let code = step.text.contains("```");
                v.push(step, routing);
                if code {
                    v.rehighlight(syntax);
                }
                if at_end {
                    let end = v.len() - 1;
                    self.move_to(end, h);
                }
            }
            Event::Finished { stop, timings } => {
                v.run.stop = Some(stop);
                v.run.timings = timings;
                v.run.status = match stop {
                    StopReason::User => RunStatus::Cancelled,
                    _ => RunStatus::Complete,
                };
                v.rehighlight(syntax);
                v.resegment();
                return Some(match stop {
                    StopReason::User => "run cancelled: its steps so far are kept".to_string(),
                    _ => format!("run finished: {}", stop.as_str()),
                });
            }
            Event::Failed(msg) => {
                v.run.status = RunStatus::Failed(msg.clone());
                return Some(format!("run failed: {msg}"));
            }
            Event::Interrupted(msg) => {
                v.run.status = RunStatus::Interrupted;
                return Some(format!("run interrupted: {msg}"));
            }
            Event::Loading { .. } | Event::PromptRouting(_) => {}
        }
        None
    }
}
