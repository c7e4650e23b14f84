//! The session store: the writer's batching and completion, recovery of interrupted runs, the
//! schema check, corrupt values, JSONL export/import round trips and malformed imports.

use std::sync::Arc;

use proptest::prelude::*;
use thinkdbg::export::jsonl;
use thinkdbg::record::{Event, Recorder};
use thinkdbg::store::{codec, import, routing_codec, writer, Store};
use thinkdbg::trace::*;

fn step(i: u32) -> Step {
    Step {
        index: i,
        token_id: 100 + i,
        text: format!(" t{i}"),
        logprob: -0.25 * i as f32,
        entropy: 0.5,
        phase: if i < 3 { Phase::Think } else { Phase::Answer },
        t_us: 1000 * u64::from(i),
        top: vec![
            TopToken { id: 100 + i, text: format!(" t{i}"), logprob: -0.1 },
            TopToken { id: 7, text: "\u{1b}x".into(), logprob: -3.0 },
        ],
    }
}

fn new_run(store: &Store, label: &str) -> Run {
    let session = Session {
        id: SessionId(store.new_id().unwrap()),
        title: "why?".into(),
        created_at: 5,
        tags: vec![],
        runs: vec![],
    };
    let run = Run {
        id: RunId(store.new_id().unwrap()),
        session: session.id,
        parent: None,
        label: Some(label.into()),
        source: RunSource::Embedded,
        model: ModelInfo::default(),
        messages: vec![Message::new("user", "why?")],
        rendered_prompt: String::new(),
        prompt_tokens: vec![],
        sampler: SamplerSpec::default(),
        logprob_kind: LogprobKind::Raw,
        status: RunStatus::Recording,
        stop: None,
        timings: Timings::default(),
        created_at: 6,
    };
    store.put_session(&Session { runs: vec![run.id], ..session }).unwrap();
    run
}

fn routing(i: u32) -> Routing {
    Routing {
        layers: vec![LayerRoute {
            layer: 3,
            experts: vec![1, (i % 64) as u16],
            weights: Some(vec![0.75, 0.25]),
            router: None,
        }],
    }
}

#[test]
fn the_writer_stores_every_step_in_order_and_completes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
    let run = new_run(&store, "R1");
    let id = run.id;
    let (mut rec, handle) = writer::start(store.clone(), run).unwrap();
    rec.record(Event::Started {
        rendered_prompt: "p".into(),
        prompt_tokens: vec![1, 2, 3],
        phase: Phase::Think,
        stop_ids: vec![],
    });
    let prompt_routes = vec![routing(1000), routing(1001), routing(1002)];
    rec.record(Event::PromptRouting(prompt_routes.clone()));
    for i in 0..300 {
        rec.record(Event::Step { step: step(i), routing: Some(routing(i)) });
    }
    // While the run is being written it is `Recording`.
    assert_eq!(store.run(id).unwrap().unwrap().status, RunStatus::Recording);
    rec.record(Event::Finished {
        stop: StopReason::MaxTokens,
        timings: Timings { generated_tokens: 300, ..Timings::default() },
    });
    drop(rec);
    let out = handle.join().unwrap().unwrap();
    assert_eq!(out.steps_written, 300);
    let run = store.run(id).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Complete);
    assert_eq!(run.prompt_tokens, vec![1, 2, 3]);
    let read = store.steps(id).unwrap();
    assert!(read.errors.is_empty());
    assert_eq!(read.steps, (0..300).map(step).collect::<Vec<_>>());
    let routes = store.routing(id).unwrap();
    assert_eq!(routes.len(), 300);
    assert_eq!(routes[257], (257, routing(257)));
    assert_eq!(store.prompt_routing(id).unwrap(), prompt_routes);
    // Removing the run removes its prompt routing too.
    store.remove_run(id).unwrap();
    assert!(store.prompt_routing(id).unwrap().is_empty());
}

#[test]
fn a_writer_whose_engine_vanishes_leaves_an_interrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
    let run = new_run(&store, "x");
    let id = run.id;
    let (mut rec, handle) = writer::start(store.clone(), run).unwrap();
    for i in 0..10 {
        rec.record(Event::Step { step: step(i), routing: None });
    }
    drop(rec);
    handle.join().unwrap().unwrap();
    let run = store.run(id).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Interrupted);
    assert_eq!(store.step_count(id), 10);
}

#[test]
fn reopening_marks_recording_runs_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let id = {
        let store = Store::open(&path).unwrap();
        let run = new_run(&store, "x");
        store.put_run(&run).unwrap();
        store.put_steps(run.id, &[(step(0), None), (step(1), None)]).unwrap();
        store.flush().unwrap();
        run.id
    };
    let store = Store::open(&path).unwrap();
    assert_eq!(store.recovered(), &[id]);
    let run = store.run(id).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Interrupted);
    assert_eq!(run.timings.generated_tokens, 2);
}

#[test]
fn ids_are_decimal_with_or_without_their_prefix() {
    use thinkdbg::store::Target;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    // Six sessions of one run each: ids 1 to 12, sessions odd, runs even.
    let runs: Vec<Run> = (0..6)
        .map(|_| {
            let r = new_run(&store, "x");
            store.put_run(&r).unwrap();
            r
        })
        .collect();
    let last = &runs[5];
    assert_eq!((last.id, last.session), (RunId(12), SessionId(11)));
    assert_eq!((last.id.to_string(), last.session.to_string()), ("r12".into(), "s11".into()));
    assert_eq!(store.resolve("r12").unwrap(), Target::Run(RunId(12)));
    assert_eq!(store.resolve("12").unwrap(), Target::Run(RunId(12)));
    assert_eq!(store.resolve("s11").unwrap(), Target::Session(SessionId(11)));
    assert_eq!(store.resolve("11").unwrap(), Target::Session(SessionId(11)));
    // Hex is no longer read: 'rc' (12) and 'r+12' name nothing.
    for bad in ["rc", "r+12", "r", "s"] {
        assert!(store.resolve(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let db = raw_db(&path);
        db.open_tree("meta").unwrap().insert("schema_version", &99u32.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let err = Store::open(&path).err().unwrap().to_string();
    assert!(err.contains("schema version 99, newer than this thinkdbg understands (1)"), "{err}");
}

#[test]
fn a_corrupt_step_is_reported_and_the_rest_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let id = {
        let store = Store::open(&path).unwrap();
        let mut run = new_run(&store, "x");
        run.status = RunStatus::Complete;
        store.put_run(&run).unwrap();
        store.put_steps(run.id, &(0..5).map(|i| (step(i), None)).collect::<Vec<_>>()).unwrap();
        store.flush().unwrap();
        run.id
    };
    {
        let db = raw_db(&path);
        db.open_tree("steps")
            .unwrap()
            .insert(&codec::step_key(id, 3)[..], &[1u8, 0xff, 0xff, 0xff][..])
            .unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(&path).unwrap();
    let read = store.steps(id).unwrap();
    assert_eq!(read.steps.iter().map(|s| s.index).collect::<Vec<_>>(), vec![0, 1, 2, 4]);
    assert_eq!(read.errors.len(), 1);
    let msg = read.errors[0].to_string();
    assert!(msg.contains(&format!("run '{id}' step 3")), "{msg}");
}

fn export(store: &Store, sid: SessionId) -> String {
    let session = store.session(sid).unwrap().unwrap();
    let runs = session
        .runs
        .iter()
        .map(|r| {
            let read = store.steps(*r).unwrap();
            let mut routes: std::collections::HashMap<u32, Routing> =
                store.routing(*r).unwrap().into_iter().collect();
            RunRecord {
                run: store.run(*r).unwrap(),
                prompt_routing: store.prompt_routing(*r).unwrap(),
                steps: read
                    .steps
                    .into_iter()
                    .map(|s| {
                        let x = routes.remove(&s.index);
                        (s, x)
                    })
                    .collect(),
                flags: store.flags(*r).unwrap(),
                notes: store.notes(*r).unwrap(),
            }
        })
        .collect();
    let mut out = jsonl::header().unwrap() + "\n";
    for l in jsonl::session_lines(&SessionRecord { session, runs }).unwrap() {
        out += &l;
        out += "\n";
    }
    out
}

/// Replaces ids by their order of first appearance, so two exports can be compared.
fn without_ids(text: &str) -> String {
    let mut map: Vec<String> = Vec::new();
    let mut out = String::new();
    let mut rest = text;
    let keys = ["\"id\":", "\"session\":", "\"run\":"];
    'outer: while !rest.is_empty() {
        for k in keys {
            if rest.starts_with(k)
                && !rest[k.len()..].starts_with('"')
                && !rest[k.len()..].starts_with('{')
            {
                let num: String =
                    rest[k.len()..].chars().take_while(char::is_ascii_digit).collect();
                if !num.is_empty() {
                    let n = map.iter().position(|m| *m == num).unwrap_or_else(|| {
                        map.push(num.clone());
                        map.len() - 1
                    });
                    out += &format!("{k}#{n}");
                    rest = &rest[k.len() + num.len()..];
                    continue 'outer;
                }
            }
        }
        let c = rest.chars().next().unwrap();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[test]
fn export_import_export_is_identical_apart_from_ids() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let mut run = new_run(&store, "R1-Zero");
    run.status = RunStatus::Complete;
    run.stop = Some(StopReason::Eos);
    store.put_run(&run).unwrap();
    store
        .put_steps(
            run.id,
            &(0..20).map(|i| (step(i), (i % 2 == 0).then(|| routing(i)))).collect::<Vec<_>>(),
        )
        .unwrap();
    store
        .put_flags(
            run.id,
            &[Flag {
                start: 2,
                end: 5,
                kind: FlagKind::LanguageSwitch,
                severity: Severity::Warn,
                detail: "en → zh".into(),
                origin: Origin::Auto,
            }],
        )
        .unwrap();
    store
        .put_notes(run.id, &[Note { start: 0, end: 1, text: "look <here> & \"there\"".into() }])
        .unwrap();
    // Prompt routing, one position with the full router distribution.
    let mut full = routing(7);
    full.layers[0] =
        full.layers[0].clone().with_router(&[0.25, 0.5, 0.125, 0.0, 0.0, 0.0, 0.0, 0.125]);
    store.put_prompt_routing(run.id, &[routing(5), full]).unwrap();
    let first = export(&store, run.session);
    assert!(first.contains("\"type\":\"prompt_routing\""), "{first}");
    assert!(first.contains("\"router\":[0.25,0.5,0.125,0.0,0.0,0.0,0.0,0.125]"), "{first}");
    let records = jsonl::parse(&first).unwrap();
    let done = import::import(&store, records.clone()).unwrap();
    assert_eq!(done.runs.len(), 1);
    assert_ne!(done.runs[0], run.id, "import must create new ids");
    let second = export(&store, done.sessions[0]);
    assert_ne!(first, second);
    assert_eq!(without_ids(&first), without_ids(&second));
    // Importing twice gives two more copies, never a clash.
    import::import(&store, records).unwrap();
    assert_eq!(store.runs().unwrap().len(), 3);
    // The escape byte in a top-k text is escaped in the file.
    assert!(first.contains("\\u001bx") && !first.contains('\u{1b}'));
}

#[test]
fn malformed_imports_name_the_line_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let mut run = new_run(&store, "x");
    run.status = RunStatus::Complete;
    store.put_run(&run).unwrap();
    store.put_steps(run.id, &(0..3).map(|i| (step(i), None)).collect::<Vec<_>>()).unwrap();
    let good = export(&store, run.session);
    let lines: Vec<&str> = good.lines().collect();
    let before = (store.sessions().unwrap().len(), store.runs().unwrap().len());
    let self_parent = format!("line 3: run '{}' is its own parent", run.id);
    let many_alternatives = {
        let mut step: serde_json::Value = serde_json::from_str(lines[4]).unwrap();
        let one = step["top"][0].clone();
        step["top"] = serde_json::Value::Array(vec![one; 101]);
        let mut all: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        all[4] = step.to_string();
        all.join("\n")
    };
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "line 1: the file is empty"),
        (lines[1..].join("\n"), "line 1: the first line must be the 'header' line"),
        (format!("{}\n{{not json", lines[0]), "line 2: not a valid thinkdbg JSONL line"),
        (
            format!("{}\n{{\"type\":\"sparkle\"}}", lines[0]),
            "line 2: not a valid thinkdbg JSONL line",
        ),
        (format!("{}\n{}\n{}", lines[0], lines[2], lines[1]), "line 2: run"),
        (format!("{}\n{}\n{}\n{}", lines[0], lines[1], lines[2], lines[4]), "line 4: step index 1"),
        ([lines[0], lines[1], lines[3]].join("\n"), "line 3: step of run"),
        (format!("{}\n{}", lines[0], lines[0]), "line 2: a second 'header' line"),
        (
            good.replace("\"version\":1", "\"version\":9"),
            "line 1: format 'thinkdbg-jsonl' version 9",
        ),
        (
            good.replace("\"logprob\":-0.25,", "\"logprob\":\"high\","),
            "line 5: not a valid thinkdbg JSONL line",
        ),
        (
            format!(
                "{}\n{}\n{}\n{{\"type\":\"prompt_routing\",\"run\":{},\"position\":3,\"routing\":[]}}",
                lines[0], lines[1], lines[2], run.id.0
            ),
            "line 4: prompt routing position 3",
        ),
        // Numbers no model produces, and spans and parents that point nowhere.
        (good.replace("\"logprob\":-0.25,", "\"logprob\":5.0,"), "line 5: step 1 of run"),
        (
            good.replace("\"parent\":null", &format!("\"parent\":[{},0]", run.id.0)),
            &self_parent,
        ),
        (
            format!(
                "{good}{{\"type\":\"flag\",\"run\":{},\"start\":0,\"end\":99999,\"kind\":\"low_confidence\",\"severity\":\"warn\",\"detail\":\"\",\"origin\":\"auto\"}}",
                run.id.0
            ),
            "line 7: flag span ends at step 99999, past the run's 3 steps",
        ),
        (many_alternatives, "line 5: step 1 of run"),
    ];
    for (text, want) in cases {
        let err = match jsonl::parse(&text) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted: {text}"),
        };
        assert!(err.starts_with(want), "got '{err}', want '{want}'");
        assert!(matches!(jsonl::parse(&text), Err(jsonl::ParseError { .. })));
    }
    // Bytes that are not UTF-8 are named by line too.
    let mut bytes = good.clone().into_bytes();
    let at = good.match_indices('\n').nth(3).unwrap().0 + 10;
    bytes.insert(at, 0xff);
    let err = jsonl::parse_bytes(&bytes).unwrap_err().to_string();
    assert!(err.starts_with("line 5: not valid UTF-8"), "{err}");
    // A parent outside the file is dropped rather than left pointing at an unrelated run.
    let dangling = good.replace("\"parent\":null", "\"parent\":[999999,1]");
    let parsed = jsonl::parse(&dangling).unwrap();
    assert_eq!(parsed[0].runs[0].run.as_ref().unwrap().parent, None);
    assert_eq!(before, (store.sessions().unwrap().len(), store.runs().unwrap().len()));
}

/// Parents and routing that no recording produces: a cycle of parents, a fork point past the
/// parent's steps, an expert chosen twice in a layer, weights that do not match the experts.
#[test]
fn impossible_parents_and_routing_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let mut run = new_run(&store, "x");
    run.status = RunStatus::Complete;
    store.put_run(&run).unwrap();
    store.put_steps(run.id, &(0..3).map(|i| (step(i), None)).collect::<Vec<_>>()).unwrap();
    let good = export(&store, run.session);
    let (a, b) = (run.id.0, run.id.0 + 1000);
    // A second run: the first one's lines under another id.
    let second: Vec<String> = good
        .lines()
        .skip(2)
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let key = if v["type"] == "run" { "id" } else { "run" };
            v[key] = b.into();
            v.to_string()
        })
        .collect();
    let two = format!("{good}{}\n", second.join("\n"));
    assert_eq!(jsonl::parse(&two).unwrap()[0].runs.len(), 2);
    let with_parents = |pa: Option<(u64, u32)>, pb: Option<(u64, u32)>| {
        let mut out = Vec::new();
        for l in two.lines() {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            if v["type"] == "run" {
                let p = if v["id"] == a { pa } else { pb };
                v["parent"] =
                    p.map_or(serde_json::Value::Null, |(r, at)| serde_json::json!([r, at]));
            }
            out.push(v.to_string());
        }
        out.join("\n")
    };
    let cycle = jsonl::parse(&with_parents(Some((b, 1)), Some((a, 1)))).unwrap_err().to_string();
    assert!(cycle.contains("is its own ancestor"), "{cycle}");
    let past = jsonl::parse(&with_parents(None, Some((a, 1_000_000)))).unwrap_err().to_string();
    assert!(past.contains("forks from step 1000000 of run") && past.contains("3 steps"), "{past}");
    assert!(jsonl::parse(&with_parents(None, Some((a, 2)))).is_ok());
    let routed = |layer: &str| {
        let mut lines: Vec<String> = good.lines().map(str::to_string).collect();
        let mut v: serde_json::Value = serde_json::from_str(&lines[4]).unwrap();
        v["routing"] = serde_json::from_str(layer).unwrap();
        lines[4] = v.to_string();
        jsonl::parse(&lines.join("\n"))
    };
    assert!(routed(r#"[{"layer":0,"experts":[1,2],"weights":[0.6,0.4]}]"#).is_ok());
    for (bad, want) in [
        (r#"[{"layer":9,"experts":[1,1],"weights":[0.5,0.5]}]"#, "routes to an expert twice"),
        (r#"[{"layer":9,"experts":[1,2],"weights":[2.0]}]"#, "1 weights for 2 experts"),
        (
            r#"[{"layer":9,"experts":[1,5],"weights":[0.5,0.5],"router":[0.1,0.2]}]"#,
            "expert 5 is outside",
        ),
    ] {
        let err = routed(bad).unwrap_err().to_string();
        assert!(err.starts_with("line 5: step 1 of run") && err.contains(want), "{err}");
    }
}

/// The store's sled database opened directly (to damage it), once the store that had it
/// open has let go of its lock.
fn raw_db(path: &std::path::Path) -> sled::Db {
    (0..20)
        .find_map(|_| {
            sled::open(path).ok().or_else(|| {
                std::thread::sleep(std::time::Duration::from_millis(50));
                None
            })
        })
        .unwrap()
}

fn arb_step(index: u32) -> impl Strategy<Value = Step> {
    (
        any::<u32>(),
        ".{0,6}",
        -30.0f32..0.0,
        0.0f32..8.0,
        any::<bool>(),
        any::<u64>(),
        prop::collection::vec((any::<u32>(), ".{0,4}", -30.0f32..0.0), 0..4),
    )
        .prop_map(move |(token_id, text, logprob, entropy, think, t_us, top)| Step {
            index,
            token_id,
            text,
            logprob,
            entropy,
            phase: if think { Phase::Think } else { Phase::Answer },
            t_us,
            top: top
                .into_iter()
                .map(|(id, text, logprob)| TopToken { id, text, logprob })
                .collect(),
        })
}

fn arb_routing() -> impl Strategy<Value = Option<Routing>> {
    prop::option::of(
        prop::collection::vec(
            (
                any::<u16>(),
                // As a model routes: each expert once, a weight per expert, ids inside the
                // router's distribution (import refuses anything else).
                prop::collection::btree_set(0u16..16, 0..8),
                prop::option::of(prop::collection::vec(0.0f32..1.0, 8)),
                prop::option::of(prop::collection::vec(0.0f32..1.0, 16)),
            ),
            0..4,
        )
        .prop_map(|layers| Routing {
            layers: layers
                .into_iter()
                .map(|(layer, experts, weights, router)| {
                    let experts: Vec<u16> = experts.into_iter().collect();
                    let weights = weights.map(|mut w| {
                        w.truncate(experts.len());
                        w
                    });
                    LayerRoute { layer, experts, weights, router }
                })
                .collect(),
        }),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn values_round_trip_through_the_codec(s in arb_step(7), r in arb_routing(), title in ".{0,20}", seed in any::<u64>(), msg in ".{0,10}") {
        let back: Step = codec::decode(&codec::encode(&s).unwrap(), "steps", String::new).unwrap();
        prop_assert_eq!(back, s);
        if let Some(r) = &r {
            let bytes = routing_codec::encode_routing(r).unwrap();
            let back = routing_codec::decode_routing(&bytes, "routing", String::new).unwrap();
            prop_assert_eq!(&back, r);
        }
        let session = Session { id: SessionId(seed), title, created_at: seed / 2, tags: vec!["a".into()], runs: vec![RunId(seed ^ 1)] };
        let back: Session = codec::decode(&codec::encode(&session).unwrap(), "sessions", String::new).unwrap();
        prop_assert_eq!(back, session);
        let flag = Flag { start: 1, end: 4, kind: FlagKind::User(msg.clone()), severity: Severity::Error, detail: msg.clone(), origin: Origin::User };
        let back: Flag = codec::decode(&codec::encode(&flag).unwrap(), "flags", String::new).unwrap();
        prop_assert_eq!(back, flag);
        let note = Note { start: 0, end: 9, text: msg.clone() };
        let back: Note = codec::decode(&codec::encode(&note).unwrap(), "notes", String::new).unwrap();
        prop_assert_eq!(back, note);
        let status = RunStatus::Failed(msg);
        let run = Run {
            id: RunId(seed), session: SessionId(seed ^ 3), parent: Some((RunId(2), 9)), label: None,
            source: RunSource::Remote { endpoint: "http://127.0.0.1:1/v1".into(), server: Default::default() }, model: ModelInfo::default(),
            messages: vec![Message::new("user", "q")], rendered_prompt: "p".into(), prompt_tokens: vec![1, 2],
            sampler: SamplerSpec { seed, ..SamplerSpec::default() }, logprob_kind: LogprobKind::PostSampling,
            status, stop: Some(StopReason::User), timings: Timings::default(), created_at: seed,
        };
        let back: Run = codec::decode(&codec::encode(&run).unwrap(), "runs", String::new).unwrap();
        prop_assert_eq!(back, run);
    }

    #[test]
    fn jsonl_round_trips_random_sessions(steps in prop::collection::vec((arb_step(0), arb_routing()), 0..12), title in ".{0,20}") {
        let steps: Vec<(Step, Option<Routing>)> = steps.into_iter().enumerate().map(|(i, (s, r))| (Step { index: i as u32, ..s }, r)).collect();
        let run = Run {
            id: RunId(11), session: SessionId(10), parent: None, label: Some("L".into()), source: RunSource::Embedded,
            model: ModelInfo::default(), messages: vec![], rendered_prompt: title.clone(), prompt_tokens: vec![],
            sampler: SamplerSpec::default(), logprob_kind: LogprobKind::Raw, status: RunStatus::Complete,
            stop: Some(StopReason::Eos), timings: Timings::default(), created_at: 1,
        };
        let rec = SessionRecord {
            session: Session { id: SessionId(10), title, created_at: 1, tags: vec![], runs: vec![RunId(11)] },
            runs: vec![RunRecord { run: Some(run), steps, flags: vec![], notes: vec![], prompt_routing: vec![] }],
        };
        let mut text = jsonl::header().unwrap() + "\n";
        for l in jsonl::session_lines(&rec).unwrap() { text += &l; text += "\n"; }
        let parsed = jsonl::parse(&text).unwrap();
        prop_assert_eq!(parsed, vec![rec]);
    }
}

#[test]
fn a_corrupt_run_does_not_hide_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let good = {
        let store = Store::open(&path).unwrap();
        let run = new_run(&store, "ok");
        store.put_run(&run).unwrap();
        store.flush().unwrap();
        run.id
    };
    {
        let db = raw_db(&path);
        db.open_tree("runs").unwrap().insert(codec::id_key(0xabc), &[1u8, 0xfe][..]).unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(&path).unwrap();
    let (runs, errors) = store.runs_lossy().unwrap();
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![good]);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].to_string().contains("run 'r2748'"), "{}", errors[0]);
}

#[test]
fn ids_stay_small_and_unique_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let first: Vec<u64> = {
        let store = Store::open(&path).unwrap();
        (0..3).map(|_| store.new_id().unwrap()).collect()
    };
    assert_eq!(first, vec![1, 2, 3]);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.new_id().unwrap(), 4);
}

/// A run recorded from a server: provenance, unknown token ids and NaN (unknown) logprob and
/// entropy survive the store codec and a JSONL export/import (where NaN is written as null).
#[test]
fn remote_runs_with_unknown_values_round_trip() {
    let info = RemoteInfo {
        model: "deepseek-r1".into(),
        reasoning_from: "reasoning_content".into(),
        routing_format: "sglang base64 int32 [9, 58, 8]".into(),
        missing: vec!["token ids".into(), "logprobs on 2 of 3 steps".into()],
        notes: vec!["SGLang #26778".into()],
    };
    let mut run = Run::new_recording(RunId(11), SessionId(10), SamplerSpec::default());
    run.source = RunSource::Remote { endpoint: "https://h/v1".into(), server: info };
    run.status = RunStatus::Interrupted;
    let step = Step {
        index: 0,
        token_id: UNKNOWN_TOKEN,
        text: "a".into(),
        logprob: f32::NAN,
        entropy: f32::NAN,
        phase: Phase::Think,
        t_us: 5,
        top: vec![],
    };
    let back: Run = codec::decode(&codec::encode(&run).unwrap(), "runs", String::new).unwrap();
    assert_eq!(back, run);
    let back: Step = codec::decode(&codec::encode(&step).unwrap(), "steps", String::new).unwrap();
    assert!(back.logprob.is_nan() && back.entropy.is_nan() && back.token_id == UNKNOWN_TOKEN);
    let rec = SessionRecord {
        session: Session {
            id: SessionId(10),
            title: "t".into(),
            created_at: 1,
            tags: vec![],
            runs: vec![RunId(11)],
        },
        runs: vec![RunRecord {
            run: Some(run.clone()),
            prompt_routing: vec![],
            steps: vec![(step, None)],
            flags: vec![],
            notes: vec![],
        }],
    };
    let mut text = jsonl::header().unwrap() + "\n";
    for l in jsonl::session_lines(&rec).unwrap() {
        text += &l;
        text += "\n";
    }
    assert!(text.contains("\"logprob\":null"), "{text}");
    let parsed = jsonl::parse(&text).unwrap();
    assert_eq!(parsed[0].runs[0].run.as_ref(), Some(&run));
    let s = &parsed[0].runs[0].steps[0].0;
    assert!(s.logprob.is_nan() && s.entropy.is_nan() && s.text == "a");
}
