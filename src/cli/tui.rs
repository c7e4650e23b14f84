//! `thinkdbg` with no subcommand: the terminal UI on the store (`--store`), importing the
//! sample sessions with `--import-samples` or when the store is empty.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::tui;

pub fn run(
    store_flag: Option<&Path>,
    import_samples: bool,
    theme: Option<&str>,
    model: tui::jobs::ModelChoice,
) -> Result<ExitCode> {
    let store = super::store_args::open(store_flag)?;
    // A store whose database lost its runs is not an empty one to fill with samples.
    let empty = store.sessions()?.is_empty() && store.lost().is_empty();
    if import_samples || empty {
        let n = tui::samples::import_samples(&store)?;
        errln!("imported {n} sample run(s) into '{}'", store.path().display());
    }
    if !std::io::stdout().is_terminal() {
        if import_samples {
            return Ok(ExitCode::SUCCESS);
        }
        bail!("the terminal UI needs a terminal; use a subcommand (see 'thinkdbg --help')");
    }
    tui::terminal::check()?;
    let opts = tui::Options { theme: theme.map(str::to_string), live: None, model };
    tui::run(store, opts)?;
    Ok(ExitCode::SUCCESS)
}
