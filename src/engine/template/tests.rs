//! Chat template tests: real templates rendered against the exact strings Hugging Face's
//! `apply_chat_template` produces (computed with jinja2 configured as transformers does), plus
//! the Python-compatibility pieces one by one.

use super::*;

const SMOLLM2: &str = include_str!("../../../tests/fixtures/templates/smollm2.jinja");
const R1_DISTILL: &str =
    include_str!("../../../tests/fixtures/templates/deepseek-r1-distill-qwen.jinja");
const QWEN3: &str = include_str!("../../../tests/fixtures/templates/qwen3.jinja");

fn msg(role: &str, content: &str) -> Message {
    Message::new(role, content)
}

fn one_user() -> Vec<Message> {
    vec![msg("user", "What is 2+2?")]
}

fn multi_turn() -> Vec<Message> {
    vec![
        msg("system", "You are terse."),
        msg("user", "Hi"),
        msg("assistant", "<think>\nGreeting.\n</think>\n\nHello!"),
        msg("user", "2+2?"),
    ]
}

fn ends_with_assistant() -> Vec<Message> {
    vec![msg("user", "Hi"), msg("assistant", "<think>\nx\n</think>\n\nHello!")]
}

fn render(src: &str, bos: &str, eos: &str, messages: &[Message], gen: bool) -> String {
    ChatTemplate::new(src, bos, eos).unwrap().render(messages, gen).unwrap()
}

#[test]
fn smollm2_matches_hf() {
    let r = |m: &[Message], gen| render(SMOLLM2, "<|im_start|>", "<|im_end|>", m, gen);
    assert_eq!(
        r(&one_user(), true),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        r(&multi_turn(), true),
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nGreeting.\n</think>\n\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        r(&ends_with_assistant(), false),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nx\n</think>\n\nHello!<|im_end|>\n"
    );
}

#[test]
fn deepseek_r1_distill_matches_hf() {
    let r = |m: &[Message], gen| {
        render(R1_DISTILL, "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", m, gen)
    };
    let one = r(&one_user(), true);
    assert_eq!(one, "<｜begin▁of▁sentence｜><｜User｜>What is 2+2?<｜Assistant｜><think>\n");
    assert!(prompt_opens_think(&one));
    // Earlier assistant turns lose their reasoning (everything up to the last </think>).
    assert_eq!(
        r(&multi_turn(), true),
        "<｜begin▁of▁sentence｜>You are terse.<｜User｜>Hi<｜Assistant｜>\n\nHello!<｜end▁of▁sentence｜><｜User｜>2+2?<｜Assistant｜><think>\n"
    );
    assert_eq!(
        r(&ends_with_assistant(), false),
        "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>\n\nHello!<｜end▁of▁sentence｜>"
    );
}

#[test]
fn qwen3_matches_hf() {
    let r = |m: &[Message], gen| render(QWEN3, "", "<|im_end|>", m, gen);
    let one = r(&one_user(), true);
    assert_eq!(one, "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
    assert!(!prompt_opens_think(&one));
    assert_eq!(
        r(&multi_turn(), true),
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
    );
    // The last assistant turn after the last user query keeps its reasoning.
    assert_eq!(
        r(&ends_with_assistant(), false),
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nx\n</think>\n\nHello!<|im_end|>\n"
    );
}

#[test]
fn raise_exception_reports_the_message() {
    let src = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}ok";
    let t = ChatTemplate::new(src, "", "").unwrap();
    assert_eq!(t.render(&one_user(), false).unwrap(), "ok");
    let err = t.render(&[msg("assistant", "x")], false).unwrap_err();
    assert!(matches!(err, Error::Template(_)));
    assert!(
        err.to_string()
            .contains("Conversation roles must alternate user/assistant/user/assistant/..."),
        "{err}"
    );
}

#[test]
fn syntax_errors_name_the_line() {
    let err =
        ChatTemplate::new("line one\n{% for m in messages %}\n{{ m.content }", "", "").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Template(_)));
    assert!(text.contains("line 3"), "{text}");
}

#[test]
fn trim_blocks_lstrip_blocks_and_loop_controls() {
    let src = "  {% for m in messages %}\n{% if loop.index > 2 %}{% break %}{% endif %}{% if m.role == 'system' %}{% continue %}{% endif %}\n[{{ m.role }}]\n  {% endfor %}\nend";
    let out = render(src, "", "", &multi_turn(), false);
    assert_eq!(out, "[user]\nend");
}

#[test]
fn python_string_methods_work() {
    let src = "{{ '  a b  '.strip() }}|{{ 'x</think>y'.split('</think>')[-1] }}|{{ '\\n\\nz'.lstrip('\\n') }}|{{ 'Abc'.startswith('A') }}|{{ 'abc'.upper() }}|{{ 'a-b'.replace('-', '+') }}";
    assert_eq!(render(src, "", "", &[], false), "a b|y|z|True|ABC|a+b");
}

#[test]
fn namespace_and_special_token_variables() {
    let src = "{% set ns = namespace(is_first=true, n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% if ns.is_first %}{{ bos_token }}{% set ns.is_first = false %}{% endif %}{% endfor %}{{ ns.n }}{{ eos_token }}{% if tools %}tools{% endif %}";
    assert_eq!(render(src, "<s>", "</s>", &multi_turn(), false), "<s>4</s>");
}

#[test]
fn tojson_is_pythons_json_dumps() {
    let src = "{{ {'b': 'ü\"<x>', 'a': [1, 2]} | tojson }}|{{ [] | tojson }}|{{ {'k': [1]} | tojson(indent=2) }}|{{ messages[0] | tojson }}";
    assert_eq!(
        render(src, "", "", &multi_turn(), false),
        "{\"b\": \"ü\\\"<x>\", \"a\": [1, 2]}|[]|{\n  \"k\": [\n    1\n  ]\n}|{\"role\": \"system\", \"content\": \"You are terse.\"}"
    );
}

#[test]
fn strftime_formats_dates() {
    // 2024-02-29 13:05:09 UTC, a Thursday.
    let t = 1_709_211_909;
    assert_eq!(strftime("%Y-%m-%d %H:%M:%S", t), "2024-02-29 13:05:09");
    assert_eq!(
        strftime("%d %b %Y, %A %a %B %j %I%p %-d %y %%", t),
        "29 Feb 2024, Thursday Thu February 060 01PM 29 24 %"
    );
    assert_eq!(strftime("%Y-%m-%d", 0), "1970-01-01");
    assert_eq!(strftime("%Y-%m-%d %a", 951_782_400), "2000-02-29 Tue");
    let now = render("{{ strftime_now('%Y') }}", "", "", &[], false);
    assert!(now.len() == 4 && now.starts_with('2'), "{now}");
}

#[test]
fn prompt_opens_think_looks_at_the_last_think_block() {
    assert!(prompt_opens_think("<｜Assistant｜><think>\n"));
    assert!(!prompt_opens_think("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
    assert!(prompt_opens_think("<think>a</think> then <think>"));
    assert!(!prompt_opens_think("no think here"));
}
