//! The file being imported: a regular file, a pipe or standard input (`-`), gunzipped when it
//! starts with gzip's magic bytes, its first 64 KiB kept for format detection, the bytes read
//! so far counted for a progress bar. A device (`/dev/urandom`) is refused.

use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{Error, Format, Result};

/// How much of the start of the file detection looks at.
const HEAD: u64 = 64 * 1024;

/// The most a whole-file read (a thinkdbg export, a text file, Parquet from a pipe) takes.
pub const MAX_WHOLE: u64 = 1 << 30;

/// Counts the bytes read from the file itself (before gunzipping).
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

pub struct Input {
    /// The file as the user named it (`-` for standard input).
    pub name: String,
    /// The path of a regular file (Parquet is read from it by seeking).
    path: Option<PathBuf>,
    /// The file's (gunzipped) bytes from the start, the head included.
    reader: Box<dyn BufRead + Send>,
    head: Vec<u8>,
    /// Bytes on disk, for a regular file.
    pub size: Option<u64>,
    read: Arc<AtomicU64>,
    pub gzip: bool,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input").field("name", &self.name).field("size", &self.size).finish()
    }
}

impl Input {
    pub fn open(file: &Path) -> Result<Input> {
        let name = file.display().to_string();
        let io = |source| Error::Io { path: name.clone(), source };
        let read = Arc::new(AtomicU64::new(0));
        let (raw, path, size): (Box<dyn Read + Send>, _, _) = if file == Path::new("-") {
            (Box::new(std::io::stdin()), None, None)
        } else {
            let kind = std::fs::metadata(file).map_err(io)?;
            use std::os::unix::fs::FileTypeExt;
            let ft = kind.file_type();
            if !(kind.is_file() || ft.is_fifo() || ft.is_socket()) {
                return Err(Error::Usage(format!("'{name}' is not a regular file or a pipe")));
            }
            let f = std::fs::File::open(file).map_err(io)?;
            let path = kind.is_file().then(|| file.to_path_buf());
            (Box::new(f), path, kind.is_file().then_some(kind.len()))
        };
        let mut reader: Box<dyn BufRead + Send> = Box::new(BufReader::with_capacity(
            1 << 20,
            Counting { inner: raw, read: read.clone() },
        ));
        let gzip = reader.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
        if gzip {
            reader = Box::new(BufReader::with_capacity(
                1 << 20,
                flate2::bufread::MultiGzDecoder::new(reader),
            ));
        }
        let mut head = Vec::new();
        reader.by_ref().take(HEAD).read_to_end(&mut head).map_err(io)?;
        let reader = Box::new(Cursor::new(head.clone()).chain(reader));
        Ok(Input { name, path, reader, head, size, read, gzip })
    }

    /// The first 64 KiB (gunzipped).
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    pub fn is_parquet(&self) -> bool {
        self.head.starts_with(b"PAR1")
    }

    /// Bytes of the file read so far (on disk, before gunzipping).
    pub fn done(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// A reader of `done` that outlives a borrow of the reader.
    pub fn counter(&self) -> impl Fn() -> u64 {
        let read = self.read.clone();
        move || read.load(Ordering::Relaxed)
    }

    pub fn reader(&mut self) -> &mut (dyn BufRead + Send) {
        &mut *self.reader
    }

    /// A regular, uncompressed file's path (Parquet seeks in it).
    pub fn seekable_path(&self) -> Option<&Path> {
        self.path.as_deref().filter(|_| !self.gzip)
    }

    /// The whole file, up to `MAX_WHOLE`.
    pub fn read_all(&mut self) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        let name = self.name.clone();
        self.reader
            .by_ref()
            .take(MAX_WHOLE)
            .read_to_end(&mut bytes)
            .map_err(|source| Error::Io { path: name.clone(), source })?;
        if bytes.len() as u64 >= MAX_WHOLE {
            return Err(Error::Bad {
                path: name,
                at: String::new(),
                message: format!("over {} MiB; write it to a file first", MAX_WHOLE >> 20),
            });
        }
        Ok(bytes)
    }
}

/// The format of a file from its name and its first bytes: Parquet's magic; a thinkdbg
/// export's header line; a JSON object with `request`/`response` or `choices` (`openai`),
/// any other JSON object per line (`dataset`); SSE fields (`sse`); readable text (`text`).
/// Anything else is taken for a thinkdbg export, whose parser then says what is wrong.
pub fn detect(input: &Input) -> Format {
    let head = input.head();
    if input.is_parquet() {
        return Format::Dataset;
    }
    let lower = input.name.to_lowercase();
    let stem = lower.trim_end_matches(".gz");
    if [".md", ".markdown", ".txt"].iter().any(|e| stem.ends_with(e)) {
        return Format::Text;
    }
    let start = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let start =
        &start[start.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(start.len())..];
    if start.starts_with(b"{") {
        let first = start.split(|&b| b == b'\n').next().unwrap_or(start);
        if let Ok(serde_json::Value::Object(o)) = serde_json::from_slice(first) {
            if o.get("type").and_then(|t| t.as_str()) == Some("header") {
                return Format::Thinkdbg;
            }
            if o.contains_key("request") || o.contains_key("response") || o.contains_key("choices")
            {
                return Format::Openai;
            }
            return Format::Dataset;
        }
        // One object over several lines (pretty-printed): an exchange or a response.
        let text = String::from_utf8_lossy(start);
        if text.contains("\"choices\"") || text.contains("\"response\"") {
            return Format::Openai;
        }
        return Format::Thinkdbg;
    }
    if [&b"data:"[..], b"event:", b": ", b"id:", b"retry:"].iter().any(|p| start.starts_with(p)) {
        return Format::Sse;
    }
    let readable = match std::str::from_utf8(head) {
        Ok(_) => true,
        // The head may end inside a character.
        Err(e) => e.error_len().is_none() && head.len() as u64 >= HEAD,
    };
    if readable && !head.contains(&0) && !start.is_empty() {
        return Format::Text;
    }
    Format::Thinkdbg
}
