//! `thinkdbg import` of other tools' traces, on files shaped like the real ones: an OpenAI
//! exchange log (DeepSeek's `reasoning_content`, logprobs with alternatives, two choices), a
//! bare response, a stream captured with `curl -N`, a Parquet dataset with a list of
//! generations per row (written here with the parquet crate), a JSONL dataset, a Markdown
//! file with `<think>`; and every bad input: a wrong field, a truncated Parquet file, invalid
//! UTF-8, a row without a response, each writing nothing (all or nothing).

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use thinkdbg::store::Store;
use thinkdbg::trace::{Phase, Run, RunSource, Step, UNKNOWN_TOKEN};

use crate::common::{output, thinkdbg};

/// Imports `file` with `args`; the new run ids.
fn import(dir: &Path, file: &Path, args: &[&str]) -> (Vec<String>, String) {
    let (out, err) = output(thinkdbg(dir).arg("import").arg(file).args(args));
    (out.lines().map(str::to_string).collect(), err)
}

/// Runs the command, which must fail with exit status 1 and one error line containing
/// `needle`; returns that line.
fn fails(dir: &Path, file: &Path, args: &[&str], needle: &str) -> String {
    let out = thinkdbg(dir).arg("import").arg(file).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let line = err.lines().find(|l| l.starts_with("error: ")).unwrap_or_default().to_string();
    assert!(line.contains(needle), "expected '{needle}' in: {err}");
    line
}

/// The store's runs (sorted by id) and their steps.
fn stored(dir: &Path) -> Vec<(Run, Vec<Step>)> {
    let store = Store::open(&dir.join("store")).unwrap();
    let (mut runs, errors) = store.runs_lossy().unwrap();
    assert!(errors.is_empty());
    runs.sort_by_key(|r| r.id.0);
    runs.into_iter()
        .map(|r| {
            let steps = store.steps(r.id).unwrap().steps;
            (r, steps)
        })
        .collect()
}

fn text(steps: &[Step], phase: Phase) -> String {
    steps.iter().filter(|s| s.phase == phase).map(|s| s.text.as_str()).collect()
}

fn entry(token: &str, logprob: f64, top: &[(&str, f64)]) -> serde_json::Value {
    json!({
        "token": token,
        "logprob": logprob,
        "bytes": token.as_bytes(),
        "top_logprobs": top.iter().map(|(t, l)| json!({"token": t, "logprob": l, "bytes": t.as_bytes()})).collect::<Vec<_>>(),
    })
}

/// A logging proxy's record of a DeepSeek-R1 call: logprobs for the answer only (the API
/// gives none for the reasoning), and a second choice whose logprobs cover both.
fn deepseek_exchange() -> serde_json::Value {
    json!({
        "url": "https://user:secret@api.deepseek.example/v1/chat/completions?key=s3",
        "request": {
            "model": "deepseek-reasoner",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "What is 17 × 3?"}]}
            ],
            "temperature": 0.6, "top_p": 0.95, "max_tokens": 2048, "n": 2, "logprobs": true, "top_logprobs": 2
        },
        "response": {
            "id": "chatcmpl-1", "object": "chat.completion", "model": "deepseek-reasoner-0528",
            "choices": [
                {
                    "index": 1,
                    "message": {"role": "assistant", "reasoning_content": "17×3 is 51.", "content": "51"},
                    "logprobs": {"content": [
                        entry("17", -0.01, &[("17", -0.01), ("3", -4.5)]),
                        entry("×", -0.2, &[("×", -0.2), (" x", -1.8)]),
                        entry("3", -0.001, &[]),
                        entry(" is", -0.3, &[]),
                        entry(" 51", -0.05, &[]),
                        entry(".", -0.02, &[]),
                        entry("51", -0.004, &[("51", -0.004), ("52", -5.6)])
                    ]},
                    "finish_reason": "stop"
                },
                {
                    "index": 0,
                    "message": {"role": "assistant", "reasoning_content": "Seventeen times three: 51. Check: 50+1.", "content": "**51**"},
                    "logprobs": {"content": [
                        entry("**", -0.5, &[("**", -0.5), ("51", -0.9)]),
                        entry("51", -0.0002, &[]),
                        entry("**", -0.01, &[])
                    ]},
                    "finish_reason": "length"
                }
            ],
            "usage": {"prompt_tokens": 21, "completion_tokens": 40}
        }
    })
}

#[test]
fn an_openai_exchange_log_becomes_sibling_runs_with_logprobs_and_reasoning() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy.jsonl");
    let second = json!({
        "request": {"model": "r1-distill", "messages": [{"role": "user", "content": "hi"}]},
        "response": {"model": "r1-distill", "choices": [{"index": 0, "message": {"content": "<think>greet back</think>Hello!"}, "finish_reason": "stop"}]}
    });
    std::fs::write(&file, format!("{}\n{}\n", deepseek_exchange(), second)).unwrap();
    let (ids, err) = import(dir.path(), &file, &[]);
    assert!(err.contains("imported 2 session(s), 3 run(s) (openai)"), "{err}");
    assert_eq!(ids.len(), 3);
    let runs = stored(dir.path());
    assert_eq!(runs.len(), 3);
    // Choice 0 first (by index), then choice 1: siblings in one session.
    let (c0, s0) = &runs[0];
    let (c1, s1) = &runs[1];
    assert_eq!(c0.session, c1.session);
    assert_eq!(c0.label.as_deref(), Some("choice 0"));
    assert_eq!(c1.label.as_deref(), Some("choice 1"));
    assert_eq!(c0.messages[0].content, "Be brief.");
    assert_eq!(c0.messages[1].content, "What is 17 × 3?");
    assert_eq!(c0.model.name, "deepseek-reasoner-0528");
    assert_eq!(c0.sampler.temperature, 0.6);
    assert_eq!(c0.stop, Some(thinkdbg::trace::StopReason::MaxTokens));
    match &c0.source {
        RunSource::File { path, format, place, endpoint, server } => {
            assert!(path.ends_with("proxy.jsonl"));
            assert_eq!(format, "openai");
            assert_eq!(place, "row 1 choice 0");
            assert_eq!(endpoint, "https://api.deepseek.example/v1/chat/completions");
            assert_eq!(server.reasoning_from, "reasoning_content");
            assert!(
                server.notes.iter().any(|n| n.contains("no logprobs for the reasoning")),
                "{server:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // DeepSeek: the reasoning is text (no logprobs), the answer is tokens with logprobs.
    assert_eq!(text(s0, Phase::Think), "Seventeen times three: 51. Check: 50+1.");
    assert_eq!(text(s0, Phase::Answer), "**51**");
    let answer: Vec<&Step> = s0.iter().filter(|s| s.phase == Phase::Answer).collect();
    assert_eq!(answer.len(), 3);
    assert_eq!(answer[0].logprob, -0.5);
    assert_eq!(answer[0].top.len(), 2);
    assert_eq!(answer[0].top[1].text, "51");
    assert_eq!(answer[0].top[1].logprob, -0.9);
    assert!(s0.iter().filter(|s| s.phase == Phase::Think).all(|s| s.logprob.is_nan()));
    assert!(s0.iter().all(|s| s.token_id == UNKNOWN_TOKEN && s.entropy.is_nan()));
    // Logprobs covering the reasoning and the answer: every step is a token.
    assert_eq!(s1.len(), 7);
    assert_eq!(text(s1, Phase::Think), "17×3 is 51.");
    assert_eq!(text(s1, Phase::Answer), "51");
    assert_eq!(s1[1].text, "×");
    assert_eq!(s1[1].logprob, -0.2);
    assert_eq!(s1[1].top[1].text, " x");
    // Inline <think> without logprobs.
    let (r2, s2) = &runs[2];
    assert_ne!(r2.session, c0.session);
    assert_eq!(text(s2, Phase::Think), "<think>greet back</think>");
    assert_eq!(text(s2, Phase::Answer), "Hello!");
    // `ls` shows where the runs came from.
    let (ls, _) = output(thinkdbg(dir.path()).args(["ls", "--json"]));
    assert_eq!(ls.matches("\"source\":\"openai\"").count(), 3, "{ls}");
    let (ls, _) = output(thinkdbg(dir.path()).arg("ls"));
    assert!(ls.contains("(imported openai)"), "{ls}");
}

#[test]
fn a_bare_pretty_printed_response_takes_its_prompt_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("response.json");
    let resp = json!({
        "model": "qwen3-8b",
        "choices": [{"index": 0, "message": {"role": "assistant", "reasoning": "Think: 2+2=4", "content": "4"}, "finish_reason": "stop"}]
    });
    std::fs::write(&file, serde_json::to_string_pretty(&resp).unwrap()).unwrap();
    import(dir.path(), &file, &["--prompt", "2+2?", "--system", "sys", "--label", "vllm"]);
    let runs = stored(dir.path());
    let (run, steps) = &runs[0];
    assert_eq!(run.messages.len(), 2);
    assert_eq!(run.messages[1].content, "2+2?");
    assert_eq!(run.label.as_deref(), Some("vllm"));
    assert_eq!(text(steps, Phase::Think), "Think: 2+2=4");
    assert_eq!(text(steps, Phase::Answer), "4");
    let RunSource::File { server, .. } = &run.source else { panic!() };
    assert_eq!(server.reasoning_from, "reasoning");
    assert_eq!(server.model, "qwen3-8b");
}

/// What `curl -N` saves from a streamed llama.cpp/vLLM chat completion with logprobs:
/// keep-alive comments, CRLF lines, reasoning chunks, content chunks, usage, `[DONE]`.
fn captured_stream() -> String {
    let chunk = |delta: serde_json::Value, lp: Option<serde_json::Value>, finish: Option<&str>| {
        let c = json!({"id": "c1", "object": "chat.completion.chunk", "model": "R1-Distill-Qwen-1.5B",
            "choices": [{"index": 0, "delta": delta, "logprobs": lp, "finish_reason": finish}]});
        format!("data: {c}\r\n\r\n")
    };
    let mut s = String::from(": keep-alive\r\n\r\n");
    s += &chunk(json!({"role": "assistant"}), None, None);
    s += &chunk(
        json!({"reasoning_content": "Okay"}),
        Some(json!({"content": [entry("Okay", -0.25, &[("Okay", -0.25), ("Hmm", -1.6)])]})),
        None,
    );
    s += &chunk(
        json!({"reasoning_content": ", 6"}),
        Some(json!({"content": [entry(",", -0.1, &[]), entry(" 6", -0.7, &[])]})),
        None,
    );
    s += &chunk(
        json!({"content": "6"}),
        Some(json!({"content": [entry("6", -0.02, &[("6", -0.02), ("six", -4.0)])]})),
        Some("stop"),
    );
    s += "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":4}}\r\n\r\n";
    s += "data: [DONE]\r\n\r\n";
    s
}

#[test]
fn a_captured_sse_stream_imports_token_by_token() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stream.txt");
    std::fs::write(&file, captured_stream()).unwrap();
    // `.txt` would say text: the content says SSE, given explicitly here.
    import(dir.path(), &file, &["--format", "sse", "--prompt", "3+3?"]);
    let sse = dir.path().join("capture.sse");
    std::fs::write(&sse, captured_stream()).unwrap();
    let (_, err) = import(dir.path(), &sse, &[]);
    assert!(err.contains("(sse)"), "{err}");
    let runs = stored(dir.path());
    let (run, steps) = &runs[0];
    assert_eq!(run.messages[0].content, "3+3?");
    assert_eq!(run.model.name, "R1-Distill-Qwen-1.5B");
    assert_eq!(run.timings.prompt_tokens, 12);
    assert_eq!(steps.len(), 4);
    assert_eq!(text(steps, Phase::Think), "Okay, 6");
    assert_eq!(text(steps, Phase::Answer), "6");
    assert_eq!(steps[0].top[1].text, "Hmm");
    assert_eq!(steps[2].logprob, -0.7);
    assert_eq!(run.status, thinkdbg::trace::RunStatus::Complete);
    // A capture cut mid-stream imports as an interrupted run.
    let cut = dir.path().join("cut.sse");
    let full = captured_stream();
    std::fs::write(&cut, &full[..full.find("\"content\":\"6\"").unwrap() - 40]).unwrap();
    let (ids, _) = import(dir.path(), &cut, &[]);
    let runs = stored(dir.path());
    let last = runs.iter().find(|(r, _)| r.id.to_string() == ids[0]).unwrap();
    assert_eq!(last.0.status, thinkdbg::trace::RunStatus::Interrupted);
}

/// A dataset like OpenR1-Math's: a problem, a list of generations, a correctness list and a
/// level, in Parquet with the given compression.
/// A row: problem, generations (`None`: null), correctness, level.
type Row<'a> = (&'a str, Option<Vec<&'a str>>, Vec<bool>, i32);

fn write_parquet(path: &Path, rows: &[Row], compression: parquet::basic::Compression) {
    use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int32Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let schema = Arc::new(
        parquet::schema::parser::parse_message_type(
            "message dataset {
                REQUIRED BYTE_ARRAY problem (UTF8);
                OPTIONAL GROUP generations (LIST) { REPEATED GROUP list { OPTIONAL BYTE_ARRAY element (UTF8); } }
                OPTIONAL GROUP correctness (LIST) { REPEATED GROUP list { OPTIONAL BOOLEAN element; } }
                REQUIRED INT32 level;
            }",
        )
        .unwrap(),
    );
    let props = Arc::new(WriterProperties::builder().set_compression(compression).build());
    let file = std::fs::File::create(path).unwrap();
    let mut w = SerializedFileWriter::new(file, schema, props).unwrap();
    let mut rg = w.next_row_group().unwrap();
    // problem
    let mut col = rg.next_column().unwrap().unwrap();
    let v: Vec<ByteArray> = rows.iter().map(|r| ByteArray::from(r.0)).collect();
    col.typed::<ByteArrayType>().write_batch(&v, None, None).unwrap();
    col.close().unwrap();
    // generations: definition 0 = null list, 1 = empty, 3 = an element; repetition 1 = same list.
    let mut col = rg.next_column().unwrap().unwrap();
    let (mut vals, mut def, mut rep) = (Vec::new(), Vec::new(), Vec::new());
    for r in rows {
        match &r.1 {
            None => {
                def.push(0);
                rep.push(0);
            }
            Some(g) if g.is_empty() => {
                def.push(1);
                rep.push(0);
            }
            Some(g) => {
                for (i, t) in g.iter().enumerate() {
                    vals.push(ByteArray::from(*t));
                    def.push(3);
                    rep.push(i16::from(i > 0));
                }
            }
        }
    }
    col.typed::<ByteArrayType>().write_batch(&vals, Some(&def), Some(&rep)).unwrap();
    col.close().unwrap();
    let mut col = rg.next_column().unwrap().unwrap();
    let (mut vals, mut def, mut rep) = (Vec::new(), Vec::new(), Vec::new());
    for r in rows {
        for (i, b) in r.2.iter().enumerate() {
            vals.push(*b);
            def.push(3);
            rep.push(i16::from(i > 0));
        }
        if r.2.is_empty() {
            def.push(1);
            rep.push(0);
        }
    }
    col.typed::<BoolType>().write_batch(&vals, Some(&def), Some(&rep)).unwrap();
    col.close().unwrap();
    let mut col = rg.next_column().unwrap().unwrap();
    let v: Vec<i32> = rows.iter().map(|r| r.3).collect();
    col.typed::<Int32Type>().write_batch(&v, None, None).unwrap();
    col.close().unwrap();
    rg.close().unwrap();
    w.close().unwrap();
}

#[test]
fn a_parquet_dataset_gives_one_session_per_row_and_one_run_per_generation() {
    use parquet::basic::{Compression, ZstdLevel};
    let dir = tempfile::tempdir().unwrap();
    let rows = [
        (
            "What is 2+2?",
            Some(vec!["<think>\n2+2=4\n</think>\n\n**4**", "<think>\nmaybe 5\n</think>\n\n5"]),
            vec![true, false],
            1,
        ),
        ("Solve x+1=3.", Some(vec!["<think>\nx=2\n</think>\n\nx = 2"]), vec![true], 2),
        ("Skip me", Some(vec!["<think>no</think>no"]), vec![false], 2),
    ];
    for (name, c) in [
        ("snappy.parquet", Compression::SNAPPY),
        ("zstd.parquet", Compression::ZSTD(ZstdLevel::default())),
    ] {
        let d = dir.path().join(name.trim_end_matches(".parquet"));
        let file = dir.path().join(name);
        write_parquet(&file, &rows, c);
        let (ids, err) = import(&d, &file, &["--label-field", "correctness", "--limit", "2"]);
        assert!(err.contains("imported 2 session(s), 3 run(s) (dataset)"), "{err}");
        assert_eq!(ids.len(), 3);
        let runs = stored(&d);
        let (r0, s0) = &runs[0];
        let (r1, s1) = &runs[1];
        assert_eq!(r0.session, r1.session);
        assert_eq!(r0.messages[0].content, "What is 2+2?");
        assert_eq!(r0.label.as_deref(), Some("g0 true"));
        assert_eq!(r1.label.as_deref(), Some("g1 false"));
        assert_eq!(text(s0, Phase::Think), "<think>\n2+2=4\n</think>");
        assert_eq!(text(s0, Phase::Answer), "\n\n**4**");
        assert_eq!(text(s1, Phase::Answer), "\n\n5");
        let RunSource::File { format, place, .. } = &r1.source else { panic!() };
        assert_eq!((format.as_str(), place.as_str()), ("dataset", "row 1 generation 1"));
        assert_eq!(runs[2].0.label.as_deref(), Some("true"));
    }
    // --where on an integer column, through a pipe (copied aside: Parquet is read from its end).
    let d = dir.path().join("where");
    let file = dir.path().join("snappy.parquet");
    let out = thinkdbg(&d)
        .args(["import", "-", "--where", "level=2", "--response-field", "generations"])
        .pipe_stdin(&file)
        .unwrap()
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("imported 2 session(s), 2 run(s) (dataset, 1 rows left out by --where)"),
        "{err}"
    );
}

#[test]
fn bad_datasets_name_the_row_and_write_nothing() {
    use parquet::basic::Compression;
    let dir = tempfile::tempdir().unwrap();
    // A wrong field, named with the fields there are.
    let jsonl = dir.path().join("rows.jsonl");
    let good = |i: usize| {
        json!({"problem": format!("p{i}"), "generations": [format!("<think>t{i}</think>a{i}")]})
            .to_string()
    };
    std::fs::write(&jsonl, format!("{}\n{}\n", good(1), good(2))).unwrap();
    let line = fails(
        dir.path(),
        &jsonl,
        &["--response-field", "generation"],
        "row 1: no field 'generation' (--response-field)",
    );
    assert!(line.contains("'problem'") && line.contains("'generations'"), "{line}");
    // A row with no response: row 3 of 4 (the first two were written, then removed).
    let no_response = json!({"problem": "p3", "generations": null, "solution": "s"}).to_string();
    std::fs::write(&jsonl, format!("{}\n{}\n{no_response}\n{}\n", good(1), good(2), good(4)))
        .unwrap();
    fails(dir.path(), &jsonl, &[], "row 3: no response");
    // Invalid UTF-8 on row 2.
    let mut bytes = format!("{}\n", good(1)).into_bytes();
    bytes.extend(b"{\"problem\": \"caf\xe9\", \"generations\": [\"x\"]}\n");
    std::fs::write(&jsonl, &bytes).unwrap();
    fails(dir.path(), &jsonl, &[], "row 2: not UTF-8");
    // Not JSON on row 2.
    std::fs::write(&jsonl, format!("{}\n{{\"problem\": \n", good(1))).unwrap();
    fails(dir.path(), &jsonl, &[], "row 2: not valid JSON");
    // A truncated Parquet file.
    let pq = dir.path().join("cut.parquet");
    write_parquet(&pq, &[("p", Some(vec!["a"]), vec![true], 1)], Compression::SNAPPY);
    let whole = std::fs::read(&pq).unwrap();
    std::fs::write(&pq, &whole[..whole.len() * 2 / 3]).unwrap();
    fails(dir.path(), &pq, &[], "not a readable Parquet file");
    // Options that do not fit the format.
    fails(
        dir.path(),
        &jsonl,
        &["--format", "openai", "--response-field", "x"],
        "'--response-field' is for '--format dataset'",
    );
    // Nothing of any of these reached the store.
    if dir.path().join("store").exists() {
        assert!(stored(dir.path()).is_empty());
        let store = Store::open(&dir.path().join("store")).unwrap();
        assert!(store.sessions().unwrap().is_empty());
    }
    // A good file still imports afterwards.
    std::fs::write(&jsonl, format!("{}\n{}\n", good(1), good(2))).unwrap();
    let (ids, _) = import(dir.path(), &jsonl, &[]);
    assert_eq!(ids.len(), 2);
    assert_eq!(stored(dir.path()).len(), 2);
}

#[test]
fn bad_openai_and_sse_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.json");
    std::fs::write(
        &f,
        format!("{}\n{}\n", deepseek_exchange(), json!({"request": {"model": "m"}})),
    )
    .unwrap();
    fails(dir.path(), &f, &[], "row 2: no 'response'");
    std::fs::write(&f, json!({"response": {"error": {"message": "rate limited"}}}).to_string())
        .unwrap();
    fails(
        dir.path(),
        &f,
        &["--format", "openai"],
        "row 1: the response is an error: 'rate limited'",
    );
    std::fs::write(
        &f,
        json!({"response": {"choices": [{"message": {"content": null}}]}}).to_string(),
    )
    .unwrap();
    fails(dir.path(), &f, &[], "row 1: choice 0: no response");
    let s = dir.path().join("bad.sse");
    std::fs::write(
        &s,
        "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n<html>502</html>\n",
    )
    .unwrap();
    fails(dir.path(), &s, &[], "line 3");
    let t = dir.path().join("bad.md");
    std::fs::write(&t, b"<think>ok</think>\nbad \xff byte\n").unwrap();
    fails(dir.path(), &t, &[], "line 2: not UTF-8");
    assert!(!dir.path().join("store").exists() || stored(dir.path()).is_empty());
}

#[test]
fn a_markdown_file_with_think_imports_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("r1-zero.md");
    let body = "<think>\nLet me compute 12 × 12. 12 × 12 = 144.\n</think>\n\n## Answer\n\nThe result is **144**.\n";
    std::fs::write(&md, body).unwrap();
    let (_, err) = import(dir.path(), &md, &["--prompt", "12 × 12?", "--label", "r1-zero"]);
    assert!(err.contains("(text)"), "{err}");
    let runs = stored(dir.path());
    let (run, steps) = &runs[0];
    let all: String = steps.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(all, body);
    assert_eq!(text(steps, Phase::Answer), "\n\n## Answer\n\nThe result is **144**.\n");
    assert_eq!(run.messages[0].content, "12 × 12?");
    assert_eq!(run.label.as_deref(), Some("r1-zero"));
    // Analysed on import: statistics are stored beside the run.
    let (stats, err) = output(thinkdbg(dir.path()).args(["stats", &run.id.to_string()]));
    assert!(!err.contains("analysed run"), "{err}");
    assert!(!stats.is_empty());
}
