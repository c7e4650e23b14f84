//! Logging through `tracing` to a file, never to the terminal (the TUI owns the screen).
//! The level comes from `THINKDBG_LOG` (an `EnvFilter` string, default `info`).

use std::path::{Path, PathBuf};

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// The HTTP client's log level, fixed.
const QUIET_HTTP: &str = "ureq=info";

fn default_log_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "thinkdbg").map(|d| d.data_dir().join("thinkdbg.log"))
}

/// Starts logging; keep the guard alive for the life of the program. A log file that cannot
/// be opened disables logging rather than stopping the program; when the user named it
/// (`--log-file`, `THINKDBG_LOG_FILE`), a warning says so.
pub fn init(path: Option<&Path>) -> Option<WorkerGuard> {
    let named = path.is_some();
    let path = path.map(Path::to_path_buf).or_else(default_log_path)?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let opened = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::OpenOptions::new().create(true).append(true).open(&path));
    let file = match opened {
        Ok(f) => f,
        Err(e) => {
            if named {
                let shown = path.display().to_string();
                errln!(
                    "warning: cannot write the log file '{}': {e}; logging is off",
                    crate::sanitize::for_terminal(&shown, false)
                );
            }
            return None;
        }
    };
    let (writer, guard) = tracing_appender::non_blocking(file);
    let filter = EnvFilter::try_from_env("THINKDBG_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // The HTTP client logs every request's URL (user info and `api_key` query included) at
    // debug level: it never logs below info, whatever THINKDBG_LOG asks. Our own lines name
    // endpoints without credentials (`remote::redact`).
    let filter = filter.add_directive(QUIET_HTTP.parse().unwrap_or_default());
    let ok = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .is_ok();
    ok.then_some(guard)
}
