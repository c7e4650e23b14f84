//! The last line of defence between the drawn frame and the terminal: a `Backend` that
//! wraps another and, for every cell it passes on, makes sure that the symbol holds no
//! control, bidirectional or other invisible character and takes exactly the columns the
//! buffer gave it. Whatever a component draws, the terminal's columns then always equal the
//! buffer's cells, so a zero-width symbol can never shift the rest of a row left and leave
//! stale cells behind (crossterm's backend moves the cursor only when cells are not
//! adjacent). Components show untrusted text with `tui::text` first; this guard only
//! catches what slips through. Depends on `sanitize` and ratatui only.

use std::borrow::Cow;

use ratatui::backend::{Backend, ClearType, WindowSize};
use ratatui::buffer::{Cell, CellWidth};
use ratatui::layout::{Position, Size};

use crate::sanitize::is_invisible;

/// Drawn for a cell whose symbol has nothing visible left once its invisible characters are
/// taken out (a lone U+200D, say), or that cannot be made as wide as its cell.
pub const SUBSTITUTE: char = '\u{FFFD}';

/// The columns the buffer reserved for `cell` (as ratatui's diff counts them), at least one.
fn columns(cell: &Cell) -> u16 {
    let sym = cell.symbol();
    // `cell_width` asserts (in debug builds) that a one-byte symbol is not a control.
    if sym.len() == 1 && sym.as_bytes()[0].is_ascii_control() {
        return 1;
    }
    cell.cell_width().max(1)
}

/// The symbol to write for a cell that has `cols` columns, or `None` when `sym` is safe as it
/// is: C0 controls become control pictures (`␛`), DEL `␡`, C1 controls the substitute, the
/// invisible characters (`sanitize::is_invisible`) are removed, a symbol that starts with a
/// zero-width character gets a dotted circle (`◌́`), and the result is padded with spaces or,
/// when it is wider than `cols`, replaced by the substitute.
pub fn safe_symbol(sym: &str, cols: u16) -> Option<String> {
    let unsafe_char = |c: char| c.is_control() || is_invisible(c);
    let zero = |c: char| c.to_string().cell_width() == 0;
    // A symbol that starts with a zero-width character would draw it on the cell before.
    let leads_zero = sym.chars().next().is_some_and(|c| !unsafe_char(c) && zero(c));
    if !sym.chars().any(unsafe_char) && !leads_zero && sym.cell_width() == cols {
        return None;
    }
    let mut out = String::with_capacity(sym.len() + 3);
    for c in sym.chars() {
        match c {
            '\u{0}'..='\u{1f}' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or(SUBSTITUTE)),
            '\u{7f}' => out.push('␡'),
            _ if c.is_control() => out.push(SUBSTITUTE),
            _ if is_invisible(c) => {}
            _ => out.push(c),
        }
    }
    // Zero-width characters in front (ratatui appends a span's later graphemes to a cell
    // whose first one took no column): dropped when something visible follows, else set on
    // a dotted circle.
    if out.chars().next().is_some_and(zero) {
        match out.char_indices().find(|&(_, c)| !zero(c)) {
            Some((i, _)) => out = out.split_off(i),
            None => out.insert(0, '◌'),
        }
    }
    let w = if out.is_empty() { 0 } else { out.cell_width() };
    if w == 0 || w > cols {
        out = SUBSTITUTE.to_string();
    }
    let w = out.cell_width();
    out.extend(std::iter::repeat_n(' ', usize::from(cols.saturating_sub(w))));
    Some(out)
}

/// A backend that passes every cell through `safe_symbol` before `B` writes it.
#[derive(Debug)]
pub struct SafeBackend<B> {
    inner: B,
}

impl<B> SafeBackend<B> {
    pub fn new(inner: B) -> Self {
        SafeBackend { inner }
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }

    pub fn inner_mut(&mut self) -> &mut B {
        &mut self.inner
    }
}

impl<B: Backend> Backend for SafeBackend<B> {
    type Error = B::Error;

    fn draw<'a, I>(&mut self, content: I) -> Result<(), Self::Error>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        let cells: Vec<(u16, u16, Cow<'a, Cell>)> = content
            .map(|(x, y, cell)| match safe_symbol(cell.symbol(), columns(cell)) {
                None => (x, y, Cow::Borrowed(cell)),
                Some(sym) => {
                    let mut fixed = cell.clone();
                    fixed.set_symbol(&sym);
                    (x, y, Cow::Owned(fixed))
                }
            })
            .collect();
        self.inner.draw(cells.iter().map(|(x, y, c)| (*x, *y, c.as_ref())))
    }

    fn append_lines(&mut self, n: u16) -> Result<(), Self::Error> {
        self.inner.append_lines(n)
    }

    fn hide_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.hide_cursor()
    }

    fn show_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.show_cursor()
    }

    fn get_cursor_position(&mut self) -> Result<Position, Self::Error> {
        self.inner.get_cursor_position()
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> Result<(), Self::Error> {
        self.inner.set_cursor_position(position)
    }

    fn clear(&mut self) -> Result<(), Self::Error> {
        self.inner.clear()
    }

    fn clear_region(&mut self, clear_type: ClearType) -> Result<(), Self::Error> {
        self.inner.clear_region(clear_type)
    }

    fn size(&self) -> Result<Size, Self::Error> {
        self.inner.size()
    }

    fn window_size(&mut self) -> Result<WindowSize, Self::Error> {
        self.inner.window_size()
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::{CrosstermBackend, TestBackend};
    use ratatui::buffer::Buffer;
    use ratatui::layout::Rect;
    use ratatui::text::Span;
    use ratatui::widgets::Widget;

    #[test]
    fn safe_symbols_pass_unchanged() {
        for (s, w) in [("a", 1), ("é", 1), ("e\u{301}", 1), ("界", 2), (" ", 1), ("─", 1)] {
            assert_eq!(safe_symbol(s, w), None, "{s:?}");
        }
    }

    #[test]
    fn unsafe_symbols_become_one_visible_column_each() {
        let cases = [
            ("\u{200D}", 1, "\u{FFFD}"),
            ("\u{200B}", 1, "\u{FFFD}"),
            ("\u{FEFF}", 1, "\u{FFFD}"),
            ("\u{301}", 1, "◌\u{301}"),
            ("\u{1b}", 1, "␛"),
            ("\u{7}", 1, "␇"),
            ("\u{7f}", 1, "␡"),
            ("\u{9b}", 1, "\u{FFFD}"),
            ("\u{202e}", 1, "\u{FFFD}"),
            ("a\u{200B}", 1, "a"),
            ("a\u{200D}\u{301}", 1, "a\u{301}"),
            ("\u{301}z", 1, "z"),
            // An emoji ZWJ sequence is two columns to unicode-width, six without the joiners.
            ("👨\u{200D}👩\u{200D}👧", 2, "\u{FFFD} "),
            // A cell the buffer thinks is two columns wide but is one: padded.
            ("x\u{200B}", 2, "x "),
        ];
        for (s, cols, want) in cases {
            let got = safe_symbol(s, cols).unwrap_or_else(|| s.to_string());
            assert_eq!(got, want, "{s:?}");
            assert_eq!(got.cell_width(), cols, "{s:?} -> {got:?}");
        }
    }

    /// A buffer whose cells hold what components could leave there: a zero-width span as
    /// the first grapheme of a span, controls set directly, zero-width characters appended.
    fn hostile_buffer() -> Buffer {
        let mut buf = Buffer::empty(Rect::new(0, 0, 12, 2));
        for (x, s) in ["│", "a", "\u{200D}", "b", "\u{200B}", "\u{FEFF}", "\u{301}", "c", "│"]
            .iter()
            .enumerate()
        {
            buf[(x as u16, 0)].set_symbol(s);
        }
        buf[(1, 1)].set_symbol("\u{1b}");
        buf[(2, 1)].set_symbol("\u{9b}");
        buf[(3, 1)].set_symbol("\u{202e}");
        Span::raw("\u{301}z").render(Rect::new(5, 1, 4, 1), &mut buf);
        buf
    }

    /// Every cell of `buf`, as a backend is handed them (not through ratatui's diff, which
    /// asserts in debug builds that no cell is a lone control byte).
    fn all_cells(buf: &Buffer) -> impl Iterator<Item = (u16, u16, &Cell)> {
        let w = buf.area.width;
        buf.content().iter().enumerate().map(move |(i, c)| ((i as u16) % w, (i as u16) / w, c))
    }

    #[test]
    fn the_guard_keeps_every_row_in_its_columns() {
        let mut guard = SafeBackend::new(TestBackend::new(12, 2));
        guard.draw(all_cells(&hostile_buffer())).unwrap();
        let shown = guard.inner().buffer().clone();
        for cell in shown.content() {
            let s = cell.symbol();
            assert!(!s.chars().any(|c| c.is_control() || is_invisible(c)), "{s:?}");
            assert!(s.cell_width() >= 1, "zero-width {s:?} reached the terminal");
        }
        let row = |y| (0..12).map(|x| shown[(x, y)].symbol().to_string()).collect::<String>();
        assert_eq!(row(0), "│a\u{FFFD}b\u{FFFD}\u{FFFD}◌\u{301}c│   ");
        assert_eq!(row(1), " ␛\u{FFFD}\u{FFFD} z      ");
    }

    #[test]
    fn no_raw_escape_or_invisible_byte_reaches_a_real_terminal() {
        let mut bytes = Vec::<u8>::new();
        let buf = hostile_buffer();
        {
            let mut guard = SafeBackend::new(CrosstermBackend::new(&mut bytes));
            guard.draw(all_cells(&buf)).unwrap();
            Backend::flush(&mut guard).unwrap();
        }
        let text = String::from_utf8(bytes).unwrap();
        assert!(!text.chars().any(|c| is_invisible(c) || (c.is_control() && c != '\u{1b}')));
        // Every ESC starts one of crossterm's own CSI sequences (cursor moves, colours).
        for (i, _) in text.match_indices('\u{1b}') {
            assert_eq!(text[i + 1..].chars().next(), Some('['), "{text:?}");
        }
        // Each row is written in one run: no cursor move inside it means no cell was
        // written at a column the buffer did not mean.
        assert!(text.contains("│a\u{FFFD}b\u{FFFD}\u{FFFD}◌\u{301}c│"), "{text:?}");
    }
}
