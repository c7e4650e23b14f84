use super::*;
use crate::analysis::test_util::{run, run_steps, tokens, CLEAN_ANSWER, CLEAN_THINK};
use crate::trace::{LayerRoute, Phase};

const BUDGET: Duration = Duration::from_secs(5);

fn named(name: &str) -> Run {
    let mut r = run();
    r.model.name = name.into();
    r.model.arch = "qwen3".into();
    r
}

/// The ops must tile both runs, in order.
fn assert_tiles(c: &Comparison, na: usize, nb: usize) {
    let (mut ea, mut eb) = (0, 0);
    for op in &c.ops {
        assert_eq!((op.a().start, op.b().start), (ea, eb), "{:?}", c.ops);
        ea = op.a().end;
        eb = op.b().end;
    }
    assert_eq!((ea, eb), (na, nb), "{:?}", c.ops);
}

#[test]
fn identical_runs_agree_everywhere() {
    let s = run_steps(Some(CLEAN_THINK), CLEAN_ANSWER);
    let r = named("m");
    let c = compare((&r, &s), (&r, &s), BUDGET);
    assert_eq!(c.by, AlignBy::Tokens);
    assert_eq!(c.ops, vec![AlignOp::Equal { a: 0..s.len(), b: 0..s.len() }]);
    assert!(c.first_divergence.is_none());
    assert!(c.steps.iter().all(|p| p.same && p.a == p.b));
    assert_eq!(c.answers, (Some("55".into()), Some("55".into())));
    assert_eq!(c.answers_agree, Some(true));
    assert_eq!(c.stats.0, c.stats.1);
    assert_eq!(c.equal_steps(), (s.len(), s.len()));
}

#[test]
fn a_single_token_fork_is_the_first_divergence() {
    let a = run_steps(Some(CLEAN_THINK), CLEAN_ANSWER);
    let mut b = a.clone();
    let at = a.iter().position(|s| s.text == " eleven").unwrap();
    b[at].token_id = 7;
    b[at].text = " twelve".into();
    b[at].top = vec![TopToken { id: 7, text: " twelve".into(), logprob: -0.2 }];
    let r = named("m");
    let c = compare((&r, &a), (&r, &b), BUDGET);
    assert_tiles(&c, a.len(), b.len());
    let d = c.first_divergence.clone().unwrap();
    assert_eq!((d.a_step, d.b_step), (at, at));
    assert_eq!(d.a.unwrap().text, " eleven");
    let db = d.b.unwrap();
    assert_eq!((db.text.as_str(), db.top.len()), (" twelve", 1));
    assert_eq!(c.ops.len(), 3, "{:?}", c.ops);
    assert_eq!(c.ops[1], AlignOp::Replace { a: at..at + 1, b: at..at + 1 });
    // One reasoning step differs, the others pair up as the same.
    assert_eq!(c.steps.iter().filter(|p| !p.same).count(), 1, "{:?}", c.steps);
    assert_eq!(c.answers_agree, Some(true));
}

#[test]
fn runs_without_token_ids_align_by_words() {
    let mut a = run_steps(Some(CLEAN_THINK), CLEAN_ANSWER);
    let at = a.iter().position(|s| s.text == " eleven").unwrap();
    a.iter_mut().for_each(|s| s.token_id = crate::trace::UNKNOWN_TOKEN);
    let mut b = a.clone();
    b[at].text = " twelve".into();
    let r = named("m");
    let c = compare((&r, &a), (&r, &b), BUDGET);
    assert_eq!(c.by, AlignBy::Words, "unknown ids are all equal: they cannot align tokens");
    assert_tiles(&c, a.len(), b.len());
    let d = c.first_divergence.clone().expect("the changed word diverges");
    assert_eq!(d.a.unwrap().text, " eleven");
}

#[test]
fn prefix_and_suffix_changes() {
    let a = run_steps(Some(CLEAN_THINK), CLEAN_ANSWER);
    let r = named("m");
    // B has three more tokens at the start.
    let mut b = run_steps(Some("Hmm, let us see."), "");
    b.truncate(b.len() - 1); // without its `</think>`
    b.remove(0); // and its `<think>`
    let extra = b.len();
    b.extend(a.iter().cloned());
    let c = compare((&r, &a), (&r, &b), BUDGET);
    assert_tiles(&c, a.len(), b.len());
    assert_eq!(c.ops[0], AlignOp::Insert { a_at: 0, b: 0..extra });
    assert_eq!(c.first_divergence.as_ref().map(|d| (d.a_step, d.b_step)), Some((0, 0)));
    // B stops early: the divergence is where A goes on, and B has no choice there.
    let short = &a[..a.len() - 4];
    let c = compare((&r, &a), (&r, short), BUDGET);
    assert_eq!(c.ops.last(), Some(&AlignOp::Delete { a: short.len()..a.len(), b_at: short.len() }));
    let d = c.first_divergence.unwrap();
    assert_eq!(d.a_step, short.len());
    assert!(d.b.is_none() && d.a.is_some());
    assert_eq!(c.answers_agree, None); // the short run never states its answer
}

#[test]
fn runs_of_different_tokenizers_align_by_words() {
    let a = run_steps(Some(CLEAN_THINK), CLEAN_ANSWER);
    // The same text cut into single characters, with one word changed.
    let text = format!("<think>{CLEAN_THINK}").replace("Both methods agree", "Both methods differ");
    let b: Vec<Step> = text
        .chars()
        .enumerate()
        .map(|(i, ch)| Step {
            index: i as u32,
            token_id: ch as u32,
            text: ch.to_string(),
            logprob: -0.1,
            entropy: 0.2,
            phase: Phase::Think,
            t_us: 0,
            top: Vec::new(),
        })
        .collect();
    let c = compare((&named("m1"), &a), (&named("m2"), &b), BUDGET);
    assert_eq!(c.by, AlignBy::Words);
    assert_tiles(&c, a.len(), b.len());
    let d = c.first_divergence.clone().unwrap();
    assert_eq!(a[d.a_step].text, " agree");
    assert_eq!(b[d.b_step].text, "d", "{:?}", &b[d.b_step - 3..d.b_step + 3]);
    assert!(c.equal_steps().0 > a.len() / 2);
    assert!(tokens("a b").len() == 2);
}

#[test]
fn very_different_runs_return_within_a_tiny_budget_with_a_valid_alignment() {
    let mk = |seed: u32, n: usize| -> Vec<Step> {
        let mut x = seed;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                Step {
                    index: i as u32,
                    token_id: x >> 20,
                    text: format!(" w{}", x >> 28),
                    logprob: -0.1,
                    entropy: 0.2,
                    phase: Phase::Answer,
                    t_us: 0,
                    top: Vec::new(),
                }
            })
            .collect()
    };
    let (a, b) = (mk(1, 5000), mk(2, 5000));
    let r = named("m");
    let c = compare((&r, &a), (&r, &b), Duration::from_millis(1));
    assert_tiles(&c, a.len(), b.len());
    assert_eq!(c.first_divergence.map(|d| (d.a_step, d.b_step)), Some((0, 0)));
}

#[test]
fn moe_runs_differ_per_layer() {
    let s = run_steps(None, "a b");
    let route = |e: u16| Routing {
        layers: vec![LayerRoute { layer: 2, experts: vec![e], weights: None, router: None }],
    };
    let ra = vec![(0, route(0)), (1, route(1))];
    let rb = vec![(0, route(0)), (1, route(0))];
    let r = named("m");
    let c = compare_with(
        Side { run: &r, steps: &s, routing: &ra },
        Side { run: &r, steps: &s, routing: &rb },
        &AnalysisConfig::default(),
        BUDGET,
    );
    let moe = c.moe.unwrap();
    assert_eq!(moe.len(), 1);
    assert_eq!(
        (moe[0].layer, moe[0].a.clone(), moe[0].b.clone()),
        (2, vec![0.5, 0.5], vec![1.0, 0.0])
    );
    assert!((moe[0].distance - 0.5).abs() < 1e-12);
}
