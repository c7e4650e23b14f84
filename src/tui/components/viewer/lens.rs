//! The inspector's "layers" view (the logit lens, `L` on the trace screen): for the token at
//! the cursor, what every block's residual stream predicts, computed on demand on the UI's
//! engine (`App` starts the job; the reply comes back on the job channel). This keeps what
//! was computed for the run shown (one entry per step), which step is being computed, and why
//! the lens cannot run on a run; drawing its rows is here too, for the inspector.
//! May import `theme`, `components::widgets`, `tui::text` and the crate's `engine::lens` and
//! `trace`.

use std::collections::HashMap;

use ratatui::text::{Line, Span};

use crate::engine::lens::LensLayer;
use crate::trace::RunId;
use crate::tui::components::ctx::Ctx;
use crate::tui::components::widgets::fit;
use crate::tui::text::{shown, shown_token};

/// Tokens asked for per layer (as many as fit are drawn).
pub const LENS_TOP: usize = 5;

/// The layers view's state.
#[derive(Debug, Clone, Default)]
pub struct Lens {
    /// Whether the inspector shows the layers (instead of the alternatives).
    pub open: bool,
    /// The run the cache and the error are about.
    pub run: Option<RunId>,
    /// Each step computed so far for `run`: its layers.
    pub cache: HashMap<usize, Vec<LensLayer>>,
    /// The step whose job is in flight.
    pub computing: Option<usize>,
    /// Why the lens cannot run on `run` (the model is not the run's, the run came from a
    /// server, the engine failed), or why one step failed.
    pub error: Option<String>,
    /// The model was checked against `run`'s.
    pub checked: bool,
}

impl Lens {
    /// Forgets what was computed unless it is about `run`.
    pub fn switch_to(&mut self, run: RunId) {
        if self.run != Some(run) {
            self.run = Some(run);
            self.cache.clear();
            self.computing = None;
            self.error = None;
            self.checked = false;
        }
    }

    /// Whether step `step` of `run` still has to be computed (not cached, not in flight, no
    /// error that stops the lens on the run).
    pub fn wants(&self, run: RunId, step: usize) -> bool {
        self.open
            && (self.run != Some(run)
                || (!self.cache.contains_key(&step)
                    && self.computing.is_none()
                    && self.error.is_none()))
    }

    /// A reply arrived for `step` of `run`.
    pub fn done(&mut self, run: RunId, step: usize, result: Result<Vec<LensLayer>, String>) {
        if self.run != Some(run) {
            return;
        }
        if self.computing == Some(step) {
            self.computing = None;
        }
        match result {
            Ok(layers) => {
                self.cache.insert(step, layers);
            }
            Err(e) => self.error = Some(e),
        }
    }
}

/// The first layer at which the chosen token is the top prediction (and stays there is not
/// required: the first time it gets there).
pub fn first_rank_one(layers: &[LensLayer]) -> Option<usize> {
    layers.iter().find(|l| l.chosen_rank == 1).map(|l| l.layer)
}

/// The layer from which the chosen token stays the top prediction to the last layer.
pub fn settled_rank_one(layers: &[LensLayer]) -> Option<usize> {
    let n = layers.iter().rev().take_while(|l| l.chosen_rank == 1).count();
    (n > 0).then(|| layers[layers.len() - n].layer)
}

/// The inspector's rows for the layers view of step `step` of `run`, in `inner_w` columns.
pub fn lines(lens: &Lens, run: RunId, step: usize, inner_w: usize, cx: &Ctx) -> Vec<Line<'static>> {
    let t = cx.theme;
    let dim = t.get("ui.dim");
    let text = t.get("ui.text");
    let w = inner_w.max(1);
    let title = fit("layers · logit lens (L: off)", w);
    let mut out = vec![Line::from(Span::styled(title, t.get("ui.title")))];
    let cached = (lens.run == Some(run)).then(|| lens.cache.get(&step)).flatten();
    let Some(layers) = cached else {
        let msg = match (&lens.error, lens.run == Some(run)) {
            (Some(e), true) => e.clone(),
            _ => "computing… (replaying the prefix on the model)".to_string(),
        };
        let style =
            if lens.error.is_some() && lens.run == Some(run) { t.get("ui.warning") } else { dim };
        for row in super::draw::inspector::words(&shown(&msg), w) {
            out.push(Line::from(Span::styled(fit(&row, w), style)));
        }
        return out;
    };
    let first = first_rank_one(layers);
    let said = match (first, settled_rank_one(layers)) {
        (Some(l), Some(k)) if k != l => format!("chosen #1 at L{l}, from L{k} on"),
        (Some(l), _) => format!("chosen #1 from L{l}"),
        (None, _) => "chosen never #1".to_string(),
    };
    out.push(Line::from(Span::styled(fit(&said, w), text)));
    let header = format!(" {:<3}{:>6} {:>4}│top", "L", "rank", "p");
    out.push(Line::from(Span::styled(fit(&header, w), dim)));
    // "L12   #1  45%│tok 45% tok 12%": the layer, the chosen token's rank and probability,
    // then the layer's top tokens while they fit.
    for l in layers {
        let hit = first == Some(l.layer);
        let head_style = if hit { t.get("ui.selection") } else { text };
        let p = f64::from(l.chosen_logprob).exp() * 100.0;
        let head = format!("L{:<2}{:>6} {:>3.0}%", l.layer, format!("#{}", l.chosen_rank), p);
        let mut spans = vec![
            Span::styled(if hit { "▸" } else { " " }, t.get("ui.help.key")),
            Span::styled(head.clone(), head_style),
        ];
        let mut used = 1 + head.chars().count();
        for (j, (_, tok, lp)) in l.top.iter().enumerate() {
            let piece = format!(
                "{}{} {:.0}%",
                if j == 0 { "│" } else { " " },
                shown_token(tok),
                f64::from(*lp).exp() * 100.0
            );
            let w = unicode_width::UnicodeWidthStr::width(piece.as_str());
            if used + w > inner_w {
                if j == 0 && inner_w > used + 4 {
                    spans.push(Span::styled(fit(&piece, inner_w - used), dim));
                }
                break;
            }
            used += w;
            spans.push(Span::styled(piece, if j == 0 { text } else { dim }));
        }
        out.push(Line::from(spans));
    }
    out
}
