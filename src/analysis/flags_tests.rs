use super::*;
use crate::analysis::config::AnalysisConfig;
use crate::analysis::segment::segment;
use crate::analysis::test_util::{run_steps, CLEAN_ANSWER, CLEAN_THINK};

fn cfg() -> AnalysisConfig {
    AnalysisConfig::defaults().unwrap()
}

fn clean() -> Vec<Step> {
    run_steps(Some(CLEAN_THINK), CLEAN_ANSWER)
}

#[test]
fn clean_text_has_no_token_flags() {
    let s = clean();
    let c = cfg();
    assert!(low_confidence(&s, &c.confidence).is_empty());
    assert!(entropy_spikes(&s, &c.entropy).is_empty());
    assert!(repetition(&s, &c.repetition).is_empty());
    assert!(backtracks(&StepText::new(&s), &segment(&s)).is_empty());
}

#[test]
fn unlikely_tokens_cluster_into_spans() {
    let mut s = clean();
    s[20].logprob = -3.0;
    s[22].logprob = -2.6;
    s[40].logprob = -3.0; // alone and not severe: ignored
    s[60].logprob = -6.0; // alone but severe
    let f = low_confidence(&s, &cfg().confidence);
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!((f[0].start, f[0].end, f[0].severity), (20, 23, Severity::Info));
    assert!(f[0].detail.starts_with("2 unlikely tokens, lowest p=0.050"), "{}", f[0].detail);
    assert_eq!((f[1].start, f[1].end, f[1].severity), (60, 61, Severity::Warn));
    s[61].logprob = f32::NAN;
    assert_eq!(low_confidence(&s, &cfg().confidence).len(), 2);
}

#[test]
fn entropy_spikes_are_relative_to_the_rolling_level() {
    let mut s = clean();
    s[50].entropy = 4.0;
    s[51].entropy = 3.5;
    let f = entropy_spikes(&s, &cfg().entropy);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].start, f[0].end), (50, 52));
    assert!(f[0].detail.starts_with("entropy 4.00 nats"), "{}", f[0].detail);
    // A uniformly high level is no spike, nor is a jump before the warm-up.
    let mut high = clean();
    high.iter_mut().for_each(|x| x.entropy = 3.0);
    high[3].entropy = 9.0;
    assert!(entropy_spikes(&high, &cfg().entropy).is_empty());
}

#[test]
fn a_phrase_looping_to_the_end_is_an_error() {
    let think = format!("{} {}", CLEAN_THINK, "So the answer is 55. ".repeat(6));
    let s = run_steps(Some(&think), "");
    // Drop the closing tag and the answer: the loop runs to the end of the output.
    let s: Vec<Step> = s.into_iter().take_while(|x| x.text != "</think>").collect();
    let f = repetition(&s, &cfg().repetition);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].severity, Severity::Error);
    // The output ends one token into a seventh repetition.
    assert_eq!(f[0].end as usize, s.len() - 1);
    assert!(f[0].detail.starts_with("6-token phrase"), "{}", f[0].detail);
    assert!(f[0].detail.ends_with("repeated 6× until the output ends"), "{}", f[0].detail);
}

#[test]
fn a_short_stutter_is_no_loop_and_a_mid_text_loop_is_a_warning() {
    let s = run_steps(Some("the the the answer"), "ok");
    assert!(repetition(&s, &cfg().repetition).is_empty());
    let think = format!("Start. {}Then we stop and answer.", "check the sum again, ".repeat(4));
    let s = run_steps(Some(&think), "ok");
    let f = repetition(&s, &cfg().repetition);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].severity, Severity::Warn);
    assert!(f[0].detail.contains("'check the sum again,' repeated 4×"), "{}", f[0].detail);
}

#[test]
fn backtracks_are_counted_and_located() {
    let think = "The sum is 54.\n\nWait, I forgot the last pair. Actually it is 55. \
I wait for nothing here. Hmm, I made a mistake in the first step.\n\n等等，这不对。";
    let s = run_steps(Some(think), "55");
    let seg = segment(&s);
    let f = backtracks(&StepText::new(&s), &seg);
    let what: Vec<&str> = f.iter().map(|x| x.detail.as_str()).collect();
    assert_eq!(
        what,
        vec![
            "backtrack 'Wait' (1 of 4)",
            "backtrack 'Actually' (2 of 4)",
            "backtrack 'I made a mistake' (3 of 4)",
            "backtrack '等等' (4 of 4)"
        ]
    );
    let text = StepText::new(&s);
    let first = &text.text[text.bytes_of(f[0].start as usize..f[0].end as usize)];
    assert_eq!(first.trim(), "Wait, I forgot the last pair.");
}

#[test]
fn steps_without_token_ids_are_compared_by_text() {
    // A server run: every id unknown. Clean text is no loop; a looping phrase still is.
    let unknown = |mut s: Vec<Step>| {
        s.iter_mut().for_each(|x| x.token_id = crate::trace::UNKNOWN_TOKEN);
        s
    };
    assert!(repetition(&unknown(clean()), &cfg().repetition).is_empty());
    let think = format!("{} {}", CLEAN_THINK, "So the answer is 55. ".repeat(6));
    let f = repetition(&unknown(run_steps(Some(&think), "")), &cfg().repetition);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].detail.starts_with("6-token phrase"), "{}", f[0].detail);
}
