use super::*;
use crate::analysis::test_util::{run, run_steps, tokens, CLEAN_ANSWER, CLEAN_THINK};
use crate::trace::{LayerRoute, Phase};
use steps::StepFlag;

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
    assert!(c.steps.iter().all(|p| p.same() && p.a == p.b));
    let value = |a: &Option<Answer>| a.as_ref().map(|x| x.value.clone());
    assert_eq!((value(&c.answers.0), value(&c.answers.1)), (Some("55".into()), Some("55".into())));
    assert_eq!(c.relation, Relation::Unrelated);
    assert!(c.setup.same());
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
    assert_eq!(c.steps.iter().filter(|p| !p.same()).count(), 1, "{:?}", c.steps);
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
    // The short run stops before its boxed answer: its answer is its last (cut) sentence.
    let short_answer = c.answers.1.clone().unwrap();
    assert_eq!(short_answer.kind, crate::analysis::answer::AnswerKind::Sentence);
    assert_eq!(c.answers_agree, Some(false));
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

/// Steps of a parent and of its fork at `k`: the fork takes the parent's 6th alternative
/// (p 0.5%) at `k`, then goes on with the parent's text from `k + 2` — a token diff would pair
/// the forced token with the parent's next one.
fn parent_and_fork(k: usize) -> (Run, Vec<Step>, Run, Vec<Step>) {
    let a = run_steps(Some(CLEAN_THINK), CLEAN_ANSWER);
    let mut b: Vec<Step> = a[..k].to_vec();
    let mut forced = a[k + 1].clone();
    forced.index = k as u32;
    forced.logprob = 0.005f32.ln();
    forced.top = (0..8u32)
        .map(|r| TopToken {
            id: if r == 5 { forced.token_id } else { 10_000 + r },
            text: format!("t{r}"),
            logprob: if r == 5 { 0.005f32.ln() } else { -0.1 - r as f32 },
        })
        .collect();
    b.push(forced);
    b.extend(a[k + 2..].iter().cloned());
    for (i, s) in b.iter_mut().enumerate() {
        s.index = i as u32;
    }
    let pa = named("m");
    let mut pb = named("m");
    pb.id = crate::trace::RunId(2);
    pb.parent = Some((pa.id, k as u32));
    pb.label = Some(format!("fork@{k}"));
    (pa, a, pb, b)
}

#[test]
fn a_fork_diverges_at_its_fork_step_with_the_forced_token() {
    let k = 30;
    let (pa, a, pb, b) = parent_and_fork(k);
    // What a plain token diff makes of it: the forced token paired with the parent's next.
    let mut unrelated = pb.clone();
    unrelated.parent = None;
    let plain = compare((&pa, &a), (&unrelated, &b), BUDGET);
    let d = plain.first_divergence.unwrap();
    assert!(!d.forced && plain.relation == Relation::Unrelated);
    let c = compare((&pa, &a), (&pb, &b), BUDGET);
    assert_eq!(c.relation, Relation::Fork { at: k, child_is_b: true });
    assert_tiles(&c, a.len(), b.len());
    assert_eq!(c.ops[0], AlignOp::Equal { a: 0..k, b: 0..k });
    assert_eq!(c.ops[1], AlignOp::Replace { a: k..k + 1, b: k..k + 1 });
    let d = c.first_divergence.clone().unwrap();
    assert_eq!((d.a_step, d.b_step, d.forced), (k, k, true));
    assert_eq!(d.b.as_ref().unwrap().text, b[k].text);
    assert_eq!(d.b.as_ref().unwrap().rank, Some(6));
    assert_eq!(forced_label(&b[k]), "forced · rank 6 · p 0.5%");
    // Seen from the child's side, the parent is B.
    let c = compare((&pb, &b), (&pa, &a), BUDGET);
    assert_eq!(c.relation, Relation::Fork { at: k, child_is_b: false });
    let d = c.first_divergence.unwrap();
    assert_eq!((d.a_step, d.b_step, d.forced), (k, k, true));
    assert!(c.setup.same(), "{:?}", c.setup);
    assert_eq!(c.answers_agree, Some(true));
}

#[test]
fn a_resampled_child_aligns_by_position_up_to_its_step_and_is_not_forced() {
    let k = 20;
    let a = run_steps(Some(CLEAN_THINK), CLEAN_ANSWER);
    let mut b = a.clone();
    // The resampled step drew the parent's token again; it parts three tokens later.
    b[k + 3].token_id = 77;
    b[k + 3].text = " seven".into();
    let pa = named("m");
    let mut pb = named("m");
    pb.id = crate::trace::RunId(2);
    pb.parent = Some((pa.id, k as u32));
    pb.label = Some(format!("resample@{k}/1"));
    let c = compare((&pa, &a), (&pb, &b), BUDGET);
    assert_eq!(c.relation, Relation::Resample { at: k, child_is_b: true });
    assert_tiles(&c, a.len(), b.len());
    let d = c.first_divergence.unwrap();
    assert_eq!((d.a_step, d.b_step, d.forced), (k + 3, k + 3, false));
}

#[test]
fn an_edited_prompt_differs_before_the_first_token() {
    let s = run_steps(Some(CLEAN_THINK), CLEAN_ANSWER);
    let mut pa = named("m");
    pa.messages = vec![crate::trace::Message::new("user", "Sum the first ten integers.")];
    let mut pb = pa.clone();
    pb.id = crate::trace::RunId(2);
    pb.parent = Some((pa.id, 0));
    pb.label = Some("edit".into());
    pb.messages[0].content = "Sum the first ten positive integers. Think first.".into();
    pb.sampler.temperature = 0.6;
    assert_eq!(pb.forced_step(), None, "an edit replays and forces nothing");
    let c = compare((&pa, &s), (&pb, &s), BUDGET);
    assert_eq!(c.relation, Relation::Edit { child_is_b: true });
    assert!(c.setup.prompt_differs);
    assert_eq!(c.setup.settings_differ(), vec!["temperature"]);
    let added: Vec<&str> =
        c.setup.prompt.iter().filter(|p| p.0 == Change::Added).map(|p| p.1.as_str()).collect();
    let words = added.concat();
    assert_eq!(words.split_whitespace().collect::<Vec<_>>(), ["positive", "Think", "first."]);
    assert!(c.setup.prompt.iter().all(|p| p.0 != Change::Removed), "{:?}", c.setup.prompt);
    assert!(c.first_divergence.is_none(), "the same output: no divergence");
}

/// Two chains of thought of one problem: B backtracks and switches to Chinese for a while.
const TRACE_A: &str = "The farmer starts with 17 sheep. All but 9 run away, which means 9 \
sheep stay with him.\n\n\
So the number of sheep left is the 9 that did not run away.\n\n\
Let me double check the wording: all but 9 means every sheep except 9, so 9 remain.";
const TRACE_B: &str = "The farmer starts with 17 sheep and 9 of them run away, so he has 17 \
minus 9, which is 8 sheep left.\n\n\
Wait, the problem says all but 9 run away, not 9 run away. That means 9 sheep stay with \
the farmer.\n\n\
等等，我再检查一下题目。除了九只以外的羊都跑了，所以剩下九只羊。这个理解是正确的，答案是九只。\n\n\
Let me double check the wording: all but 9 means every sheep except 9, so 9 remain.";

#[test]
fn the_step_map_of_two_different_traces_of_one_problem() {
    let a = run_steps(Some(TRACE_A), "The farmer has 9 sheep left.");
    let b = run_steps(Some(TRACE_B), "The farmer has \\boxed{9} sheep left.");
    let mut rb = named("m");
    rb.id = crate::trace::RunId(2);
    let c = compare((&named("m"), &a), (&rb, &b), BUDGET);
    let text = |s: &[Step], st: &StepInfo| -> String {
        s[st.span.clone()].iter().map(|x| x.text.as_str()).collect()
    };
    let (ia, ib) = &c.step_info;
    let rows: Vec<(Option<String>, Option<String>, f64)> = c
        .steps
        .iter()
        .map(|m| (m.a.map(|i| text(&a, &ia[i])), m.b.map(|i| text(&b, &ib[i])), m.similarity))
        .collect();
    let find_b = |needle: &str| {
        c.steps
            .iter()
            .find(|m| m.b.is_some_and(|i| text(&b, &ib[i]).contains(needle)))
            .copied()
            .unwrap_or_else(|| panic!("no step of b with {needle:?}: {rows:#?}"))
    };
    // The opening steps match though their words differ; the closing check is the same.
    let open = find_b("starts with 17");
    assert!(open.a.is_some() && open.similarity > 0.2 && open.similarity < 1.0, "{rows:#?}");
    let check = find_b("double check");
    assert!(check.same(), "{rows:#?}");
    // B's backtrack and its Chinese step are B's alone, and flagged as such.
    let wait = find_b("Wait");
    let chinese = find_b("等等");
    assert!(chinese.a.is_none(), "{rows:#?}");
    let flags = |m: StepMatch| ib[m.b.unwrap()].flags.clone();
    assert!(flags(wait).contains(&StepFlag::Backtrack), "{:?}", flags(wait));
    assert!(flags(chinese).contains(&StepFlag::LanguageSwitch), "{:?}", flags(chinese));
    assert!(ia.iter().all(|s| !s.flags.contains(&StepFlag::Backtrack)));
    assert!(ia.iter().chain(ib.iter()).all(|s| s.confidence.is_some_and(|p| p > 0.5 && p <= 1.0)));
    // Every step of each run appears once, in order.
    let order = |side: fn(&StepMatch) -> Option<usize>| -> Vec<usize> {
        c.steps.iter().filter_map(side).collect()
    };
    assert_eq!(order(|m| m.a), (0..ia.len()).collect::<Vec<_>>());
    assert_eq!(order(|m| m.b), (0..ib.len()).collect::<Vec<_>>());
    // Both answers found and equal by value.
    let value = |x: &Option<Answer>| x.as_ref().map(|v| (v.value.clone(), v.number));
    assert_eq!(value(&c.answers.0), Some(("9".into(), Some(9.0))));
    assert_eq!(value(&c.answers.1), Some(("9".into(), Some(9.0))));
    assert_eq!(c.answers_agree, Some(true));
}

#[test]
fn a_scored_run_is_neither_a_fork_nor_an_edit() {
    let s = run_steps(Some(CLEAN_THINK), CLEAN_ANSWER);
    let pa = named("m");
    let mut pb = pa.clone();
    pb.id = crate::trace::RunId(2);
    pb.parent = Some((pa.id, 0));
    pb.source = crate::trace::RunSource::Scored(crate::record::Scored {
        tokens: crate::record::ScoredTokens::ParentIds,
        parent_steps: Vec::new(),
    });
    assert_eq!(pb.forced_step(), None, "scoring forces every token and marks none");
    let c = compare((&pa, &s), (&pb, &s), BUDGET);
    assert_eq!(c.relation, Relation::Scored { child_is_b: true });
    assert_eq!(c.relation.describe(), "B scores A's text under a local model");
    assert!(c.first_divergence.is_none());
    let back = compare((&pb, &s), (&pa, &s), BUDGET);
    assert_eq!(back.relation, Relation::Scored { child_is_b: false });
}
