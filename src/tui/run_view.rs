//! One run loaded for viewing: its steps, flags and routing plus the indexes the trace view
//! needs (byte offset of every step in the text, logical line starts, code-block highlight
//! spans). Built once per run (and extended as a live run grows); drawing only reads it.
//! `RunView::read` builds one from the store. Depends on `trace`, `store`, `analysed` and the
//! tui's `highlight`.

use crate::analysis::confidence::{
    group_confidences, run_confidence, token_confidences, RunConfidence,
};
use crate::analysis::config::DeepConfConfig;
use crate::analysis::forks::fork_steps;
use crate::analysis::{segment, AnalysisConfig, Segments};
use crate::store::Store;
use crate::trace::{Flag, Note, Routing, Run, RunStatus, Step};

use super::highlight::{self, Highlight};

/// A step is a low-confidence point when its probability is below this (p < 0.3).
pub const LOW_LOGPROB: f32 = -1.2;

/// The loaded run.
#[derive(Debug, Clone)]
pub struct RunView {
    pub run: Run,
    pub steps: Vec<Step>,
    pub flags: Vec<Flag>,
    /// The user's notes, sorted by span (set by whoever loads the view).
    pub notes: Vec<Note>,
    /// Routing per step (empty for dense runs).
    pub routing: Vec<Option<Routing>>,
    /// The whole output, concatenated.
    pub text: String,
    /// Byte offset of each step's text in `text` (one more entry: the end).
    pub offsets: Vec<usize>,
    /// Start of every logical line as (step, byte offset inside the step's text).
    pub lines: Vec<(u32, u32)>,
    /// Syntax colours of code blocks, sorted by byte offset in `text`.
    pub highlights: Vec<Highlight>,
    /// Byte ranges of code blocks (fences included) in `text`.
    pub code_blocks: Vec<(usize, usize)>,
    /// Most layers any step was routed through.
    pub layers: usize,
    /// Words, sentences and reasoning steps (from `analysis`), for `segmented` steps.
    pub segments: Segments,
    pub segmented: usize,
    /// DeepConf confidence and forking tokens, recomputed with the segmentation.
    pub dynamics: Dynamics,
}

/// What the timeline's confidence mode, its fork markers and the fork jumps read: computed
/// from the steps under the analysis settings (`analysis::confidence`, `analysis::forks`).
#[derive(Debug, Clone)]
pub struct Dynamics {
    pub deepconf: DeepConfConfig,
    pub fork_share: f64,
    /// Token confidence per step.
    pub conf: Vec<Option<f64>>,
    /// Group confidences (last step of the window, value).
    pub groups: Vec<(usize, f64)>,
    pub summary: RunConfidence,
    /// The forking steps, in step order.
    pub forks: Vec<usize>,
    /// Token confidences at the 10th, 25th and 50th percentiles (colouring by confidence).
    pub quantiles: [f64; 3],
    /// The answer-now probe kept beside the run (`thinkdbg probe`), if any.
    pub probe: Option<crate::runs::probe::StoredProbe>,
}

impl Dynamics {
    fn new(cfg: &AnalysisConfig) -> Dynamics {
        let mut d = Dynamics {
            deepconf: cfg.deepconf.clone(),
            fork_share: cfg.forks.share,
            conf: Vec::new(),
            groups: Vec::new(),
            summary: run_confidence(&[], &cfg.deepconf),
            forks: Vec::new(),
            quantiles: [0.0; 3],
            probe: None,
        };
        d.compute(&[]);
        d
    }

    fn compute(&mut self, steps: &[Step]) {
        self.conf = token_confidences(steps, self.deepconf.k);
        self.groups = group_confidences(&self.conf, self.deepconf.window);
        self.summary = run_confidence(steps, &self.deepconf);
        self.forks = fork_steps(steps, self.fork_share);
        let mut sorted: Vec<f64> = self.conf.iter().flatten().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| {
            sorted.get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        };
        self.quantiles = [0.1, 0.25, 0.5].map(|q| at(q).copied().unwrap_or(0.0));
    }

    /// Whether step `i` is a forking token.
    pub fn is_fork(&self, i: usize) -> bool {
        self.forks.binary_search(&i).is_ok()
    }
}

impl RunView {
    /// A stored run as a view: its steps, routing, notes and flags, the flags from the analysis
    /// kept beside the run, brought up to date first (a run imported or recorded in the UI has
    /// none yet; one still recording is left as it is). Problems that still leave a view (a
    /// failed analysis, steps that could not be read) come back as a message.
    pub fn read(store: &Store, run: Run) -> crate::store::Result<(RunView, Option<String>)> {
        let id = run.id;
        let analysed = (run.status != RunStatus::Recording).then(|| {
            let cfg = AnalysisConfig::load().unwrap_or_default();
            crate::runs::analysis::ensure(store, id, &cfg, false)
        });
        let mut problem = None;
        let (steps, flags, unreadable) = match analysed {
            Some(Ok(a)) => (a.steps, a.flags, a.unreadable.len()),
            other => {
                if let Some(Err(e)) = other {
                    problem = Some(format!("analysis of '{id}' failed: {e}"));
                }
                let read = store.steps(id)?;
                (read.steps, store.flags(id)?, read.errors.len())
            }
        };
        if unreadable > 0 {
            problem = Some(format!("{unreadable} step(s) of '{id}' could not be read"));
        }
        let mut view = RunView::new(run, steps, flags, store.routing(id)?);
        view.notes = store.notes(id)?;
        view.set_analysis_config(&AnalysisConfig::load().unwrap_or_default());
        // A probe that cannot be read is left out: the run still shows.
        view.dynamics.probe = crate::runs::probe::stored(store, id).ok().flatten();
        Ok((view, problem))
    }

    pub fn new(run: Run, steps: Vec<Step>, flags: Vec<Flag>, routing: Vec<(u32, Routing)>) -> Self {
        let mut v = RunView {
            run,
            steps: Vec::new(),
            flags,
            notes: Vec::new(),
            routing: Vec::new(),
            text: String::new(),
            offsets: vec![0],
            lines: vec![(0, 0)],
            highlights: Vec::new(),
            code_blocks: Vec::new(),
            layers: 0,
            segments: Segments::default(),
            segmented: 0,
            dynamics: Dynamics::new(&AnalysisConfig::default()),
        };
        v.flags.sort_by_key(|f| (f.start, f.end));
        let mut by_step: Vec<Option<Routing>> = Vec::new();
        for (i, r) in routing {
            let i = i as usize;
            if by_step.len() <= i {
                by_step.resize(i + 1, None);
            }
            by_step[i] = Some(r);
        }
        let mut by_step = by_step.into_iter();
        for s in steps {
            let r = by_step.next().flatten();
            v.push(s, r);
        }
        v.resegment();
        v
    }

    /// Recomputes the segmentation when steps were added since the last time.
    pub fn resegment(&mut self) {
        if self.segmented != self.steps.len() || self.steps.is_empty() {
            self.segments = segment(&self.steps);
            self.segmented = self.steps.len();
            self.dynamics.compute(&self.steps);
        }
    }

    /// Recomputes confidence and forks under `cfg` (the user's analysis settings).
    pub fn set_analysis_config(&mut self, cfg: &AnalysisConfig) {
        let probe = self.dynamics.probe.take();
        self.dynamics = Dynamics::new(cfg);
        self.dynamics.probe = probe;
        self.dynamics.compute(&self.steps);
    }

    /// Appends one step (a live run growing). Highlights are recomputed by `rehighlight`.
    pub fn push(&mut self, step: Step, routing: Option<Routing>) {
        let idx = self.steps.len() as u32;
        for (b, _) in step.text.match_indices('\n') {
            self.lines.push((idx, (b + 1) as u32));
        }
        self.text.push_str(&step.text);
        self.offsets.push(self.text.len());
        if let Some(r) = &routing {
            self.layers = self.layers.max(r.layers.len());
        }
        if routing.is_some() || !self.routing.is_empty() {
            self.routing.resize(self.steps.len(), None);
            self.routing.push(routing);
        }
        self.steps.push(step);
    }

    /// Recomputes code-block spans and their syntax colours for the syntect theme `syntax`.
    pub fn rehighlight(&mut self, syntax: &str) {
        let (blocks, hl) = highlight::code_blocks(&self.text, syntax);
        self.code_blocks = blocks;
        self.highlights = hl;
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The logical line that holds the first character of `step`.
    pub fn line_of(&self, step: usize) -> usize {
        let key = (step as u32, 0);
        match self.lines.binary_search(&key) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        }
    }

    /// The step whose text holds byte `b` of `text`.
    pub fn step_at_byte(&self, b: usize) -> usize {
        match self.offsets.binary_search(&b) {
            Ok(i) => i.min(self.len().saturating_sub(1)),
            Err(i) => i.saturating_sub(1),
        }
    }

    /// The first step that starts on logical line `line` (a step that straddles the line
    /// break belongs to the line it starts on).
    pub fn first_step_of_line(&self, line: usize) -> usize {
        let last = self.len().saturating_sub(1);
        match self.lines.get(line) {
            Some(&(s, 0)) => (s as usize).min(last),
            Some(&(s, _)) => (s as usize + 1).min(last),
            None => last,
        }
    }

    pub fn routing_at(&self, step: usize) -> Option<&Routing> {
        self.routing.get(step).and_then(Option::as_ref)
    }

    pub fn is_moe(&self) -> bool {
        self.layers > 0
    }

    /// Rank (1-based) of the chosen token among the recorded alternatives.
    pub fn rank(step: &Step) -> Option<usize> {
        step.top.iter().position(|t| Self::is_chosen(step, t)).map(|p| p + 1)
    }

    /// Whether `alt` is the token the step chose: by id, or by text when the source gave no
    /// ids (servers).
    pub fn is_chosen(step: &Step, alt: &crate::trace::TopToken) -> bool {
        if step.token_id == crate::trace::UNKNOWN_TOKEN {
            alt.text == step.text
        } else {
            alt.id == step.token_id
        }
    }

    /// Whether byte `b` of `text` lies in a code block.
    pub fn in_code(&self, b: usize) -> bool {
        let i = self.code_blocks.partition_point(|(s, _)| *s <= b);
        i > 0 && self.code_blocks[i - 1].1 > b
    }

    /// The syntax colour of byte `b`, if it is inside a highlighted span.
    pub fn highlight_at(&self, b: usize) -> Option<ratatui::style::Color> {
        let i = self.highlights.partition_point(|h| h.start <= b);
        (i > 0 && self.highlights[i - 1].end > b).then(|| self.highlights[i - 1].color)
    }
}
