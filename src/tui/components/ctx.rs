//! `Ctx`: what components get from `App` instead of `App` itself (the theme, the keymap, the
//! store handle, the terminal's size), read only. May import `theme`, `keymap` and the
//! crate's `store`.

use std::sync::Arc;

use crate::store::Store;
use crate::tui::keymap::Keymap;
use crate::tui::theme::Theme;

/// What components get from `App` instead of `App` itself: the shared handles, read only.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub theme: &'a Theme,
    pub keymap: &'a Keymap,
    pub store: Option<&'a Arc<Store>>,
    /// The terminal's size (columns, rows).
    pub size: (u16, u16),
}

impl Ctx<'_> {
    /// Visible rows of the trace viewport.
    pub fn trace_height(&self) -> usize {
        trace_height(self.size)
    }
}

/// The screens' area in a terminal of `size`: all of it but the tab row and the status line
/// (as `ui::draw` lays it out).
pub fn body(size: (u16, u16)) -> ratatui::layout::Rect {
    ratatui::layout::Rect::new(0, 1, size.0, size.1.saturating_sub(2))
}

/// Visible rows of the trace viewport in a terminal of `size`.
pub fn trace_height(size: (u16, u16)) -> usize {
    usize::from(size.1.saturating_sub(9)).max(1)
}
