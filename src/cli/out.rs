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

/// Where one stream of a command run for another process goes.
pub type Sink = std::sync::Arc<dyn Fn(&[u8]) + Send + Sync>;

/// Flags to set when the other process goes away.
pub type OnClose =
    std::sync::Arc<std::sync::Mutex<Vec<std::sync::Arc<std::sync::atomic::AtomicBool>>>>;

/// Where a command's output goes when it runs for another process (`serve`): its two
/// streams, and whether the other process's stdout is a terminal (for colour).
#[derive(Clone)]
pub struct Redirect {
    pub stdout: Sink,
    pub stderr: Sink,
    pub color: bool,
    /// Flags set when the other process goes away (its Ctrl-C): `interrupt` adds the
    /// command's cancel flag here.
    pub on_close:
        std::sync::Arc<std::sync::Mutex<Vec<std::sync::Arc<std::sync::atomic::AtomicBool>>>>,
}

thread_local! {
    static REDIRECT: std::cell::RefCell<Option<Redirect>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with this thread's output sent to `to`.
pub fn redirected<T>(to: Redirect, f: impl FnOnce() -> T) -> T {
    REDIRECT.with(|r| *r.borrow_mut() = Some(to));
    let out = f();
    REDIRECT.with(|r| *r.borrow_mut() = None);
    out
}

/// Whether this thread's output goes to another process.
pub fn is_redirected() -> bool {
    REDIRECT.with(|r| r.borrow().is_some())
}

/// The redirection of this thread's output, if any.
pub fn redirect() -> Option<Redirect> {
    REDIRECT.with(|r| r.borrow().clone())
}

/// Whether colour may be used on (this command's) stdout.
pub fn color() -> bool {
    use std::io::IsTerminal;
    match redirect() {
        Some(r) => r.color,
        None => io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

/// `print!` of sanitized text (used by `out!` / `outln!`).
pub fn print_out(args: std::fmt::Arguments<'_>) {
    let text = args.to_string();
    match redirect() {
        Some(r) => (r.stdout)(for_output(&text).as_bytes()),
        None => print!("{}", for_output(&text)),
    }
}

/// `eprint!` of sanitized text (used by `err!` / `errln!`).
pub fn print_err(args: std::fmt::Arguments<'_>) {
    let text = args.to_string();
    match redirect() {
        Some(r) => (r.stderr)(for_output(&text).as_bytes()),
        None => eprint!("{}", for_output(&text)),
    }
}

/// Writes bytes that another thinkdbg process's output layer produced (already sanitized,
/// colour codes included) to this process's stdout or stderr, as they are.
pub fn pass_through(to_stdout: bool, bytes: &[u8]) -> io::Result<()> {
    if to_stdout {
        let mut o = io::stdout().lock();
        o.write_all(bytes)?;
        o.flush()
    } else {
        let mut e = io::stderr().lock();
        e.write_all(bytes)?;
        e.flush()
    }
}

/// Standard output, or the other process's when this thread runs a command for it.
pub struct Stdout(Option<Redirect>, io::Stdout);

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &self.0 {
            Some(r) => {
                (r.stdout)(buf);
                Ok(buf.len())
            }
            None => self.1.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &self.0 {
            Some(_) => Ok(()),
            None => self.1.flush(),
        }
    }
}

/// A sanitizing writer around a stream (`Out::stdout()`): `write!` / `writeln!` to it as to
/// the stream itself.
pub struct Out<W: Write> {
    inner: W,
    /// The start of a UTF-8 character split across two writes.
    pending: Vec<u8>,
}

impl Out<Stdout> {
    pub fn stdout() -> Self {
        Out::new(Stdout(redirect(), io::stdout()))
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
