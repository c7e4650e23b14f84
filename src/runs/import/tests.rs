use serde_json::json;

use super::dataset::{lookup, row_runs};
use super::*;
use crate::trace::Phase;

fn text_of(steps: &[Step]) -> String {
    steps.iter().map(|s| s.text.as_str()).collect()
}

fn phase_text(steps: &[Step], p: Phase) -> String {
    steps.iter().filter(|s| s.phase == p).map(|s| s.text.as_str()).collect()
}

#[test]
fn pieces_are_words_tags_and_characters_and_join_back_exactly() {
    let text = "  <think>\nLet x=12, so 深度 x²…</think>\n\nThe answer is **12**.\n";
    let p = pieces(text);
    assert_eq!(p.concat(), text);
    assert!(p.contains(&"<think>") && p.contains(&"</think>"), "{p:?}");
    assert!(p.contains(&" 深") && p.contains(&"度"), "{p:?}");
    assert!(p.contains(&" answer"), "{p:?}");
    assert_eq!(pieces(""), Vec::<&str>::new());
    assert_eq!(pieces("   "), vec!["   "]);
    let long = "a".repeat(60);
    assert!(pieces(&long).iter().all(|w| w.len() <= 24));
}

#[test]
fn text_steps_split_thinking_from_the_answer() {
    let mut steps = Vec::new();
    text_steps("", "<think>hmm, 2+2</think>It is 4.", false, &mut steps);
    assert_eq!(phase_text(&steps, Phase::Think), "<think>hmm, 2+2</think>");
    assert_eq!(phase_text(&steps, Phase::Answer), "It is 4.");
    assert!(steps.iter().enumerate().all(|(i, s)| s.index as usize == i));
    // R1's template opens <think> in the prompt: the output only closes it.
    let mut steps = Vec::new();
    let out = "so 4.\n</think>\n\n4";
    text_steps("", out, starts_in_think(out), &mut steps);
    assert_eq!(phase_text(&steps, Phase::Think), "so 4.\n</think>");
    assert_eq!(phase_text(&steps, Phase::Answer), "\n\n4");
}

#[test]
fn dataset_rows_map_fields_lists_and_chats() {
    let row = json!({
        "problem": "What is 2+2?",
        "answer": "4",
        "generations": ["<think>2+2=4</think>\n4", "<think>maybe 5</think>\n5"],
        "correctness": [true, false],
        "meta": {"source": "amc"}
    });
    let mut opts = Options::default();
    opts.fields.label = Some("correctness".into());
    let runs = row_runs(&row, 3, &opts).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].messages, vec![Message::new("user", "What is 2+2?")]);
    assert_eq!(text_of(&runs[1].steps), "<think>maybe 5</think>\n5");
    assert_eq!(runs[0].label.as_deref(), Some("g0 true"));
    assert_eq!(runs[1].place, "row 3 generation 1");
    assert_eq!(lookup(&row, "meta.source"), Some(&json!("amc")));
    assert_eq!(lookup(&row, "generations.1"), Some(&json!("<think>maybe 5</think>\n5")));

    // A chat list: the closing assistant turn is the response; ShareGPT roles are mapped.
    let chat = json!({
        "system": "Think first.",
        "conversations": [{"from": "user", "value": "hi"}, {"from": "assistant", "value": "<think>x</think>hello"}]
    });
    let runs = row_runs(&chat, 1, &Options::default()).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].messages,
        vec![Message::new("system", "Think first."), Message::new("user", "hi")]
    );
    assert_eq!(phase_text(&runs[0].steps, Phase::Answer), "hello");

    // s1K-like: reasoning and answer in their own fields.
    let s1k = json!({"question": "q", "thinking_trajectories": ["think hard"], "attempt": "42"});
    let mut opts = Options::default();
    opts.fields.reasoning = Some("thinking_trajectories".into());
    opts.fields.answer = Some("attempt".into());
    let runs = row_runs(&s1k, 1, &opts).unwrap();
    assert_eq!(phase_text(&runs[0].steps, Phase::Think), "think hard");
    assert_eq!(phase_text(&runs[0].steps, Phase::Answer), "42");
    assert_eq!(runs[0].info.reasoning_from, "field 'thinking_trajectories'");
}

#[test]
fn dataset_rows_without_a_response_or_with_a_wrong_field_say_so() {
    let row = json!({"problem": "p", "solution": "s"});
    let err = row_runs(&row, 1, &Options::default()).unwrap_err();
    assert!(err.contains("no response") && err.contains("'solution'"), "{err}");
    let mut opts = Options::default();
    opts.fields.response = Some("generatons".into());
    let err = row_runs(&row, 1, &opts).unwrap_err();
    assert!(err.contains("no field 'generatons' (--response-field)"), "{err}");
    let empty = json!({"problem": "p", "generations": []});
    let err = row_runs(&empty, 1, &Options::default()).unwrap_err();
    assert!(err.contains("no response: 'generations' is empty"), "{err}");
    let number = json!({"problem": "p", "response": 7});
    let err = row_runs(&number, 1, &Options::default()).unwrap_err();
    assert!(err.contains("not text"), "{err}");
}

#[test]
fn where_filters_compare_text_and_json() {
    let row = json!({"level": 3, "ok": true, "src": "amc"});
    let w = |s: &str| s.parse::<Where>().unwrap();
    assert!(dataset::keeps(&row, &[w("level=3"), w("ok=true"), w("src=amc")]).unwrap());
    assert!(!dataset::keeps(&row, &[w("src=aime")]).unwrap());
    assert!(dataset::keeps(&row, &[w("nope=1")]).unwrap_err().contains("no field 'nope'"));
    assert!("novalue".parse::<Where>().is_err());
}
