use super::*;
use crate::analysis::config::AnalysisConfig;
use crate::analysis::segment::segment;
use crate::analysis::test_util::{run, run_steps, CLEAN_ANSWER, CLEAN_THINK};
use crate::analysis::{analyze, flags};

fn cfg() -> AnalysisConfig {
    AnalysisConfig::defaults().unwrap()
}

fn loops_of(s: &[Step]) -> Vec<Flag> {
    repetition(s, &StepText::new(s), &segment(s), &cfg().repetition)
}

const LOOPED: &str = "The Industrial Revolution was a time of great change and innovation.";

/// A greedy small-model essay: an opening paragraph, then one sentence 8 times, separated
/// by a space or a blank line, then cut off by the token limit in a ninth copy.
fn essay() -> String {
    let mut s = String::from(
        "The Industrial Revolution began in Britain in the late eighteenth century. Factories \
drew workers from farms into crowded cities, and new machines made cloth, iron and coal \
cheaper than ever before.\n\n",
    );
    let seps = [" ", "\n\n", " ", " ", "\n\n", "\n\n", " ", " "];
    for sep in seps {
        s.push_str(LOOPED);
        s.push_str(sep);
    }
    s.push_str("The Industrial Revolution was a");
    s
}

#[test]
fn an_essay_repeating_a_sentence_with_mixed_separators_is_one_loop_with_its_spikes_folded() {
    let mut s = run_steps(None, &essay());
    // The token period is not constant: the token-level search alone finds nothing.
    assert!(flags::repetition(&s, &cfg().repetition).is_empty());
    // Each cycle's first word is a surprise to the model once more.
    let firsts: Vec<usize> = (1..s.len())
        .filter(|&i| s[i].text.trim() == "The" && s[i + 1].text == " Industrial")
        .filter(|&i| s[i + 2].text == " Revolution" && s[i + 3].text == " was")
        .collect();
    assert_eq!(firsts.len(), 9, "{firsts:?}");
    for &i in &firsts {
        s[i].entropy = 4.0;
    }
    let mut r = run();
    r.stop = Some(crate::trace::StopReason::MaxTokens);
    let a = analyze(&r, "Write an essay about the Industrial Revolution.", &s, &[], &cfg());
    let reps: Vec<&Flag> = a.flags.iter().filter(|f| f.kind == FlagKind::Repetition).collect();
    assert_eq!(reps.len(), 1, "{:?}", a.flags);
    let f = reps[0];
    assert_eq!(f.start as usize, firsts[0]);
    assert_eq!(f.severity, Severity::Error);
    assert!(
        f.detail.starts_with(
            "sentence repeated 8× until the output ends: 'The Industrial Revolution was a time of"
        ),
        "{}",
        f.detail
    );
    // The cut-off ninth copy belongs to the loop, and every cycle's spike is folded in.
    assert_eq!(f.end as usize, s.len());
    assert!(a.flags.iter().all(|f| f.kind != FlagKind::EntropySpike), "{:?}", a.flags);
    assert!(f.detail.ends_with("(9 entropy spikes folded in)"), "{}", f.detail);
    assert!(a.stats.flags_by_kind.iter().all(|(k, _)| k != "entropy_spike"), "{:?}", a.stats);
}

#[test]
fn clean_text_and_short_repeated_sentences_are_no_loop() {
    assert!(loops_of(&run_steps(Some(CLEAN_THINK), CLEAN_ANSWER)).is_empty());
    let think = "Wait. The sum is 54. Wait. Let me add again. Wait. It is 55.";
    assert!(loops_of(&run_steps(Some(think), "55")).is_empty());
    // Three times, but too far apart to be a loop.
    let far = format!(
        "{LOOPED} One. Two. Three. Four. Five. {LOOPED} Six. Seven. Eight. Nine. Ten. {LOOPED} End."
    );
    assert!(loops_of(&run_steps(Some(&far), "ok")).is_empty());
}

#[test]
fn loops_within_a_window_of_several_sentences_and_of_lines() {
    // Two sentences alternating: one loop over both, a warning when it stops mid-text.
    let (a, b) = ("Let me add the numbers again.", "The total is still fifty four.");
    let two = format!("{a} {b}\n{a}\n{b} {a}\n\n{b} ");
    let think = format!(
        "Start here. {two}So I stop here and give the answer, which is fifty four, as the \
sum of the numbers above shows."
    );
    let f = loops_of(&run_steps(Some(&think), "54"));
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].severity, Severity::Warn);
    assert!(f[0].detail.starts_with("2 sentences repeated 3×"), "{}", f[0].detail);
    // One sentence recurring with others between (within the window).
    let think = format!(
        "{LOOPED} First aside. {LOOPED} Second aside here. {LOOPED} Third. Then the end comes."
    );
    let f = loops_of(&run_steps(Some(&think), "ok"));
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].detail.starts_with("sentence repeated 3×"), "{}", f[0].detail);
    // Lines without end punctuation, with their indentation varying.
    let think = "Plan:\n- check the remaining terms\n  - check the remaining terms\n\
- check  the remaining terms\n-  check the remaining terms\nDone with the plan.";
    let s = run_steps(Some(think), "ok");
    let f = loops_of(&s);
    let t = StepText::new(&s);
    let sentences: Vec<&str> =
        segment(&s).sentences.iter().map(|r| &t.text[t.bytes_of(r.clone())]).collect();
    assert_eq!(f.len(), 1, "{f:?} {sentences:?}");
    assert!(f[0].detail.starts_with("line repeated 4×: '- check the"), "{}", f[0].detail);
}

#[test]
fn only_automatic_spikes_inside_a_loop_are_folded() {
    let flag = |span: Range<u32>, kind, origin| Flag {
        start: span.start,
        end: span.end,
        kind,
        severity: Severity::Info,
        detail: "d".into(),
        origin,
    };
    let flags = vec![
        flag(5..6, FlagKind::EntropySpike, Origin::Auto),
        flag(10..40, FlagKind::Repetition, Origin::Auto),
        flag(12..13, FlagKind::EntropySpike, Origin::Auto),
        flag(20..21, FlagKind::EntropySpike, Origin::User),
        flag(30..31, FlagKind::EntropySpike, Origin::Auto),
        flag(40..41, FlagKind::EntropySpike, Origin::Auto),
        flag(50..60, FlagKind::Repetition, Origin::Auto),
    ];
    let out = fold_spikes(flags);
    let spans: Vec<(u32, u32)> = out.iter().map(|f| (f.start, f.end)).collect();
    assert_eq!(spans, vec![(5, 6), (10, 40), (20, 21), (40, 41), (50, 60)]);
    assert_eq!(out[1].detail, "d (2 entropy spikes folded in)");
    assert_eq!(out[4].detail, "d");
}
