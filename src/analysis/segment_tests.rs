use proptest::prelude::*;

use super::*;
use crate::trace::{Phase, Step};

fn steps_with(texts: &[&str], phase_of: impl Fn(usize) -> Phase) -> Vec<Step> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| Step {
            index: i as u32,
            token_id: i as u32,
            text: (*t).to_string(),
            logprob: -0.1,
            entropy: 0.5,
            phase: phase_of(i),
            t_us: 0,
            top: Vec::new(),
        })
        .collect()
}

fn think(texts: &[&str]) -> Vec<Step> {
    steps_with(texts, |_| Phase::Think)
}

fn texts_of(steps: &[Step], ranges: &[Range<usize>]) -> Vec<String> {
    ranges.iter().map(|r| steps[r.clone()].iter().map(|s| s.text.as_str()).collect()).collect()
}

#[test]
fn think_and_answer_ranges() {
    let s = steps_with(&["<think>", "hm", "</think>", "Yes", "."], |i| {
        if i < 3 {
            Phase::Think
        } else {
            Phase::Answer
        }
    });
    let seg = segment(&s);
    assert_eq!(seg.think, Some(0..3));
    assert_eq!(seg.answer, Some(3..5));
    assert_eq!(segment(&think(&["a"])).answer, None);
    assert_eq!(segment(&[]), Segments::default());
}

#[test]
fn words_follow_spaces_and_ideographs() {
    let s = think(&["The", " ca", "t sat", ".", " 我们", "来算"]);
    let seg = segment(&s);
    // "cat" and "sat." share the step "t sat": the second starts after it.
    assert_eq!(seg.words, vec![0..1, 1..3, 3..4, 4..5, 5..6]);
    let s = think(&["我", "们", "来", " x"]);
    assert_eq!(segment(&s).words, vec![0..1, 1..2, 2..3, 3..4]);
}

#[test]
fn sentences_end_at_terminators_not_decimals_or_list_numbers() {
    let s = think(&[
        "So", " 2", ".", "5", " times", " 4", " is", " 10", ".", " Good", "!\n", "1", ".", " Add",
        " it", "\n", "好", "的", "。", "完成",
    ]);
    let seg = segment(&s);
    assert_eq!(
        texts_of(&s, &seg.sentences),
        vec!["So 2.5 times 4 is 10.", " Good!\n", "1. Add it", "好的。", "完成"]
    );
}

#[test]
fn reasoning_steps_at_paragraphs_and_markers() {
    let s = think(&[
        "First", " add", ".", " Then", " check", ".\n\n", "Wait", ",", " that", " is", " wrong",
        ".", " But", " the", " sum", " holds", ".", " I", " wait", " here", ".\n\n", "等等", "，",
        "不", "对", "。",
    ]);
    let seg = segment(&s);
    let got: Vec<(String, Option<String>)> = seg
        .steps
        .iter()
        .map(|r| (texts_of(&s, std::slice::from_ref(&r.span))[0].clone(), r.marker.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("First add. Then check.\n\n".to_string(), None),
            ("Wait, that is wrong.".to_string(), Some("Wait".to_string())),
            (" But the sum holds. I wait here.\n\n".to_string(), Some("But".to_string())),
            ("等等，不对。".to_string(), Some("等等".to_string())),
        ]
    );
}

#[test]
fn steps_do_not_cross_from_think_to_answer() {
    let s = steps_with(&["ok", " so", "</think>", "The", " answer"], |i| {
        if i < 3 {
            Phase::Think
        } else {
            Phase::Answer
        }
    });
    let seg = segment(&s);
    assert_eq!(seg.steps.iter().map(|r| r.span.clone()).collect::<Vec<_>>(), vec![0..3, 3..5]);
    assert_eq!(seg.sentences, vec![0..3, 3..5]);
}

#[test]
fn markers_need_a_word_boundary() {
    assert_eq!(marker_of("Hmmm, no").map(|(_, t)| t), Some("Hmm"));
    assert_eq!(marker_of("**Wait**, no").map(|(_, t)| t), Some("Wait"));
    assert!(marker_of("Butter is nice").is_none());
    assert!(marker_of("Waiting").is_none());
    assert_eq!(marker_of("But wait, x").map(|(m, _)| m.backtrack), Some(true));
}

fn token() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "a", " b", "c.", " ", "\n", "\n\n", ".", "!", " Wait", "等等", "。", "我", "1", "é", "",
        "\"", ". ", " But", "*",
    ])
    .prop_map(str::to_string)
}

proptest! {
    #[test]
    fn ranges_are_sorted_disjoint_and_in_bounds(
        tokens in prop::collection::vec(token(), 0..60),
        split in 0usize..60,
    ) {
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let s = steps_with(&refs, |i| if i < split { Phase::Think } else { Phase::Answer });
        let seg = segment(&s);
        let steps: Vec<Range<usize>> = seg.steps.iter().map(|r| r.span.clone()).collect();
        for list in [&seg.words, &seg.sentences, &steps] {
            for r in list.iter() {
                prop_assert!(r.start < r.end && r.end <= s.len(), "{r:?} in {}", s.len());
            }
            for w in list.windows(2) {
                prop_assert!(w[0].end <= w[1].start, "{:?}", list);
            }
        }
        // Every sentence lies inside one reasoning step.
        for r in &seg.sentences {
            prop_assert!(steps.iter().any(|st| st.start <= r.start && r.end <= st.end));
        }
    }
}
