//! The CLI's only way to write to standard output and standard error. Whatever is written
//! here (model text, imported fields, server messages, file names, error chains) passes
//! through `sanitize::for_output`, so no string from a file, a server or the user can drive
//! the terminal, whichever command prints it and whether or not that command remembered to
//! sanitize. Colour is the one thing that is not text: `Out::styled` writes its escape codes
//! around sanitized text. `tests/it/architecture.rs` checks that no other file under
//! `src/cli` prints by other means.
//!
//! The macros (`outln!`, `out!`, `errln!`, `err!`) are defined in `cli/mod.rs` and call
//! `print_out` / `print_err`: they keep `println!`'s behaviour on a failed write (a panic
//! that `cli::main` turns into an exit status).

use std::io::{self, Write};

use crossterm::style::{ContentStyle, StyledContent};

use crate::sanitize::for_output;

/// `print!` of sanitized text (used by `out!` / `outln!`).
pub fn print_out(args: std::fmt::Arguments<'_>) {
    let text = args.to_string();
    print!("{}", for_output(&text));
}

/// `eprint!` of sanitized text (used by `err!` / `errln!`).
pub fn print_err(args: std::fmt::Arguments<'_>) {
    let text = args.to_string();
    eprint!("{}", for_output(&text));
}

/// A sanitizing writer around a stream (`Out::stdout()`): `write!` / `writeln!` to it as to
/// the stream itself.
pub struct Out<W: Write> {
    inner: W,
    /// The start of a UTF-8 character split across two writes.
    pending: Vec<u8>,
}

impl Out<io::StdoutLock<'static>> {
    pub fn stdout() -> Self {
        Out::new(io::stdout().lock())
    }
}

impl<W: Write> Out<W> {
    pub fn new(inner: W) -> Self {
        Out { inner, pending: Vec::new() }
    }

    /// `text` in `style` (colour, weight): the style's escape codes around the sanitized text.
    pub fn styled(&mut self, text: &str, style: ContentStyle) -> io::Result<()> {
        self.flush_pending()?;
        write!(self.inner, "{}", StyledContent::new(style, for_output(text)))
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rest = String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned();
        self.inner.write_all(for_output(&rest).as_bytes())
    }
}

impl<W: Write> Write for Out<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        let bytes = std::mem::take(&mut self.pending);
        let mut rest: &[u8] = &bytes;
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    self.inner.write_all(for_output(text).as_bytes())?;
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    let text = std::str::from_utf8(valid).unwrap_or_default();
                    self.inner.write_all(for_output(text).as_bytes())?;
                    match e.error_len() {
                        // Invalid bytes: shown as U+FFFD, and on.
                        Some(n) => {
                            self.inner.write_all("\u{FFFD}".as_bytes())?;
                            rest = &after[n..];
                        }
                        // A character cut at the end of this write: kept for the next.
                        None => {
                            self.pending = after.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_pending()?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for Out<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use crossterm::style::{ContentStyle, Stylize};

    use super::Out;

    fn written(f: impl FnOnce(&mut Out<&mut Vec<u8>>)) -> String {
        let mut buf = Vec::new();
        {
            let mut out = Out::new(&mut buf);
            f(&mut out);
            out.flush().unwrap();
        }
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn text_is_sanitized_and_styles_are_kept() {
        let s = written(|o| {
            let csi = "\u{9b}31m";
            write!(o, "title \u{1b}]0;pwned\u{7} {csi}\t|").unwrap();
            o.styled("red \u{1b}[2J", ContentStyle::new().red()).unwrap();
        });
        assert_eq!(s.matches('\u{1b}').count(), 2, "only the style's own codes: {s:?}");
        assert!(s.starts_with("title ␛]0;pwned␇ ⟨U+009B⟩31m\t|\u{1b}["), "{s:?}");
        assert!(s.contains("red ␛[2J"), "{s:?}");
    }

    #[test]
    fn a_character_split_across_writes_is_whole_and_bad_bytes_are_marked() {
        let s = written(|o| {
            let e = "é\u{202e}".as_bytes();
            o.write_all(&e[..1]).unwrap();
            o.write_all(&e[1..3]).unwrap();
            o.write_all(&e[3..]).unwrap();
            o.write_all(b"a\xffb").unwrap();
        });
        assert_eq!(s, "é⟨U+202E⟩a\u{FFFD}b");
    }
}
