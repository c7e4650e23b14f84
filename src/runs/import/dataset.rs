//! `dataset`: rows of a JSONL (or Parquet, read in `parquet_rows`) dataset, mapped to
//! sessions by fields: the prompt (a string, or a `messages`/`conversations` list), the
//! response (a string, or a list: one run per element), its reasoning and answer, a label.
//! Fields are dotted paths (`meta.source`, `generations.0`); unnamed fields are looked for
//! under the names public reasoning datasets use (OpenR1-Math, LIMO, s1K, Bespoke-Stratos).
//! One session per row, its runs labelled; `--where FIELD=VALUE` keeps matching rows,
//! `--limit N` stops after N imported rows.

use std::io::BufRead;
use std::str::FromStr;

use serde_json::Value;

use super::openai::{content_text, json_error, keys};
use super::{starts_in_think, text_steps, Built, Options, Progress, Result, Sink};
use crate::trace::{Message, RemoteInfo};

/// Which fields of a row hold what; `None` looks under the usual names.
#[derive(Debug, Clone, Default)]
pub struct FieldMap {
    pub prompt: Option<String>,
    pub response: Option<String>,
    pub reasoning: Option<String>,
    pub answer: Option<String>,
    pub label: Option<String>,
}

/// `FIELD=VALUE`: keeps rows whose field (a dotted path) is that value (a string equal to
/// it, or any other value whose JSON text is it: `level=3`, `correct=true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Where {
    pub field: String,
    pub value: String,
}

impl FromStr for Where {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.split_once('=') {
            Some((f, v)) if !f.trim().is_empty() => {
                Ok(Where { field: f.trim().to_string(), value: v.to_string() })
            }
            _ => Err(format!("'{s}' is not FIELD=VALUE")),
        }
    }
}

const PROMPT_NAMES: [&str; 6] = ["problem", "prompt", "question", "input", "instruction", "query"];
const CHAT_NAMES: [&str; 2] = ["messages", "conversations"];
const RESPONSE_NAMES: [&str; 8] = [
    "generations",
    "responses",
    "response",
    "completion",
    "completions",
    "output",
    "outputs",
    "generation",
];

/// The value at a dotted path (a key with dots in it is tried whole first).
pub fn lookup<'v>(row: &'v Value, path: &str) -> Option<&'v Value> {
    if let Some(v) = row.get(path) {
        return Some(v);
    }
    path.split('.').try_fold(row, |v, seg| match v {
        Value::Object(o) => o.get(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn fields_of(row: &Value) -> String {
    row.as_object().map_or_else(|| "none: the row is not an object".into(), keys)
}

/// A named field, or an error naming it and the fields there are.
fn named<'v>(row: &'v Value, path: &str, flag: &str) -> std::result::Result<&'v Value, String> {
    lookup(row, path)
        .ok_or_else(|| format!("no field '{path}' ({flag}); the row's fields: {}", fields_of(row)))
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A chat list (`[{role, content}]` or ShareGPT's `[{from, value}]`) as messages.
fn chat(list: &[Value]) -> Option<Vec<Message>> {
    list.iter()
        .map(|m| {
            let role = m.get("role").or_else(|| m.get("from")).and_then(Value::as_str)?;
            let content = m.get("content").or_else(|| m.get("value")).and_then(content_text)?;
            let role = match role {
                "human" => "user",
                "gpt" | "model" => "assistant",
                r => r,
            };
            Some(Message::new(role, content))
        })
        .collect()
}

/// One response: a string, or a message object (`content`, maybe `reasoning_content`).
fn response_text(v: &Value) -> Option<(String, String)> {
    match v {
        Value::String(s) => Some((String::new(), s.clone())),
        Value::Object(o) => {
            let content = o.get("content").or_else(|| o.get("text")).and_then(content_text)?;
            let reasoning = ["reasoning_content", "reasoning"]
                .iter()
                .find_map(|k| o.get(*k).and_then(Value::as_str))
                .unwrap_or("")
                .to_string();
            Some((reasoning, content))
        }
        _ => None,
    }
}

/// The elements of a field that may be one value or a list of them.
fn elements(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => Vec::new(),
        one => vec![one],
    }
}

/// Whether the row passes every `--where`.
pub fn keeps(row: &Value, wheres: &[Where]) -> std::result::Result<bool, String> {
    for w in wheres {
        let v = named(row, &w.field, "--where")?;
        if as_text(v) != w.value {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The runs of one row (its generations); the error is the message for `row N: …`.
pub fn row_runs(row: &Value, n: usize, opts: &Options) -> std::result::Result<Vec<Built>, String> {
    let f = &opts.fields;
    if !row.is_object() {
        return Err(format!("a row must be a JSON object, not {}", as_text(row)));
    }
    // The prompt: a text or a chat list; a chat's closing assistant turn is the response
    // when none is named.
    let mut from_chat: Option<Value> = None;
    let mut messages = match &f.prompt {
        Some(p) => prompt_messages(named(row, p, "--prompt-field")?, p, &mut from_chat)?,
        None => match PROMPT_NAMES.iter().find_map(|k| row.get(*k).filter(|v| v.is_string())) {
            Some(v) => vec![Message::new("user", as_text(v))],
            None => match CHAT_NAMES.iter().find_map(|k| row.get(*k).map(|v| (k, v))) {
                Some((k, v)) => prompt_messages(v, k, &mut from_chat)?,
                None => Vec::new(),
            },
        },
    };
    if !messages.iter().any(|m| m.role == "system") {
        let system = opts
            .system
            .clone()
            .or_else(|| row.get("system").and_then(Value::as_str).map(str::to_string));
        if let Some(s) = system.filter(|s| !s.is_empty()) {
            messages.insert(0, Message::new("system", s));
        }
    }
    let response = match &f.response {
        Some(p) => Some((p.clone(), named(row, p, "--response-field")?.clone())),
        None if f.reasoning.is_some() || f.answer.is_some() => None,
        None => RESPONSE_NAMES
            .iter()
            .find_map(|k| row.get(*k).filter(|v| !v.is_null()).map(|v| (k.to_string(), v.clone())))
            .or_else(|| from_chat.take().map(|v| ("the closing assistant message".into(), v))),
    };
    let reasoning =
        f.reasoning.as_deref().map(|p| named(row, p, "--reasoning-field")).transpose()?;
    let answer = f.answer.as_deref().map(|p| named(row, p, "--answer-field")).transpose()?;
    if response.is_none() && reasoning.is_none() && answer.is_none() {
        return Err(format!(
            "no response: none of the fields {} (name it with '--response-field'; the row's fields: {})",
            RESPONSE_NAMES.join(", "),
            fields_of(row)
        ));
    }
    let resp_list = response.as_ref().map(|(_, v)| elements(v));
    let reason_list = reasoning.map(elements);
    let answer_list = answer.map(elements);
    let count = [&resp_list, &reason_list, &answer_list]
        .iter()
        .filter_map(|l| l.as_ref().map(Vec::len))
        .max()
        .unwrap_or(0);
    if count == 0 {
        let name = response.as_ref().map_or_else(
            || f.reasoning.clone().or_else(|| f.answer.clone()).unwrap_or_default(),
            |(k, _)| k.clone(),
        );
        return Err(format!("no response: '{name}' is empty"));
    }
    let label = f.label.as_deref().map(|p| named(row, p, "--label-field")).transpose()?;
    let model = row.get("model").and_then(Value::as_str).unwrap_or("").to_string();
    let pick = |l: &Option<Vec<&Value>>, i: usize| -> Option<Value> {
        l.as_ref()
            .and_then(|l| if l.len() == 1 { l.first() } else { l.get(i) })
            .map(|v| (*v).clone())
    };
    let mut runs = Vec::with_capacity(count);
    for i in 0..count {
        let (mut think, content) = match pick(&resp_list, i) {
            Some(v) => response_text(&v).ok_or_else(|| {
                format!(
                    "the response{} is {}, not text",
                    if count > 1 { format!(" {i}") } else { String::new() },
                    crate::remote::error::quote(&v.to_string(), 80)
                )
            })?,
            None => (String::new(), pick(&answer_list, i).map(|v| as_text(&v)).unwrap_or_default()),
        };
        if let Some(r) = pick(&reason_list, i) {
            think = as_text(&r);
        }
        if think.is_empty() && content.trim().is_empty() {
            return Err(format!(
                "no response: generation {i} is empty{}",
                response.as_ref().map_or(String::new(), |(k, _)| format!(" (field '{k}')"))
            ));
        }
        let mut b = Built { messages: messages.clone(), ..Built::default() };
        text_steps(&think, &content, think.is_empty() && starts_in_think(&content), &mut b.steps);
        let value = label.map(|l| match l {
            Value::Array(a) if a.len() == count => as_text(&a[i]),
            other => as_text(other),
        });
        b.label = match (count > 1, value) {
            (true, Some(v)) => Some(format!("g{i} {v}")),
            (true, None) => Some(format!("g{i}")),
            (false, v) => v,
        };
        b.place = if count > 1 { format!("row {n} generation {i}") } else { format!("row {n}") };
        let inline = content.contains("<think>") || content.contains("</think>");
        b.info = RemoteInfo {
            model: model.clone(),
            reasoning_from: match (&f.reasoning, inline) {
                (Some(p), _) if !think.is_empty() => format!("field '{p}'"),
                (_, true) => "inline <think>".into(),
                _ => String::new(),
            },
            missing: vec![
                "token ids".into(),
                "logprobs (the file has none: steps are words, not tokens)".into(),
                "entropy".into(),
            ],
            ..RemoteInfo::default()
        };
        runs.push(b);
    }
    Ok(runs)
}

fn prompt_messages(
    v: &Value,
    name: &str,
    closing: &mut Option<Value>,
) -> std::result::Result<Vec<Message>, String> {
    match v {
        Value::String(s) => Ok(vec![Message::new("user", s.clone())]),
        Value::Array(list) => {
            let mut m = chat(list).ok_or_else(|| {
                format!(
                    "'{name}' is a list but not of messages ('role'/'content' or 'from'/'value')"
                )
            })?;
            if m.last().is_some_and(|x| x.role == "assistant") {
                let last = m.pop().map(|x| x.content).unwrap_or_default();
                *closing = Some(Value::String(last));
            }
            Ok(m)
        }
        other => Err(format!("the prompt '{name}' is {}, not text or messages", as_text(other))),
    }
}

/// The longest line a JSONL dataset may have.
const MAX_LINE: u64 = 256 << 20;

/// Reads JSONL rows one line at a time; returns how many `--where` skipped.
pub fn read_jsonl(
    input: &mut super::Input,
    opts: &Options,
    sink: &mut Sink,
    progress: &mut dyn FnMut(Progress),
) -> Result<usize> {
    let (total, done) = (input.size, input.counter());
    let name = input.name.clone();
    let reader = input.reader();
    let mut line = Vec::new();
    let (mut n, mut kept, mut skipped) = (0usize, 0usize, 0usize);
    loop {
        if opts.limit.is_some_and(|l| kept >= l) {
            break;
        }
        line.clear();
        let got = std::io::Read::take(&mut *reader, MAX_LINE)
            .read_until(b'\n', &mut line)
            .map_err(|source| super::Error::Io { path: name.clone(), source })?;
        if got == 0 {
            break;
        }
        n += 1;
        let at = format!("row {n}");
        if line.len() as u64 >= MAX_LINE {
            return Err(sink.bad(at, format!("a line over {} MiB", MAX_LINE >> 20)));
        }
        let text = std::str::from_utf8(&line).map_err(|e| {
            sink.bad(&at, format!("not UTF-8 (byte {} of the line)", e.valid_up_to()))
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let row: Value = serde_json::from_str(text).map_err(|e| sink.bad(&at, json_error(&e)))?;
        if !keeps(&row, &opts.wheres).map_err(|m| sink.bad(&at, m))? {
            skipped += 1;
            continue;
        }
        let runs = row_runs(&row, n, opts).map_err(|m| sink.bad(&at, m))?;
        sink.session(runs)?;
        kept += 1;
        if kept % 64 == 0 {
            progress(Progress { done: done(), total, rows: false, sessions: sink.sessions() });
        }
    }
    progress(Progress { done: done(), total, rows: false, sessions: sink.sessions() });
    Ok(skipped)
}
