//! Markdown and HTML exports end to end: a run whose text is hostile (HTML, `javascript:`
//! links, terminal escapes, bidi overrides) is imported into a store and exported through the
//! CLI; the HTML is parsed and must hold none of it live, the Markdown no raw control byte.

use std::path::Path;

use scraper::{Html, Selector};
use thinkdbg::export::jsonl;
use thinkdbg::trace::{
    Flag, FlagKind, LayerRoute, Message, Note, Origin, Phase, Routing, Run, RunId, RunRecord,
    RunStatus, SamplerSpec, Session, SessionId, SessionRecord, Severity, Step, TopToken,
};

use crate::common::thinkdbg;

const HOSTILE: &[&str] = &[
    "<think>",
    "Let me see: <script>alert(1)</script>",
    " </textarea><img src=x onerror=alert(2)>",
    " [click](javascript:alert(3)) <a href=\"javascript:alert(4)\">x</a>",
    " \u{1b}[31mred\u{1b}[0m \u{1b}]52;c;cHduZWQ=\u{7} \u{1b}]8;;http://evil\u{1b}\\link",
    " \u{9b}2J \u{202e}txt.exe\n",
    "</think>",
    "\n\nThe answer is **42** & \"done\" ' <b>bold</b>",
];

fn record() -> SessionRecord {
    let run_id = RunId(7);
    let mut run = Run::new_recording(run_id, SessionId(3), SamplerSpec::default());
    run.label = Some("<i>R1</i>".into());
    run.status = RunStatus::Complete;
    run.model.name = "tiny<script>".into();
    run.messages = vec![Message::new("user", "what is <b>6×7</b>?\u{1b}[2J")];
    let steps = HOSTILE
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let step = Step {
                index: i as u32,
                token_id: 100 + i as u32,
                text: (*text).into(),
                logprob: -(i as f32) * 0.7,
                entropy: 0.3 * i as f32,
                phase: if i < 7 { Phase::Think } else { Phase::Answer },
                t_us: 1000 * i as u64,
                top: vec![
                    TopToken { id: 100 + i as u32, text: (*text).into(), logprob: -0.1 },
                    TopToken { id: 5, text: "\"><script>alert(5)</script>".into(), logprob: -2.0 },
                ],
            };
            let routing = Routing {
                layers: vec![
                    LayerRoute {
                        layer: 1,
                        experts: vec![i as u16 % 4, 5],
                        weights: Some(vec![0.6, 0.4]),
                        router: None,
                    },
                    LayerRoute { layer: 2, experts: vec![3, 1], weights: None, router: None },
                ],
            };
            (step, Some(routing))
        })
        .collect();
    let flags = vec![Flag {
        start: 1,
        end: 3,
        kind: FlagKind::User("<script>x</script>".into()),
        severity: Severity::Warn,
        detail: "javascript:alert(6) \u{1b}[1m".into(),
        origin: Origin::User,
    }];
    let notes =
        vec![Note { start: 7, end: 8, text: "</textarea><script>alert(7)</script>".into() }];
    SessionRecord {
        session: Session {
            id: SessionId(3),
            title: "<script>alert('title')</script>".into(),
            created_at: 0,
            tags: vec![],
            runs: vec![run_id],
        },
        runs: vec![RunRecord { run: Some(run), steps, flags, notes, ..RunRecord::default() }],
    }
}

fn import(dir: &Path) -> String {
    let file = dir.join("hostile.jsonl");
    let mut text = jsonl::header().unwrap() + "\n";
    for line in jsonl::session_lines(&record()).unwrap() {
        text += &line;
        text.push('\n');
    }
    std::fs::write(&file, text).unwrap();
    thinkdbg(dir).arg("import").arg(&file).assert().success();
    let ls = thinkdbg(dir).args(["ls", "--json"]).output().unwrap();
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8(ls.stdout).unwrap().lines().next().unwrap())
            .unwrap();
    v["run"].as_str().unwrap().to_string()
}

fn export(dir: &Path, run: &str, format: &str) -> String {
    let out = thinkdbg(dir).args(["export", run, "--format", format]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn html_export_holds_no_live_markup_from_model_text() {
    let dir = tempfile::tempdir().unwrap();
    let run = import(dir.path());
    let html = export(dir.path(), &run, "html");
    let doc = Html::parse_document(&html);
    let all = Selector::parse("*").unwrap();
    for el in doc.select(&all) {
        let name = el.value().name();
        assert!(
            !["script", "textarea", "img", "iframe", "object", "b", "i"].contains(&name),
            "live <{name}>"
        );
        for (attr, value) in el.value().attrs() {
            assert!(!attr.starts_with("on"), "event handler {attr}={value}");
            assert!(
                !value.trim_start().to_lowercase().starts_with("javascript:"),
                "{attr}={value}"
            );
        }
    }
    // Every <a> points inside the page.
    for a in doc.select(&Selector::parse("a").unwrap()) {
        assert!(a.value().attr("href").unwrap().starts_with('#'));
    }
    // The text is all there, as text.
    let text: String = doc.root_element().text().collect();
    assert!(text.contains("<script>alert(1)</script>") && text.contains("</textarea>"));
    assert!(text.contains("javascript:alert(3)") && text.contains("The answer is **42**"));
    assert!(!html.chars().any(|c| c.is_control() && c != '\n'), "raw control byte in HTML");
    assert!(html.contains('␛') && html.contains("⟨U+202E⟩") && html.contains("⟨U+009B⟩"));
    // The strict policy, and nothing the policy would have to allow.
    let csp =
        doc.select(&Selector::parse("meta[http-equiv=Content-Security-Policy]").unwrap()).next();
    let csp = csp.unwrap().value().attr("content").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'none'"));
    assert_eq!(doc.select(&Selector::parse("[style]").unwrap()).count(), 0);
    // Tokens carry their alternatives; flags and notes are listed and linked.
    let tokens: Vec<_> = doc.select(&Selector::parse("span.t").unwrap()).collect();
    assert_eq!(tokens.len(), HOSTILE.len());
    assert!(tokens[1].value().attr("title").unwrap().contains("\"><script>alert(5)</script>"));
    assert!(tokens[1].value().classes().any(|c| c == "fl"));
    assert!(tokens[7].value().classes().any(|c| c == "nt"));
    assert!(doc.select(&Selector::parse("svg polyline").unwrap()).next().is_some());
    assert_eq!(doc.select(&Selector::parse("table.heat tr").unwrap()).count(), 3);
    assert!(text.contains("user:<script>x</script>"));
}

#[test]
fn markdown_export_escapes_markup_and_has_no_control_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let run = import(dir.path());
    let md = export(dir.path(), &run, "md");
    assert!(!md.chars().any(|c| c.is_control() && c != '\n'), "raw control byte in Markdown");
    assert!(!md.contains("<script>") && !md.contains("</textarea>") && !md.contains("<b>"));
    assert!(md.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(md.contains("\\[click\\](javascript:alert(3))"), "{md}");
    assert!(md.contains("### Thinking (steps 0–6)") && md.contains("### Answer (steps 7)"));
    assert!(md.contains("**⟦⚑1**") && md.contains("**⚑1⟧**") && md.contains("**⟦✎1**"));
    assert!(md.contains("| seed | 0 |"));
    assert!(md.contains('␛') && md.contains("⟨U+202E⟩"));
    // Severity as the CLI writes it; spaces as spaces.
    assert!(md.contains("(warn, steps 1–2)"), "{md}");
    assert!(!md.contains("&nbsp;"), "{md}");
}

#[test]
fn export_rejects_an_unknown_format() {
    let dir = tempfile::tempdir().unwrap();
    let run = import(dir.path());
    thinkdbg(dir.path())
        .args(["export", &run, "--format", "pdf"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("invalid value 'pdf'"));
}
