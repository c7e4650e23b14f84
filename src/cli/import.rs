//! `thinkdbg import FILE.jsonl`: all or nothing, under fresh ids; prints the new run ids.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::store_args::open;
use crate::export::jsonl;
use crate::store::import;

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// A file written by `thinkdbg export --format jsonl` (gzipped or not), a pipe
    /// (`<(zcat x.jsonl.gz)`), or `-` for standard input.
    pub file: PathBuf,
}

/// The most an import reads from a pipe (a regular file is read whole: its size is known).
const MAX_STREAM: u64 = 1 << 30;

/// The bytes of the file to import. A device (`/dev/urandom`) is refused; a pipe is read up to
/// `MAX_STREAM`, and given up at once when its first line is not an export's header, so an
/// endless stream of anything else never fills memory.
fn read_input(file: &Path) -> Result<Vec<u8>> {
    use std::io::{BufRead, Read};
    let shown = file.display();
    let mut reader: Box<dyn BufRead> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let kind = std::fs::metadata(file).with_context(|| format!("reading '{shown}'"))?;
        if kind.is_file() {
            return std::fs::read(file).with_context(|| format!("reading '{shown}'"));
        }
        use std::os::unix::fs::FileTypeExt;
        let ft = kind.file_type();
        anyhow::ensure!(
            ft.is_fifo() || ft.is_socket(),
            "'{shown}' is not a regular file or a pipe"
        );
        let f = std::fs::File::open(file).with_context(|| format!("reading '{shown}'"))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut bytes = Vec::new();
    let first = reader.by_ref().take(1 << 16).read_until(b'\n', &mut bytes);
    first.with_context(|| format!("reading '{shown}'"))?;
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        jsonl::parse_bytes(&bytes).with_context(|| format!("'{shown}'"))?;
    }
    reader
        .take(MAX_STREAM)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading '{shown}'"))?;
    anyhow::ensure!(
        (bytes.len() as u64) < MAX_STREAM,
        "'{shown}' is over {} MiB; write it to a file first",
        MAX_STREAM >> 20
    );
    Ok(bytes)
}

pub fn run(args: &ImportArgs, store_flag: Option<&Path>) -> Result<ExitCode> {
    let bytes = read_input(&args.file)?;
    // Parse before opening the store: a bad file never touches it.
    let records =
        jsonl::parse_bytes(&bytes).with_context(|| format!("'{}'", args.file.display()))?;
    let store = open(store_flag)?;
    let done = import::import(&store, records)?;
    errln!("imported {} session(s), {} run(s)", done.sessions.len(), done.runs.len());
    for r in done.runs {
        outln!("{r}");
    }
    Ok(ExitCode::SUCCESS)
}
