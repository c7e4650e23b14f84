//! `text`: a plain or Markdown file holding one model output, its reasoning inside
//! `<think>…</think>` (or closed by `</think>` only, when the prompt opened it); the prompt from
//! `--prompt`/`--system`. The text is kept exactly, Markdown included.

use super::{given_messages, starts_in_think, text_steps, Built, Options, Result, Sink};
use crate::trace::RemoteInfo;

/// The most a text import reads: one output, not a corpus.
const MAX_TEXT: usize = 64 << 20;

pub fn read(input: &mut super::Input, opts: &Options, sink: &mut Sink) -> Result<usize> {
    let bytes = input.read_all()?;
    if bytes.len() > MAX_TEXT {
        return Err(
            sink.bad("", format!("a text file over {} MiB: is it one output?", MAX_TEXT >> 20))
        );
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            return Err(sink.bad(format!("line {line}"), format!("not UTF-8 (byte {at})")));
        }
    };
    if text.trim().is_empty() {
        return Err(sink.bad("", "no response: the file is empty"));
    }
    let mut built = Built { messages: given_messages(opts), ..Built::default() };
    text_steps("", &text, starts_in_think(&text), &mut built.steps);
    let inline = text.contains("<think>") || text.contains("</think>");
    built.info = RemoteInfo {
        reasoning_from: if inline { "inline <think>".into() } else { String::new() },
        missing: vec![
            "token ids".into(),
            "logprobs (the file has none: steps are words, not tokens)".into(),
            "entropy".into(),
            "model".into(),
        ],
        ..RemoteInfo::default()
    };
    sink.session(vec![built])?;
    Ok(0)
}
