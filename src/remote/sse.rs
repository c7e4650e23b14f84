//! A server-sent-events reader for OpenAI-compatible streams: `data:` lines joined into events
//! at blank lines, comments and `event`/`id`/`retry` fields skipped, anything else refused with
//! its line number and content. Depends on nothing else in the crate but this module's error.

use std::io::BufRead;

use super::error::{quote, Error};

/// One event: its data lines joined by `\n`, and the line number of the first of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub line: usize,
    pub data: String,
}

/// Why no event came.
#[derive(Debug)]
pub enum ReadError {
    /// The connection failed or timed out (the caller tells which).
    Io(std::io::Error),
    /// A line that is not SSE.
    Bad(Error),
}

/// The longest line (and event) a stream may send. A streamed chunk is a few kilobytes, a few
/// hundred with routed experts of every layer; anything near this is a broken or hostile server,
/// and without a cap one line could take all the memory there is.
pub const MAX_LINE: usize = 16 << 20;

pub struct SseReader<R> {
    inner: R,
    line_no: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> SseReader<R> {
    pub fn new(inner: R) -> Self {
        SseReader { inner, line_no: 0, buf: Vec::with_capacity(4096) }
    }

    /// Lines read so far.
    pub fn lines(&self) -> usize {
        self.line_no
    }

    /// Reads up to and including the next `\n` into `buf`, but stops once `buf` holds more than
    /// `MAX_LINE` bytes (the caller then refuses the line). Returns the bytes read.
    fn read_line(&mut self) -> Result<usize, ReadError> {
        let mut n = 0;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReadError::Io(e)),
            };
            if chunk.is_empty() {
                return Ok(n);
            }
            let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            self.buf.extend_from_slice(&chunk[..take]);
            self.inner.consume(take);
            n += take;
            if done || self.buf.len() > MAX_LINE {
                return Ok(n);
            }
        }
    }

    /// The next event, or `None` at the end of the stream.
    pub fn next_event(&mut self) -> Result<Option<Event>, ReadError> {
        let mut data: Option<Event> = None;
        loop {
            self.buf.clear();
            let n = self.read_line()?;
            if n == 0 {
                return Ok(data);
            }
            self.line_no += 1;
            let line = self.line_no;
            if self.buf.len() > MAX_LINE || data.as_ref().is_some_and(|d| d.data.len() > MAX_LINE) {
                return Err(ReadError::Bad(Error::Sse {
                    line,
                    message: format!("a line or event longer than {} MiB", MAX_LINE >> 20),
                    content: quote(
                        &String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)]),
                        200,
                    ),
                }));
            }
            let raw = match std::str::from_utf8(&self.buf) {
                Ok(s) => s.trim_end_matches(['\n', '\r']),
                Err(e) => {
                    return Err(ReadError::Bad(Error::Sse {
                        line,
                        message: format!("not UTF-8 ({e})"),
                        content: quote(&String::from_utf8_lossy(&self.buf), 200),
                    }))
                }
            };
            if raw.is_empty() {
                if data.is_some() {
                    return Ok(data);
                }
                continue;
            }
            if raw.starts_with(':') {
                continue;
            }
            let (field, value) = match raw.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (raw, ""),
            };
            match field {
                "data" => match &mut data {
                    Some(ev) => {
                        ev.data.push('\n');
                        ev.data.push_str(value);
                    }
                    None => data = Some(Event { line, data: value.to_string() }),
                },
                "event" | "id" | "retry" => {}
                _ => {
                    return Err(ReadError::Bad(Error::Sse {
                        line,
                        message: "not an SSE field (expected 'data:', 'event:', 'id:', 'retry:' or ':comment')".into(),
                        content: quote(raw, 200),
                    }))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> Vec<Result<Event, String>> {
        let mut r = SseReader::new(text.as_bytes());
        let mut out = Vec::new();
        loop {
            match r.next_event() {
                Ok(Some(ev)) => out.push(Ok(ev)),
                Ok(None) => return out,
                Err(ReadError::Bad(e)) => {
                    out.push(Err(e.to_string()));
                    return out;
                }
                Err(ReadError::Io(e)) => {
                    out.push(Err(e.to_string()));
                    return out;
                }
            }
        }
    }

    #[test]
    fn joins_data_lines_and_skips_comments_and_crlf() {
        let got = events(
            ": keep-alive\r\n\r\nevent: x\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\ndata:[DONE]\n\n",
        );
        assert_eq!(
            got,
            vec![
                Ok(Event { line: 4, data: "{\"a\":\n1}".into() }),
                Ok(Event { line: 7, data: "[DONE]".into() })
            ]
        );
    }

    #[test]
    fn a_non_sse_line_is_refused_with_its_number_and_content() {
        let got = events("data: {}\n\n<html>oops</html>\n");
        assert_eq!(got.len(), 2);
        let err = got[1].clone().unwrap_err();
        assert!(err.contains("line 3") && err.contains("'<html>oops</html>'"), "{err}");
    }

    #[test]
    fn an_event_cut_by_the_end_of_stream_is_returned() {
        assert_eq!(events("data: x"), vec![Ok(Event { line: 1, data: "x".into() })]);
    }

    #[test]
    fn an_endless_line_or_event_is_refused_at_the_cap() {
        // A server that sends one line without end: refused, not read into memory.
        let mut r = SseReader::new(std::io::BufReader::new(std::io::repeat(b'a')));
        match r.next_event() {
            Err(ReadError::Bad(e)) => assert!(e.to_string().contains("longer than 16 MiB"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(r.buf.len() <= MAX_LINE + 64 * 1024);
        // Many short data lines that add up to an endless event.
        let line = format!("data: {}\n", "b".repeat(1 << 20));
        let text = line.repeat(20);
        let got = events(&text);
        let err = got.last().unwrap().clone().unwrap_err();
        assert!(err.contains("longer than 16 MiB"), "{err}");
    }
}
