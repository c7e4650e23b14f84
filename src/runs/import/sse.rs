//! `sse`: a captured `text/event-stream` of a streamed chat completion, as `curl -N` saves it:
//! read with the recorder's `SseReader`, each choice's chunks assembled by its own
//! `Assembler` (`n > 1` streams interleave choices by `index`), up to `[DONE]`. The prompt
//! comes from `--prompt`/`--system` (a stream carries none).

use std::collections::BTreeMap;
use std::io::BufRead;

use serde_json::{json, Value};

use super::openai::{fix_leading_think, stop_of};
use super::{given_messages, Built, Options, Progress, Result, Sink};
use crate::remote::chunk::Assembler;
use crate::remote::sse::{ReadError, SseReader};
use crate::trace::Step;

pub fn read(
    input: &mut super::Input,
    opts: &Options,
    sink: &mut Sink,
    progress: &mut dyn FnMut(Progress),
) -> Result<usize> {
    let (total, done) = (input.size, input.counter());
    let mut runs = runs_of(input.reader(), "").map_err(|m| sink.bad("", m))?;
    let messages = given_messages(opts);
    for r in &mut runs {
        r.messages = messages.clone();
    }
    sink.session(runs)?;
    progress(Progress { done: done(), total, rows: false, sessions: sink.sessions() });
    Ok(0)
}

struct Choice {
    asm: Assembler,
    steps: Vec<Step>,
}

/// The runs of a captured stream; the error is the message (it names the line).
pub fn runs_of(reader: impl BufRead, requested: &str) -> std::result::Result<Vec<Built>, String> {
    let mut sse = SseReader::new(reader);
    let mut choices: BTreeMap<u64, Choice> = BTreeMap::new();
    let mut usage = Value::Null;
    let mut model = None;
    let mut done = false;
    let mut partial = false;
    loop {
        let ev = match sse.next_event() {
            Ok(Some(ev)) => ev,
            Ok(None) => break,
            Err(ReadError::Bad(e)) => return Err(e.to_string()),
            Err(ReadError::Io(e)) => return Err(format!("not readable: {e}")),
        };
        if ev.data.trim() == "[DONE]" {
            done = true;
            break;
        }
        let v: Value = match serde_json::from_str(&ev.data) {
            Ok(v) => v,
            // The last event of a capture cut mid-line (curl stopped): what came before it is
            // the run, interrupted.
            Err(_) if matches!(sse.next_event(), Ok(None)) => {
                partial = true;
                break;
            }
            Err(e) => {
                return Err(format!(
                    "line {}: not JSON ({e}): '{}'",
                    ev.line,
                    crate::remote::error::quote(&ev.data, 200)
                ))
            }
        };
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            let msg = err
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| err.to_string(), str::to_string);
            return Err(format!(
                "line {}: the stream carries an error: '{}'",
                ev.line,
                crate::remote::error::quote(&msg, 200)
            ));
        }
        if let Some(m) = v.get("model").and_then(Value::as_str) {
            model = Some(m.to_string());
        }
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            usage = u.clone();
        }
        let Some(list) = v.get("choices").and_then(Value::as_array) else {
            if v.get("usage").is_some() {
                continue;
            }
            return Err(format!(
                "line {}: not a chat-completion chunk (no 'choices'): '{}'",
                ev.line,
                crate::remote::error::quote(&ev.data, 200)
            ));
        };
        for (k, c) in list.iter().enumerate() {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(k as u64);
            let ch = choices
                .entry(index)
                .or_insert_with(|| Choice { asm: Assembler::new(0, false), steps: Vec::new() });
            let chunk = json!({"model": v.get("model"), "choices": [c]});
            let steps = ch.asm.chunk(&chunk, ev.line, 0).map_err(|e| e.to_string())?;
            ch.steps.extend(steps);
        }
    }
    let model = model.unwrap_or_else(|| requested.to_string());
    let several = choices.len() > 1;
    let mut runs = Vec::new();
    for (index, mut ch) in choices {
        if ch.steps.is_empty() {
            continue;
        }
        fix_leading_think(&mut ch.steps);
        let mut info = ch.asm.info(&model);
        if !usage.is_null() {
            info.missing.retain(|m| m != "usage (token counts)");
        }
        let cut = !done && ch.asm.finish.is_none();
        if cut {
            info.notes.push(
                "the capture ends before the stream finished ('[DONE]' or a finish reason)".into(),
            );
        }
        if partial {
            info.notes.push(
                "the capture ends inside an event: that last, partial event was left out".into(),
            );
        }
        runs.push(Built {
            steps: ch.steps,
            info,
            stop: stop_of(ch.asm.finish.as_deref()),
            label: several.then(|| format!("choice {index}")),
            place: if several { format!("choice {index}") } else { String::new() },
            usage_prompt_tokens: usage.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0)
                as u32,
            cut,
            ..Built::default()
        });
    }
    if runs.is_empty() {
        return Err("no response: the stream has no chunk with text".into());
    }
    Ok(runs)
}
