//! `openai`: chat-completion exchanges as logging proxies store them (`{"request", "response"}`,
//! one object or one per line, a response stored as a JSON string or a captured stream too),
//! or bare responses (`{"choices": …}`, the prompt from `--prompt`/`--system`). Every choice
//! becomes a run, the choices of one response sibling runs of one session. Reasoning comes
//! from `reasoning_content` (DeepSeek), `reasoning` (vLLM, OpenRouter) or inline `<think>`;
//! per-token logprobs and alternatives from `logprobs.content[]`, through the same
//! `remote::chunk::Assembler` that records from servers.

use serde_json::{json, Map, Value};

use super::{given_messages, starts_in_think, text_steps, Built, Options, Progress, Result, Sink};
use crate::remote::chunk::Assembler;
use crate::trace::{Message, Phase, RemoteInfo, SamplerSpec, Step, StopReason};

/// Reads every exchange of the file; returns how many were skipped (none: `--where` is for
/// datasets).
pub fn read(
    input: &mut super::Input,
    opts: &Options,
    sink: &mut Sink,
    progress: &mut dyn FnMut(Progress),
) -> Result<usize> {
    let total = input.size;
    let done = input.counter();
    let mut values = serde_json::Deserializer::from_reader(input.reader()).into_iter::<Value>();
    let mut row = 0usize;
    while opts.limit.is_none_or(|l| row < l) {
        let Some(value) = values.next() else { break };
        row += 1;
        let value = value.map_err(|e| sink.bad(format!("row {row}"), json_error(&e)))?;
        let mut runs = exchange(&value, opts).map_err(|m| sink.bad(format!("row {row}"), m))?;
        for r in &mut runs {
            r.place = if r.place.is_empty() {
                format!("row {row}")
            } else {
                format!("row {row} {}", r.place)
            };
        }
        sink.session(runs)?;
        progress(Progress { done: done(), total, rows: false, sessions: sink.sessions() });
    }
    Ok(0)
}

/// serde_json's error in a user's words (it names the line and column).
pub fn json_error(e: &serde_json::Error) -> String {
    if e.is_eof() {
        format!("not valid JSON: it ends inside a value (cut short?): {e}")
    } else if e.is_io() {
        format!("not readable: {e}")
    } else if e.to_string().contains("invalid unicode") || e.to_string().contains("UTF-8") {
        format!("not UTF-8 ({e})")
    } else {
        format!("not valid JSON ({e})")
    }
}

/// The keys of an object, for messages that say what was there instead.
pub fn keys(o: &Map<String, Value>) -> String {
    let mut k: Vec<&str> = o.keys().map(String::as_str).take(12).collect();
    if o.len() > 12 {
        k.push("…");
    }
    if k.is_empty() {
        "none".into()
    } else {
        k.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ")
    }
}

/// The runs of one exchange or bare response; the error is the message for `row N: …`.
fn exchange(value: &Value, opts: &Options) -> std::result::Result<Vec<Built>, String> {
    let Some(obj) = value.as_object() else {
        return Err(format!("expected a JSON object, found {}", kind(value)));
    };
    let (request, response) = if obj.contains_key("response") || obj.contains_key("request") {
        let response = obj.get("response").filter(|r| !r.is_null()).ok_or_else(|| {
            "no 'response' (a request without its response: nothing to import)".to_string()
        })?;
        (obj.get("request"), response.clone())
    } else if obj.contains_key("choices") {
        (None, value.clone())
    } else {
        return Err(format!(
            "not a chat completion: expected 'request' and 'response', or 'choices' (keys: {})",
            keys(obj)
        ));
    };
    // Proxies store the body under `body`, or the body as text (JSON, or a captured stream).
    let response = match response {
        Value::Object(mut o) if o.contains_key("body") && !o.contains_key("choices") => {
            o.remove("body").unwrap_or_default()
        }
        r => r,
    };
    let endpoint = obj
        .get("url")
        .or_else(|| obj.get("endpoint"))
        .or_else(|| request.and_then(|r| r.get("url")))
        .and_then(Value::as_str)
        .map(crate::remote::redact)
        .unwrap_or_default();
    let mut messages = request.map(request_messages).transpose()?.unwrap_or_default();
    if opts.prompt.is_some() || opts.system.is_some() {
        messages = given_messages(opts);
    }
    let sampler = request.and_then(sampler_of);
    let requested = request.and_then(|r| r.get("model")).and_then(Value::as_str).unwrap_or("");
    let mut runs = match response {
        Value::String(text) if text.trim_start().starts_with("data:") => {
            super::sse::runs_of(std::io::Cursor::new(text.into_bytes()), requested)?
        }
        Value::String(text) => {
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| format!("'response' is text but not JSON ({e})"))?;
            response_runs(&v, requested)?
        }
        v => response_runs(&v, requested)?,
    };
    for r in &mut runs {
        r.messages = messages.clone();
        r.sampler = sampler.clone();
        r.endpoint = endpoint.clone();
    }
    Ok(runs)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Message content as text: a string, or the text parts of a list of parts.
pub fn content_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p.as_str().or_else(|| p.get("text").and_then(Value::as_str)))
                .collect::<Vec<_>>()
                .concat(),
        ),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

fn request_messages(request: &Value) -> std::result::Result<Vec<Message>, String> {
    if let Some(p) = request.get("prompt").and_then(Value::as_str) {
        return Ok(vec![Message::new("user", p)]);
    }
    let Some(list) = request.get("messages") else { return Ok(Vec::new()) };
    let Some(list) = list.as_array() else {
        return Err(format!("'request.messages' is {}, not a list", kind(list)));
    };
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let role = m.get("role").and_then(Value::as_str);
            let content = m.get("content").and_then(content_text);
            match (role, content) {
                (Some(r), Some(c)) => Ok(Message::new(r, c)),
                _ => Err(format!(
                    "'request.messages[{i}]' needs a 'role' and a text 'content' (got {})",
                    crate::remote::error::quote(&m.to_string(), 120)
                )),
            }
        })
        .collect()
}

fn sampler_of(request: &Value) -> Option<SamplerSpec> {
    let f = |k: &str| request.get(k).and_then(Value::as_f64);
    let temperature = f("temperature")?;
    let d = SamplerSpec::default();
    Some(SamplerSpec {
        temperature: temperature as f32,
        top_k: f("top_k").map_or(d.top_k, |x| x as usize),
        top_p: f("top_p").map_or(d.top_p, |x| x as f32),
        min_p: f("min_p").map_or(d.min_p, |x| x as f32),
        repeat_penalty: f("repetition_penalty").map_or(d.repeat_penalty, |x| x as f32),
        seed: f("seed").map_or(d.seed, |x| x as u64),
        max_tokens: f("max_completion_tokens")
            .or_else(|| f("max_tokens"))
            .map_or(crate::trace::NO_TOKEN_CAP, |x| x as usize),
        ..d
    })
}

pub fn stop_of(finish: Option<&str>) -> Option<StopReason> {
    match finish? {
        "length" => Some(StopReason::MaxTokens),
        "abort" | "cancelled" => Some(StopReason::User),
        _ => Some(StopReason::Eos),
    }
}

/// The runs of a (non-streamed) response: one per choice, in `index` order.
fn response_runs(resp: &Value, requested: &str) -> std::result::Result<Vec<Built>, String> {
    if let Some(err) = resp.get("error").filter(|e| !e.is_null()) {
        let msg = err
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| err.to_string(), str::to_string);
        return Err(format!(
            "the response is an error: '{}'",
            crate::remote::error::quote(&msg, 200)
        ));
    }
    let Some(choices) = resp.get("choices").and_then(Value::as_array) else {
        let found = resp.as_object().map_or_else(|| kind(resp).to_string(), keys);
        return Err(format!("the response has no 'choices' list (keys: {found})"));
    };
    if choices.is_empty() {
        return Err("the response has no choices (no response to import)".into());
    }
    let model = resp.get("model").and_then(Value::as_str).unwrap_or(requested).to_string();
    let usage = resp.get("usage").cloned().unwrap_or(Value::Null);
    let mut order: Vec<(u64, &Value)> = choices
        .iter()
        .enumerate()
        .map(|(i, c)| (c.get("index").and_then(Value::as_u64).unwrap_or(i as u64), c))
        .collect();
    order.sort_by_key(|(i, _)| *i);
    let several = order.len() > 1;
    order
        .into_iter()
        .map(|(i, c)| {
            let mut b = choice(c, &model, &usage).map_err(|m| format!("choice {i}: {m}"))?;
            if several {
                b.place = format!("choice {i}");
                b.label = Some(format!("choice {i}"));
            }
            Ok(b)
        })
        .collect()
}

/// One choice of a response as a run.
fn choice(c: &Value, model: &str, usage: &Value) -> std::result::Result<Built, String> {
    let message = c.get("message").or_else(|| c.get("delta"));
    let field = |k: &str| message.and_then(|m| m.get(k)).and_then(Value::as_str).unwrap_or("");
    let content = match message.and_then(|m| m.get("content")) {
        Some(v) => content_text(v).ok_or_else(|| format!("'message.content' is {}", kind(v)))?,
        None => c.get("text").and_then(Value::as_str).unwrap_or("").to_string(),
    };
    let (reasoning, from) = match (field("reasoning_content"), field("reasoning")) {
        (r, _) if !r.is_empty() => (r, "reasoning_content"),
        (_, r) if !r.is_empty() => (r, "reasoning"),
        _ => ("", ""),
    };
    if reasoning.is_empty() && content.is_empty() {
        return Err("no response: the message has no 'content' and no reasoning".into());
    }
    let finish = c.get("finish_reason").and_then(Value::as_str);
    let entries = c
        .get("logprobs")
        .and_then(|l| l.get("content"))
        .and_then(Value::as_array)
        .filter(|e| !e.is_empty());
    let usage_prompt = usage.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0) as u32;
    let mut built =
        Built { stop: stop_of(finish), usage_prompt_tokens: usage_prompt, ..Built::default() };
    match entries {
        None => {
            text_steps(reasoning, &content, starts_in_think(&content), &mut built.steps);
            built.info = no_logprobs_info(model, from, &content);
        }
        Some(entries) => {
            let (steps, info) =
                with_logprobs(entries, reasoning, from, &content, model, finish, usage);
            built.steps = steps;
            built.info = info;
        }
    }
    Ok(built)
}

/// What a run imported without logprobs lacks.
pub fn no_logprobs_info(model: &str, from: &str, content: &str) -> RemoteInfo {
    let inline = content.contains("<think>") || content.contains("</think>");
    RemoteInfo {
        model: model.to_string(),
        reasoning_from: if from.is_empty() && inline {
            "inline <think>".into()
        } else {
            from.into()
        },
        routing_format: String::new(),
        missing: vec![
            "token ids".into(),
            "entropy".into(),
            "rendered prompt".into(),
            "logprobs (the file has none: steps are words, not tokens)".into(),
        ],
        notes: Vec::new(),
    }
}

/// The text of every logprob entry, its bytes when given (a character split across tokens
/// is whole once the entries are joined).
fn entries_text(entries: &[Value]) -> String {
    let mut bytes = Vec::new();
    for e in entries {
        match e.get("bytes").and_then(Value::as_array) {
            Some(b) => bytes.extend(b.iter().filter_map(Value::as_u64).map(|x| x as u8)),
            None => bytes.extend(e.get("token").and_then(Value::as_str).unwrap_or("").as_bytes()),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Steps from a choice with `logprobs.content`, through the server-recording assembler; the
/// cases that a whole message (rather than a stream of chunks) brings are settled first:
/// logprobs that cover the reasoning too, only the answer (DeepSeek), or the reasoning with
/// its `</think>` (vLLM).
fn with_logprobs(
    entries: &[Value],
    reasoning: &str,
    from: &str,
    content: &str,
    model: &str,
    finish: Option<&str>,
    usage: &Value,
) -> (Vec<Step>, RemoteInfo) {
    let all = entries_text(entries);
    let mut asm = Assembler::new(0, false);
    let mut steps = Vec::new();
    let mut feed = |asm: &mut Assembler, delta: Value, lp: Option<&[Value]>| {
        let v = json!({
            "model": model,
            "choices": [{"delta": delta, "logprobs": lp.map(|e| json!({"content": e})), "finish_reason": finish}],
            "usage": usage,
        });
        // The shape is ours: it always deserializes.
        if let Ok(s) = asm.chunk(&v, 0, 0) {
            steps.extend(s);
        }
    };
    let mut note = None;
    if reasoning.is_empty() || all == format!("{reasoning}{content}") {
        feed(&mut asm, json!({"reasoning_content": reasoning, "content": content}), Some(entries));
    } else if all == content {
        // The reasoning came without logprobs: word-sized thinking steps, then the tokens.
        let mut think = Vec::new();
        text_steps(reasoning, "", false, &mut think);
        for s in &think {
            feed(&mut asm, json!({"reasoning_content": s.text}), None);
        }
        feed(&mut asm, json!({"content": content}), Some(entries));
        note = Some(format!(
            "the file has no logprobs for the reasoning: {} thinking steps are words, not tokens",
            think.len()
        ));
    } else if all.contains("</think>") && all.ends_with(content) && all.contains(reasoning.trim()) {
        // The logprobs hold the whole output, `</think>` included: split inline.
        feed(&mut asm, json!({"content": all}), Some(entries));
    } else {
        feed(&mut asm, json!({"reasoning_content": reasoning, "content": content}), Some(entries));
    }
    fix_leading_think(&mut steps);
    let mut info = asm.info(model);
    if !from.is_empty() {
        info.reasoning_from = from.to_string();
    }
    info.missing.retain(|m| m != "usage (token counts)" || usage.is_null());
    if let Some(n) = note {
        info.notes.retain(|x| !x.contains("SGLang #26778"));
        info.notes.push(n);
    }
    (steps, info)
}

/// Output that closes `</think>` before opening it began thinking in the prompt (R1's
/// template): every step up to the `</think>` is thinking.
pub fn fix_leading_think(steps: &mut [Step]) {
    let text: String = steps.iter().map(|s| s.text.as_str()).collect();
    if !starts_in_think(&text) {
        return;
    }
    for s in steps.iter_mut() {
        s.phase = Phase::Think;
        if s.text.contains("</think>") {
            break;
        }
    }
}
