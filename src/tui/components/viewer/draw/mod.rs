//! Drawing the viewer's screens from `&Viewer`, one file per pane: the trace text
//! (`trace.rs`), the token inspector (`inspector.rs`), the timeline (`timeline.rs`), the
//! Flags list (`flags.rs`) and the routing grid (`routing.rs`); this file lays the panes out
//! for each screen. Never mutates, never does I/O. May import the viewer, `components`,
//! `run_view`, `provenance` and `theme`.

pub mod flags;
pub mod inspector;
pub mod routing;
pub mod timeline;
pub mod trace;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::Frame;

use super::Viewer;
use crate::tui::components::ctx::Ctx;

/// The trace screen's panes in `area`: the text, the inspector and the timeline.
pub fn trace_panes(area: Rect) -> [Rect; 3] {
    let [top, tl] = Layout::vertical([Constraint::Min(5), Constraint::Length(5)]).areas(area);
    let insp_w = (top.width / 3).clamp(30, 48);
    let [text, insp] =
        Layout::horizontal([Constraint::Min(20), Constraint::Length(insp_w)]).areas(top);
    [text, insp, tl]
}

impl Viewer {
    /// The trace screen: the text, the inspector beside it and the timeline under both.
    pub fn draw_trace(&self, f: &mut Frame, area: Rect, cx: &Ctx) {
        let [text, insp, tl] = trace_panes(area);
        trace::draw(self, f, text, cx);
        inspector::draw(self, f, insp, cx);
        timeline::draw(self, f, tl, cx);
    }

    /// The Flags screen.
    pub fn draw_flags(&self, f: &mut Frame, area: Rect, cx: &Ctx) {
        flags::draw(self, f, area, cx);
    }

    /// The routing screen: the grid and expert usage, the timeline under them.
    pub fn draw_routing(&self, f: &mut Frame, area: Rect, cx: &Ctx) {
        let [top, tl] = Layout::vertical([Constraint::Min(5), Constraint::Length(5)]).areas(area);
        routing::draw(self, f, top, cx);
        timeline::draw(self, f, tl, cx);
    }
}
