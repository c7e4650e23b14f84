//! Unit tests of the remote client: SGLang- and vLLM-format streams with routed experts (built
//! from their documented formats), the known server bugs, inline `<think>`, and bad inputs
//! served by a tiny HTTP server on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use super::chunk::Assembler;
use super::routing::{self, Found};
use super::*;
use crate::record::Event;
use crate::trace::{Message, Phase, SamplerSpec, Step, StopReason, UNKNOWN_TOKEN};

fn entry(token: &str, lp: f64, top: &[(&str, f64)]) -> Value {
    let top: Vec<Value> = top.iter().map(|(t, l)| json!({"token": t, "logprob": l})).collect();
    json!({"token": token, "logprob": lp, "top_logprobs": top})
}

/// A chunk: reasoning under `field`, content, and logprob entries (`None` = `logprobs: null`).
fn chunk(field: &str, reasoning: &str, content: &str, entries: Option<Vec<Value>>) -> Value {
    let mut delta = json!({});
    if !reasoning.is_empty() {
        delta[field] = json!(reasoning);
    }
    if !content.is_empty() {
        delta["content"] = json!(content);
    }
    let logprobs = entries.map_or(Value::Null, |e| json!({"content": e}));
    json!({"model": "m", "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": null}]})
}

fn assemble(chunks: &[Value]) -> (Vec<Step>, Assembler) {
    let mut a = Assembler::new(2, false);
    let mut steps = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        steps.extend(a.chunk(c, i + 1, i as u64).unwrap());
    }
    (steps, a)
}

fn texts(steps: &[Step], phase: Phase) -> String {
    steps.iter().filter(|s| s.phase == phase).map(|s| s.text.as_str()).collect()
}

/// SGLang's routed experts: base64 of little-endian int32, `[tokens, layers, top_k]` flattened.
fn sglang_experts(rows: usize, layers: usize, k: usize) -> String {
    let mut bytes = Vec::new();
    for r in 0..rows {
        for l in 0..layers {
            for j in 0..k {
                bytes.extend_from_slice(&((r * 7 + l * 3 + j) as i32 % 256).to_le_bytes());
            }
        }
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A `.npy` file (format 1.0) of shape `(rows, layers, k)`, uint8 or uint16, written by hand.
fn npy(rows: usize, layers: usize, k: usize, wide: bool) -> Vec<u8> {
    let descr = if wide { "<u2" } else { "|u1" };
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {layers}, {k}), }}"
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for r in 0..rows {
        for l in 0..layers {
            for j in 0..k {
                let v = (r * 7 + l * 3 + j) % if wide { 300 } else { 256 };
                if wide {
                    out.extend_from_slice(&(v as u16).to_le_bytes());
                } else {
                    out.push(v as u8);
                }
            }
        }
    }
    out
}

#[test]
fn sglang_stream_with_reasoning_content_and_routed_experts() {
    let mut chunks = vec![
        chunk(
            "reasoning_content",
            "Let",
            "",
            Some(vec![entry("Let", -0.1, &[("Let", -0.1), ("So", -2.0)])]),
        ),
        chunk("reasoning_content", " me", "", Some(vec![entry(" me", -0.2, &[(" me", -0.2)])])),
        chunk(
            "reasoning_content",
            "",
            "4",
            Some(vec![entry("4", -0.3, &[("4", -0.3), ("5", -3.0)])]),
        ),
    ];
    // Prompt 5 tokens, 3 generated: positions [0, 7) are routed; 2 layers, top-2.
    let mut last = json!({"model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop",
        "sgl_ext": {"routed_experts": sglang_experts(7, 2, 2)}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3}});
    chunks.push(last.take());
    let (steps, a) = assemble(&chunks);
    assert_eq!(steps.len(), 3);
    assert_eq!(texts(&steps, Phase::Think), "Let me");
    assert_eq!(texts(&steps, Phase::Answer), "4");
    assert_eq!(steps[0].top.len(), 2);
    assert_eq!((steps[2].logprob, steps[2].token_id), (-0.3, UNKNOWN_TOKEN));
    assert!(steps[0].entropy.is_nan());
    assert_eq!(a.info("m").reasoning_from, "reasoning_content");
    let found = routing::find(&chunks[3]).unwrap();
    assert!(matches!(found, Found::Sglang(_)));
    let e = routing::decode(&found, Some(7), 2).unwrap();
    assert_eq!((e.rows, e.layers, e.top_k, e.format.as_str()), (7, 2, 2, "sglang base64 int32"));
    let (per_step, note) = routing::per_step(&e, Some(5), 3);
    assert_eq!(note, None);
    // Step 0 is position 5; step 2 (position 7) was never processed.
    assert_eq!(per_step.len(), 2);
    assert_eq!(per_step[0].1.layers[1].experts, vec![(5 * 7 + 3) as u16, (5 * 7 + 4) as u16]);
    assert_eq!(per_step[0].1.layers[1].weights, None);
    // A wrong top-k is refused with the numbers, not decoded into nonsense.
    let err = routing::decode(&found, Some(7), 3).unwrap_err().to_string();
    assert!(err.contains("28 int32 values") && err.contains("--routing-top-k"), "{err}");
}

#[test]
fn vllm_stream_with_reasoning_field_and_npy_routed_experts() {
    let chunks = vec![
        chunk("reasoning", "Hmm", "", Some(vec![entry("Hmm", -0.5, &[("Hmm", -0.5)])])),
        chunk("reasoning", "", " yes", Some(vec![entry(" yes", -0.7, &[(" yes", -0.7)])])),
    ];
    let (steps, a) = assemble(&chunks);
    assert_eq!((steps[0].phase, steps[1].phase), (Phase::Think, Phase::Answer));
    assert_eq!(a.info("m").reasoning_from, "reasoning");
    for wide in [false, true] {
        let b64 = base64::engine::general_purpose::STANDARD.encode(npy(2, 3, 2, wide));
        let c = json!({"choices": [{"index": 0, "delta": {}, "routed_experts": b64, "finish_reason": "stop"}]});
        let found = routing::find(&c).unwrap();
        let e = routing::decode(&found, None, 8).unwrap();
        let kind = if wide { "vllm npy u16" } else { "vllm npy u8" };
        assert_eq!((e.format.as_str(), e.rows, e.layers, e.top_k), (kind, 2, 3, 2));
        // Rows cover only the generated tokens here: row k is step k.
        let (per_step, note) = routing::per_step(&e, Some(40), 2);
        assert_eq!(note, None);
        assert_eq!(per_step[1].1.layers[2].experts, vec![7 + 6, 7 + 7]);
    }
    let mut bad = npy(2, 3, 2, false);
    bad.truncate(bad.len() - 1);
    let b64 = base64::engine::general_purpose::STANDARD.encode(bad);
    let err = routing::decode(&Found::Vllm(b64), None, 8).unwrap_err().to_string();
    assert!(err.contains("11 data bytes"), "{err}");
}

/// A server that sends far more alternatives than were asked for (200,000) is cut to those
/// asked for, and the run's notes say so.
#[test]
fn alternatives_beyond_the_request_are_cut_and_noted() {
    let many: Vec<(String, f64)> = (0..200_000).map(|i| (format!("t{i}"), -1.0)).collect();
    let many: Vec<(&str, f64)> = many.iter().map(|(t, l)| (t.as_str(), *l)).collect();
    let chunks = vec![chunk("reasoning_content", "", "Yes", Some(vec![entry("Yes", -0.1, &many)]))];
    let (steps, a) = assemble(&chunks);
    assert_eq!(steps[0].top.len(), 2);
    let info = a.info("m");
    assert!(
        info.notes.iter().any(|n| n.contains("up to 200000 alternatives") && n.contains("first 2")),
        "{:?}",
        info.notes
    );
}

/// A logprob above 0 (a probability over 1) is not recorded as sent: it is unknown, and the
/// notes say so, so the run's export imports again.
#[test]
fn impossible_logprobs_are_recorded_as_unknown_and_noted() {
    let chunks = vec![chunk(
        "reasoning_content",
        "",
        "Yes",
        Some(vec![entry("Yes", 5.0, &[("Yes", 5.0), ("No", -2.0)])]),
    )];
    let (steps, a) = assemble(&chunks);
    assert!(steps[0].logprob.is_nan() && steps[0].top[0].logprob.is_nan());
    assert_eq!(steps[0].top[1].logprob, -2.0);
    let info = a.info("m");
    assert!(info.notes.iter().any(|n| n.contains("2 logprobs above 0")), "{:?}", info.notes);
}

/// A server that ignores `max_tokens` and streams on is cut off there: the run is complete
/// at `max_tokens` steps, and its notes say why.
#[test]
fn a_server_that_ignores_max_tokens_is_cut_off() {
    let events: Vec<Value> = (0..40).map(|i| answer(&format!("w{i} "))).collect();
    let o = opts(&serve(vec![sse(&events, false)]));
    let req = RemoteRequest {
        messages: vec![Message::new("user", "hi")],
        sampler: SamplerSpec { max_tokens: 5, ..SamplerSpec::default() },
        top_logprobs: 2,
    };
    let mut rec = Vec::new();
    let out = record(&o, &req, &mut rec, &AtomicBool::new(false));
    assert!(matches!(out.ended, Ended::Complete(StopReason::MaxTokens)), "{:?}", out.ended);
    assert_eq!(out.steps, 5);
    assert_eq!(rec.iter().filter(|e| matches!(e, Event::Step { .. })).count(), 5);
    assert!(out.info.notes.iter().any(|n| n.contains("past max_tokens (5)")), "{:?}", out.info);
}

#[test]
fn reasoning_chunks_with_null_logprobs_are_kept_and_reported() {
    let chunks = vec![
        chunk("reasoning_content", "Think", "", None),
        chunk("reasoning_content", "ing", "", None),
        chunk("reasoning_content", "", "Yes", Some(vec![entry("Yes", -0.1, &[("Yes", -0.1)])])),
    ];
    let (steps, a) = assemble(&chunks);
    assert_eq!(texts(&steps, Phase::Think), "Thinking");
    assert!(steps[0].logprob.is_nan() && steps[1].logprob.is_nan());
    assert_eq!(steps[2].logprob, -0.1);
    let info = a.info("m");
    assert!(info.missing.contains(&"logprobs on 2 of 3 steps".to_string()), "{info:?}");
    assert!(
        info.notes.iter().any(|n| n.contains("#26778") && n.contains("2 thinking steps")),
        "{info:?}"
    );
}

#[test]
fn logprobs_with_reasoning_tokens_the_content_lacks() {
    // Nothing streamed as reasoning: the extra tokens are the thinking.
    let c = chunk(
        "reasoning_content",
        "",
        "4",
        Some(vec![
            entry("<think>", -0.01, &[]),
            entry("two", -0.2, &[]),
            entry("</think>", -0.1, &[]),
            entry("4", -0.3, &[]),
        ]),
    );
    let (steps, a) = assemble(&[c]);
    assert_eq!(steps.len(), 4);
    assert_eq!(texts(&steps, Phase::Think), "<think>two</think>");
    assert_eq!(texts(&steps, Phase::Answer), "4");
    assert!(a
        .info("m")
        .notes
        .iter()
        .any(|n| n.contains("3 tokens") && n.contains("thinking steps")));
    // Reasoning already streamed (without logprobs): the repeated tokens are dropped.
    let chunks = vec![
        chunk("reasoning_content", "two", "", None),
        chunk(
            "reasoning_content",
            "",
            "4",
            Some(vec![entry("two", -0.2, &[]), entry("4", -0.3, &[])]),
        ),
    ];
    let (steps, a) = assemble(&chunks);
    assert_eq!(steps.iter().map(|s| s.text.as_str()).collect::<Vec<_>>(), ["two", "4"]);
    assert!(a.info("m").notes.iter().any(|n| n.contains("1 tokens") && n.contains("dropped")));
    // Tokens that match nothing: steps follow the tokens, and the run says so.
    let (steps, a) =
        assemble(&[chunk("reasoning_content", "", "abc", Some(vec![entry("xyz", -1.0, &[])]))]);
    assert_eq!(steps[0].text, "xyz");
    assert!(a.info("m").notes.iter().any(|n| n.contains("did not match")));
}

#[test]
fn inline_think_tags_are_split_with_and_without_logprobs() {
    let toks = ["<think>", "a", "</", "think>", "b"];
    let chunks: Vec<Value> = toks
        .iter()
        .map(|t| chunk("reasoning_content", "", t, Some(vec![entry(t, -0.5, &[])])))
        .collect();
    let (steps, a) = assemble(&chunks);
    let phases: Vec<Phase> = steps.iter().map(|s| s.phase).collect();
    use Phase::{Answer, Think};
    assert_eq!(phases, [Think, Think, Think, Think, Answer]);
    assert_eq!(a.info("m").reasoning_from, "inline <think>");
    // Without logprobs a chunk is cut at the tags.
    let (steps, _) = assemble(&[chunk("x", "", "pre<think>mid</think>post", None)]);
    let got: Vec<(&str, Phase)> = steps.iter().map(|s| (s.text.as_str(), s.phase)).collect();
    assert_eq!(got, [("pre", Answer), ("<think>mid</think>", Think), ("post", Answer)]);
    // DeepSeek-R1's template opens <think> itself.
    let mut a = Assembler::new(0, true);
    let s = a.chunk(&chunk("x", "", "x</think>y", None), 1, 0).unwrap();
    assert_eq!(s.iter().map(|s| s.phase).collect::<Vec<_>>(), [Think, Answer]);
}

#[test]
fn token_bytes_split_inside_a_character_go_to_the_next_step() {
    let e1 = json!({"token": "bytes:\\xe2\\x82", "logprob": -1.0, "bytes": [0xe2, 0x82], "top_logprobs": []});
    let e2 = json!({"token": "bytes:\\xac", "logprob": -1.0, "bytes": [0xac], "top_logprobs": []});
    let c1 = json!({"choices": [{"delta": {"content": ""}, "logprobs": {"content": [e1]}}]});
    let c2 = json!({"choices": [{"delta": {"content": "€"}, "logprobs": {"content": [e2]}}]});
    let (steps, a) = assemble(&[c1, c2]);
    assert_eq!(steps.iter().map(|s| s.text.as_str()).collect::<String>(), "€");
    assert!(a.info("m").notes.is_empty(), "{:?}", a.info("m"));
}

// ---- bad inputs against a tiny HTTP server ----

/// Serves each response in turn to one connection each, then stops; returns the base URL.
/// A response ending in "HANG" keeps its socket open, silent, for 3 s after it.
fn serve(responses: Vec<Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    std::thread::spawn(move || {
        for resp in responses {
            let Ok((mut sock, _)) = listener.accept() else { return };
            let _ = super::loopback::read_request(&sock);
            let _ = sock.write_all(&resp);
            if resp.ends_with(b"HANG") {
                std::thread::sleep(Duration::from_secs(3));
            }
        }
    });
    url
}

fn sse(events: &[Value], done: bool) -> Vec<u8> {
    let mut out =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n".to_vec();
    for e in events {
        out.extend_from_slice(format!("data: {e}\r\n\r\n").as_bytes());
    }
    if done {
        out.extend_from_slice(b"data: [DONE]\r\n\r\n");
    }
    out
}

fn opts(endpoint: &str) -> RemoteOptions {
    RemoteOptions {
        endpoint: endpoint.into(),
        api_key: Some("sk-SECRET".into()),
        model: "m".into(),
        idle_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(2),
        retries: 0,
        routed_experts: false,
        routing_top_k: 8,
        starts_in_think: false,
    }
}

fn go(o: &RemoteOptions) -> (RemoteOutcome, Vec<Event>) {
    let req = RemoteRequest {
        messages: vec![Message::new("user", "hi")],
        sampler: SamplerSpec::default(),
        top_logprobs: 2,
    };
    let mut events = Vec::new();
    let out = record(o, &req, &mut events, &AtomicBool::new(false));
    (out, events)
}

fn last_event(events: &[Event]) -> &Event {
    events.last().unwrap()
}

fn answer(text: &str) -> Value {
    chunk("reasoning_content", "", text, Some(vec![entry(text, -0.5, &[(text, -0.5)])]))
}

#[test]
fn a_refused_connection_fails_clearly_without_the_secret() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (out, events) = go(&opts(&format!("http://user:pw@127.0.0.1:{port}/v1?key=sk-SECRET")));
    let Ended::Failed(e) = &out.ended else { panic!("{:?}", out.ended) };
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("cannot connect to 'http://127.0.0.1:{port}/v1'")), "{msg}");
    assert!(!msg.contains("SECRET") && !msg.contains("pw"), "{msg}");
    assert!(matches!(last_event(&events), Event::Failed(_)));
}

#[test]
fn an_http_error_shows_the_servers_message() {
    let body = r#"{"error": {"message": "top_logprobs must be <= 20", "code": 400}}"#;
    let resp = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (out, _) = go(&opts(&serve(vec![resp.into_bytes()])));
    let msg = match &out.ended {
        Ended::Failed(e) => e.to_string(),
        other => panic!("{other:?}"),
    };
    assert!(msg.contains("HTTP 400") && msg.contains("top_logprobs must be <= 20"), "{msg}");
}

#[test]
fn a_malformed_sse_line_names_its_line_and_content_and_keeps_the_steps() {
    let mut resp = sse(&[answer("A")], false);
    resp.extend_from_slice(b"data: {\"choices\": [oops\r\n\r\n");
    let (out, events) = go(&opts(&serve(vec![resp])));
    // A token had arrived: the run is interrupted, not failed.
    let msg = match &out.ended {
        Ended::Interrupted(e) => e.to_string(),
        other => panic!("{other:?}"),
    };
    assert!(
        msg.contains("malformed SSE line 3") && msg.contains("'{\\\"choices\\\": [oops'"),
        "{msg}"
    );
    assert_eq!(out.steps, 1);
    assert!(events.iter().any(|e| matches!(e, Event::Step { .. })));
}

#[test]
fn a_server_without_logprobs_records_text_and_says_so() {
    let events =
        [chunk("reasoning_content", "", "Hi", None), chunk("reasoning_content", "", "!", None)];
    let (out, rec) = go(&opts(&serve(vec![sse(&events, true)])));
    assert!(matches!(out.ended, Ended::Complete(StopReason::Eos)), "{:?}", out.ended);
    assert!(out.info.missing.contains(&"logprobs on 2 of 2 steps".to_string()), "{:?}", out.info);
    assert!(matches!(last_event(&rec), Event::Finished { stop: StopReason::Eos, .. }));
}

#[test]
fn a_stream_cut_after_tokens_is_interrupted_and_retries_happen_only_before() {
    // First connection: 503 (retried); second: two tokens, then the connection closes.
    let busy = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 7\r\n\r\nloading".to_vec();
    let mut o = opts(&serve(vec![busy, sse(&[answer("A"), answer("B")], false)]));
    o.retries = 1;
    let (out, events) = go(&o);
    assert!(matches!(out.ended, Ended::Interrupted(Error::Broken { .. })), "{:?}", out.ended);
    assert_eq!(out.steps, 2);
    // The end says why; a store writer behind the recorder marks the run Interrupted.
    assert!(matches!(last_event(&events), Event::Interrupted(m) if m.contains("closed")));
    assert!(matches!(&events[events.len() - 2], Event::Step { .. }));
}

#[test]
fn an_idle_server_times_out() {
    let mut resp = sse(&[answer("A")], false);
    resp.extend_from_slice(b": HANG");
    let (out, _) = go(&opts(&serve(vec![resp])));
    match &out.ended {
        Ended::Interrupted(e @ Error::Idle { .. }) => assert!(e.to_string().contains("for 1 s")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_json_answer_is_not_taken_for_a_stream() {
    let resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        .to_vec();
    let (out, _) = go(&opts(&serve(vec![resp])));
    assert!(matches!(out.ended, Ended::Failed(Error::NotStreaming { .. })), "{:?}", out.ended);
}

#[test]
fn an_error_event_in_the_stream_is_reported() {
    // After a token: the run keeps it and is interrupted, with the server's words.
    let resp = sse(&[answer("A"), json!({"error": {"message": "KV cache full"}})], false);
    let (out, _) = go(&opts(&serve(vec![resp])));
    let msg = match &out.ended {
        Ended::Interrupted(e) => e.to_string(),
        other => panic!("{other:?}"),
    };
    assert!(msg.contains("KV cache full") && msg.contains("line 3"), "{msg}");
    // Before any token: nothing usable came, the run failed.
    let resp = sse(&[json!({"error": {"message": "KV cache full"}})], false);
    let (out, _) = go(&opts(&serve(vec![resp])));
    assert!(matches!(out.ended, Ended::Failed(Error::Server { .. })), "{:?}", out.ended);
}

#[test]
fn a_connection_closed_inside_an_event_after_tokens_is_interrupted() {
    let mut resp = sse(&[answer("A"), answer("B"), answer("C")], false);
    resp.extend_from_slice(b"data: {\"choices\": [{\"de");
    let (out, events) = go(&opts(&serve(vec![resp])));
    assert!(matches!(out.ended, Ended::Interrupted(_)), "{:?}", out.ended);
    assert_eq!(out.steps, 3);
    assert!(matches!(last_event(&events), Event::Interrupted(_)));
}

/// A server that accepts the connection and never sends a status line is one clear error,
/// and is not retried (it would hang again), unlike a refused connection.
#[test]
fn a_server_that_never_answers_is_not_retried() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for sock in listener.incoming().take(3) {
            let Ok(sock) = sock else { return };
            count.fetch_add(1, Ordering::SeqCst);
            let _ = super::loopback::read_request(&sock);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(4));
                drop(sock);
            });
        }
    });
    let mut o = opts(&url);
    o.retries = 2;
    let (out, _) = go(&o);
    let msg = match &out.ended {
        Ended::Failed(e @ Error::NoResponse { .. }) => e.to_string(),
        other => panic!("{other:?}"),
    };
    assert!(msg.contains("accepted the connection but sent no response"), "{msg}");
    assert!(!msg.contains("cannot connect"), "{msg}");
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn options_debug_hides_the_key() {
    let s = format!("{:?}", opts("http://u:p@h/v1?k=v"));
    assert!(!s.contains("SECRET") && !s.contains("u:p") && s.contains("<set>"), "{s}");
}
