//! The `thinkdbg` binary: everything lives in the library; this only runs the CLI and turns
//! its outcome into an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    thinkdbg::cli::main()
}
