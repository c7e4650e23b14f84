use super::language::tests_text::{CODE_COT, MIXED_COT};
use super::test_util::{run, run_steps, CLEAN_ANSWER, CLEAN_THINK};
use super::*;
use crate::trace::{LayerRoute, Message, Phase, StopReason};

fn cfg() -> AnalysisConfig {
    AnalysisConfig::defaults().unwrap()
}

fn kinds(a: &Analysis) -> Vec<String> {
    a.flags.iter().map(|f| f.kind.as_str().into_owned()).collect()
}

#[test]
fn a_clean_run_has_no_flags_and_sane_statistics() {
    let s = run_steps(Some(CLEAN_THINK), CLEAN_ANSWER);
    let a = analyze(&run(), "What is 1 + 2 + ... + 10?", &s, &[], &cfg());
    assert!(a.flags.is_empty(), "{:?}", a.flags);
    let st = &a.stats;
    assert_eq!(st.tokens, s.len());
    assert_eq!(st.think_tokens + st.answer_tokens, s.len());
    assert_eq!(st.target_language.as_deref(), Some("eng"));
    assert_eq!(st.target_language_ratio, Some(1.0));
    let mean = s.iter().map(|x| f64::from(x.logprob)).sum::<f64>() / s.len() as f64;
    assert!((st.mean_logprob.unwrap() - mean).abs() < 1e-9);
    assert!((st.perplexity.unwrap() - (-mean).exp()).abs() < 1e-9);
    assert!((st.tok_s.unwrap() - 50.0).abs() < 1e-6, "{:?}", st.tok_s);
    assert_eq!(st.backtracks, 0);
    assert!(st.moe.is_none());
    assert_eq!(st.reasoning_steps, a.segments.steps.len());
}

#[test]
fn thinking_cut_off_by_the_token_limit() {
    let s: Vec<_> =
        run_steps(Some(CLEAN_THINK), "").into_iter().filter(|x| x.text != "</think>").collect();
    let mut r = run();
    r.stop = Some(StopReason::MaxTokens);
    let a = analyze(&r, "q", &s, &[], &cfg());
    let f: Vec<_> = a.flags.iter().filter(|f| f.kind == FlagKind::ThinkIntegrity).collect();
    assert_eq!(f.len(), 1, "{:?}", a.flags);
    assert_eq!(f[0].severity, Severity::Error);
    assert!(f[0].detail.starts_with("thinking cut off by the token limit"), "{}", f[0].detail);
    r.stop = Some(StopReason::Eos);
    let a = analyze(&r, "q", &s, &[], &cfg());
    assert!(a.flags.iter().any(|f| f.detail.contains("thinking never closed")));
}

#[test]
fn empty_answer_missing_open_and_leaks() {
    let s = run_steps(Some(CLEAN_THINK), "  ");
    let a = analyze(&run(), "q", &s, &[], &cfg());
    assert!(a.flags.iter().any(|f| f.detail == "empty answer after '</think>'"), "{:?}", a.flags);
    // No `<think>` in the output, none at the end of the prompt: the close is unmatched.
    let s: Vec<_> = run_steps(Some(CLEAN_THINK), CLEAN_ANSWER)
        .into_iter()
        .filter(|x| x.text != "<think>")
        .collect();
    let a = analyze(&run(), "q", &s, &[], &cfg());
    assert_eq!(kinds(&a), vec!["think_integrity"], "{:?}", a.flags);
    let mut opened = run();
    opened.rendered_prompt.push_str("<think>\n");
    assert!(analyze(&opened, "q", &s, &[], &cfg()).flags.is_empty());
    // Reasoning after the think block.
    let s =
        run_steps(Some(CLEAN_THINK), "The sum is 55.\n\nWait, let me recount the pairs. It is 55.");
    let a = analyze(&run(), "q", &s, &[], &cfg());
    assert!(
        a.flags.iter().any(|f| f.detail == "reasoning leaks into the answer: 'Wait'"),
        "{:?}",
        a.flags
    );
}

#[test]
fn answer_differing_from_the_conclusion_is_flagged() {
    let s = run_steps(Some(CLEAN_THINK), "The sum is \\boxed{56}.");
    let a = analyze(&run(), "q", &s, &[], &cfg());
    assert_eq!(kinds(&a), vec!["answer_mismatch"], "{:?}", a.flags);
    assert_eq!(a.flags[0].detail, "answer '56' but the reasoning concluded '55'");
    let text: String = s[a.flags[0].start as usize..a.flags[0].end as usize]
        .iter()
        .map(|x| x.text.as_str())
        .collect();
    assert!(text.contains("56"), "{text}");
    // Agreement in other words, and a free-text answer, are not flagged.
    for answer in ["The total is fifty five, i.e. \\boxed{55.0}.", "It is the usual formula."] {
        let s = run_steps(Some(CLEAN_THINK), answer);
        assert!(analyze(&run(), "q", &s, &[], &cfg()).flags.is_empty(), "{answer}");
    }
    let mut off = cfg();
    off.answer.check_mismatch = false;
    let s = run_steps(Some(CLEAN_THINK), "The sum is \\boxed{56}.");
    assert!(analyze(&run(), "q", &s, &[], &off).flags.is_empty());
}

#[test]
fn mixed_chinese_english_run_switches_once_and_reports_the_ratio() {
    let s = run_steps(Some(MIXED_COT), "鸡有23只，兔子有12只。");
    let mut r = run();
    r.messages =
        vec![Message::new("user", "鸡和兔子一共有35只，脚一共有94只。鸡和兔子各有多少只？")];
    let a = analyze(&r, &prompt_text(&r), &s, &[], &cfg());
    let sw: Vec<_> = a.flags.iter().filter(|f| f.kind == FlagKind::LanguageSwitch).collect();
    assert_eq!(sw.len(), 1, "{:?}", a.flags);
    assert!(
        sw[0].detail.starts_with("Mandarin → English, 37 words: 'Let me solve"),
        "{}",
        sw[0].detail
    );
    let st = &a.stats;
    assert_eq!(st.target_language.as_deref(), Some("cmn"));
    let ratio = st.target_language_ratio.unwrap();
    let (cmn, eng) = (st.language_mix[0].1 as f64, st.language_mix[1].1 as f64);
    assert!((ratio - cmn / (cmn + eng)).abs() < 1e-12 && ratio > 0.5 && ratio < 0.9, "{st:?}");
    // "等等" opens a backtrack.
    assert_eq!(st.backtracks, 1);
}

#[test]
fn code_in_an_english_run_is_no_switch_even_for_a_chinese_target() {
    let s = run_steps(Some(CODE_COT), "Use `max(nums)`.");
    let a = analyze(&run(), "Write a function that returns the largest element.", &s, &[], &cfg());
    assert!(!a.flags.iter().any(|f| f.kind == FlagKind::LanguageSwitch), "{:?}", a.flags);
    assert_eq!(a.stats.target_language_ratio, Some(1.0));
}

#[test]
fn the_target_language_comes_from_the_config_when_set() {
    let s = run_steps(Some(CLEAN_THINK), CLEAN_ANSWER);
    let mut c = cfg();
    c.language.target = "cmn".into();
    let a = analyze(&run(), "anything", &s, &[], &c);
    assert_eq!(a.stats.target_language_ratio, Some(0.0));
    assert!(a.flags.iter().any(|f| f.kind == FlagKind::LanguageSwitch));
}

#[test]
fn moe_usage_histograms_and_routing_entropy() {
    let s = run_steps(None, "a b c d");
    let mut r = run();
    r.model.experts = 4;
    let route = |experts: Vec<u16>, w: Vec<f32>| Routing {
        layers: vec![
            LayerRoute { layer: 0, experts: experts.clone(), weights: Some(w), router: None },
            LayerRoute { layer: 1, experts: vec![3, 3 - experts[0]], weights: None, router: None },
        ],
    };
    let routing =
        vec![(0, route(vec![0, 1], vec![0.5, 0.5])), (1, route(vec![2, 3], vec![1.0, 0.0]))];
    let a = analyze(&r, "q", &s, &routing, &cfg());
    let moe = a.stats.moe.unwrap();
    assert_eq!(moe.experts, 4);
    assert_eq!(moe.layers[0].counts, vec![1, 1, 1, 1]);
    assert!((moe.layers[0].balance - 1.0).abs() < 1e-12);
    assert_eq!(moe.layers[1].counts, vec![0, 1, 0, 3]);
    assert!(moe.layers[1].balance < 1.0);
    // Gate entropies: ln 2 and 0, so the mean is ln 2 / 2.
    assert!((moe.mean_routing_entropy.unwrap() - std::f64::consts::LN_2 / 2.0).abs() < 1e-9);
    assert_eq!(moe.layers[1].mean_gate_entropy, None);
}

#[test]
fn prompt_text_prefers_the_user_message_and_strips_special_tokens() {
    let mut r = run();
    // A raw prompt: its user turn, not the markup around it.
    assert_eq!(prompt_text(&r), "q");
    r.messages = vec![Message::new("system", "s"), Message::new("user", "hello there")];
    assert_eq!(prompt_text(&r), "hello there");
}

#[test]
fn user_flags_survive_a_new_analysis() {
    let user = Flag {
        start: 3,
        end: 4,
        kind: FlagKind::User("odd".into()),
        severity: Severity::Info,
        detail: "look".into(),
        origin: Origin::User,
    };
    let old_auto = flags::auto(0..1, FlagKind::Backtrack, Severity::Info, "x".into());
    let new_auto = flags::auto(5..6, FlagKind::Repetition, Severity::Warn, "y".into());
    let merged = merge_flags(&[old_auto, user.clone()], std::slice::from_ref(&new_auto));
    assert_eq!(merged, vec![user, new_auto]);
    let _ = Phase::Think;
}

#[test]
fn the_user_turn_of_a_rendered_prompt() {
    let chatml = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n\
Why is the sky blue?<|im_end|>\n<|im_start|>assistant\n<think>\n";
    assert_eq!(user_text_of_rendered(chatml), "Why is the sky blue?");
    let llama3 =
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>\
<|start_header_id|>user<|end_header_id|>\n\nfirst<|eot_id|><|start_header_id|>assistant\
<|end_header_id|>\n\nok<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nsecond<|eot_id|>";
    assert_eq!(user_text_of_rendered(llama3), "second");
    let r1 = "<｜begin▁of▁sentence｜>You are terse.<｜User｜>2+2?<｜Assistant｜><think>\n";
    assert_eq!(user_text_of_rendered(r1), "2+2?");
    // Plain text stays as it is; unknown special tokens are dropped.
    assert_eq!(user_text_of_rendered("Once upon a time"), "Once upon a time");
    assert_eq!(user_text_of_rendered("<|x|>a < b"), "a < b");
}
