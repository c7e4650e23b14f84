//! Ctrl-C and SIGTERM while a command generates: the first one sets the generation's cancel
//! flag, so the engine stops at its next token, the writer flushes what arrived and the run
//! is stored as `cancelled`; the command then exits with status 130. A second one ends the
//! process at once (a model still loading does not look at the flag).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};

/// The exit status after an interrupt (128 + SIGINT, as shells report it).
pub const INTERRUPTED: u8 = 130;

/// Whether an interrupt arrived.
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Routes SIGINT and SIGTERM to `cancel` for the rest of the process.
    pub fn cancels(cancel: &Arc<AtomicBool>) -> Result<Interrupt> {
        let seen = Arc::new(AtomicBool::new(false));
        // Run for another process (`serve`): its going away is the interrupt; this process's
        // signals are its own.
        if let Some(r) = super::out::redirect() {
            if let Ok(mut flags) = r.on_close.lock() {
                flags.push(seen.clone());
                flags.push(cancel.clone());
            }
            return Ok(Interrupt(seen));
        }
        for sig in [SIGINT, SIGTERM] {
            // Registered first, so it sees `seen` as the earlier signal left it.
            signal_hook::flag::register_conditional_shutdown(
                sig,
                i32::from(INTERRUPTED),
                seen.clone(),
            )
            .and_then(|_| signal_hook::flag::register(sig, seen.clone()))
            .and_then(|_| signal_hook::flag::register(sig, cancel.clone()))
            .context("cannot handle Ctrl-C")?;
        }
        Ok(Interrupt(seen))
    }

    pub fn seen(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `code`, or 130 when an interrupt arrived.
    pub fn exit(&self, code: ExitCode) -> ExitCode {
        if self.seen() {
            ExitCode::from(INTERRUPTED)
        } else {
            code
        }
    }
}
