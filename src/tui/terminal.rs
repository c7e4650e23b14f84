//! The terminal guard: raw mode, the alternate screen and bracketed paste on entry, all
//! undone (mouse capture too) when the guard drops and in the panic hook, so a crash never
//! leaves the user's shell broken. Every frame goes through `safe_backend`'s guard, so no
//! cell can write a control or zero-width character. Depends on `safe_backend` only.

use std::io::{self, Stdout};

use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::Show;
use ratatui::crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::Terminal;

use crate::tui::safe_backend::SafeBackend;

pub type Term = Terminal<SafeBackend<CrosstermBackend<Stdout>>>;

/// Owns the terminal while the UI runs.
pub struct Guard {
    pub terminal: Term,
}

/// Puts the terminal back: leaves raw mode and the alternate screen, turns off mouse
/// capture and bracketed paste, shows the cursor. Safe to call more than once.
pub fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(
        io::stdout(),
        DisableBracketedPaste,
        DisableMouseCapture,
        LeaveAlternateScreen,
        Show
    );
}

/// Whether this terminal can show the UI: not one that declares itself `dumb` (no cursor
/// addressing; the UI would fill it with escape codes).
pub fn check() -> io::Result<()> {
    if std::env::var_os("TERM").is_some_and(|t| t == "dumb") {
        return Err(io::Error::other(
            "TERM is 'dumb', which cannot show the UI; use the subcommands (ls, show, flags, diff, export)",
        ));
    }
    Ok(())
}

impl Guard {
    pub fn enter() -> io::Result<Guard> {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        enable_raw_mode()?;
        let mut out = io::stdout();
        if let Err(e) = execute!(out, EnterAlternateScreen, EnableBracketedPaste) {
            restore();
            return Err(e);
        }
        match Terminal::new(SafeBackend::new(CrosstermBackend::new(out))) {
            Ok(terminal) => Ok(Guard { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

impl Guard {
    /// Turns mouse capture on (clicks and the wheel reach the UI) or off (the terminal
    /// selects text).
    pub fn set_mouse(&mut self, on: bool) -> io::Result<()> {
        if on {
            execute!(io::stdout(), EnableMouseCapture)
        } else {
            execute!(io::stdout(), DisableMouseCapture)
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}
