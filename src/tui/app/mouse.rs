//! Mouse input in `App`, as mikupad users expect it, the keyboard still doing all of it: a
//! click on a token of the trace puts the cursor there, a click on an alternative in the
//! inspector opens the fork dialog with it chosen, the wheel moves three lines (trace,
//! routing, compare) or rows (sessions, flags). `M` turns mouse capture off, so the terminal
//! selects text (shift-drag does in most terminals while it is on). A position is mapped with
//! the layout the drawing uses (`ctx::body`, `viewer::draw::trace_panes` and the panes'
//! own layout).

use ratatui::layout::{Margin, Position};

use super::{cx, App};
use crate::tui::action::Action;
use crate::tui::components::ctx::{body, Ctx};
use crate::tui::components::fork_picker::ForkPicker;
use crate::tui::components::viewer::draw::{inspector, trace, trace_panes};
use crate::tui::components::{Overlay, Screen};

impl App {
    /// A left click at (`x`, `y`).
    pub(super) fn click(&mut self, x: u16, y: u16) {
        if self.overlay.is_some() || self.help.open || self.screen != Screen::Trace {
            return;
        }
        let pos = Position { x, y };
        let [text, insp, _] = trace_panes(body(self.size));
        let inner = text.inner(Margin::new(1, 1));
        let Some(v) = &self.viewer.view else { return };
        if inner.contains(pos) {
            let size = (usize::from(inner.width), usize::from(inner.height));
            let at = (usize::from(x - inner.x), usize::from(y - inner.y));
            if let Some(step) = trace::step_at(&self.viewer, &self.theme, v, size, at) {
                let h = self.trace_height();
                self.viewer.move_to(step, h);
            }
        } else if insp.contains(pos) {
            let Some(k) = inspector::alternative_at(&self.viewer, insp, &cx!(self), y) else {
                return;
            };
            let Some(s) = v.steps.get(self.viewer.cursor) else { return };
            let mut picker = ForkPicker::new(v.run.id, s);
            if let Some(i) = s.top.get(k).and_then(|a| picker.options.iter().position(|o| o == a)) {
                picker.sel = i;
            }
            self.overlay = Some(Overlay::Fork(picker));
        }
    }

    /// The wheel, down or up.
    pub(super) fn scroll(&mut self, down: bool) {
        if self.overlay.is_some() || self.help.open {
            return;
        }
        let a = match (self.screen, down) {
            (Screen::Sessions | Screen::Flags, true) => Action::Down,
            (Screen::Sessions | Screen::Flags, false) => Action::Up,
            (_, true) => Action::LineDown,
            (_, false) => Action::LineUp,
        };
        for _ in 0..3 {
            self.update(a.clone());
        }
    }
}
