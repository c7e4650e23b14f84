//! The terminal UI on ratatui's TestBackend: insta snapshots of every screen and overlay at
//! 120×40 and a small size, built from the sample sessions (plus a hand-made MoE run and a
//! run of escape-sequence payloads), and the movement / search / flag actions behind them.

use thinkdbg::trace::{
    FlagKind, LayerRoute, Phase, Routing, Run, RunId, SamplerSpec, SessionId, Step, TopToken,
};
use thinkdbg::tui::components::viewer::ColourBy;
use thinkdbg::tui::components::Screen;
use thinkdbg::tui::run_view::RunView;
use thinkdbg::tui::{Action, App};

use crate::common::tui::{app_with, auto_flag, render, samples_app, screen_text, snap, BIG, SMALL};

/// A store holding the samples, with flags on the first run so the Flags screen has some.
fn sample_app() -> (tempfile::TempDir, App) {
    samples_app(
        &[
            auto_flag(40, 41, FlagKind::LowConfidence, "p 0.21"),
            auto_flag(90, 92, FlagKind::EntropySpike, "H 3.1 nats"),
            auto_flag(100, 101, FlagKind::LowConfidence, "p 0.18"),
        ],
        &[],
    )
}

#[test]
fn sessions_screen() {
    let (_d, mut app) = sample_app();
    assert_eq!(app.sessions.runs.len(), 4);
    snap!(&mut app, "sessions");
}

#[test]
fn trace_screen_moves_and_colours() {
    let (_d, mut app) = sample_app();
    app.update(Action::Down);
    app.update(Action::Down);
    app.update(Action::Open);
    assert_eq!(app.screen, Screen::Trace);
    for _ in 0..5 {
        app.update(Action::NextToken);
    }
    assert_eq!(app.viewer.cursor, 5);
    snap!(&mut app, "trace_code");
    app.update(Action::LineDown);
    app.update(Action::LineDown);
    let v = app.viewer.view.clone().unwrap();
    assert_eq!(v.line_of(app.viewer.cursor), 3, "two lines down from line 1");
    app.update(Action::End);
    assert_eq!(app.viewer.cursor, v.len() - 1);
    app.update(Action::Start);
    assert_eq!(app.viewer.cursor, 0);
    app.update(Action::CycleColour);
    assert_eq!(app.viewer.colour, ColourBy::Entropy);
    app.update(Action::CycleColour);
    assert_eq!(app.viewer.colour, ColourBy::Syntax, "a dense run skips expert colouring");
    app.update(Action::NextLowConfidence);
    let c = app.viewer.cursor;
    assert!(
        app.viewer.view.as_ref().unwrap().steps[c].logprob < thinkdbg::tui::run_view::LOW_LOGPROB
    );
    assert!(app.viewer.view.as_ref().unwrap().steps[..c].iter().all(|s| s.logprob >= -1.2));
    snap!(&mut app, "trace_syntax_low");
}

#[test]
fn word_sentence_and_step_movement_follow_the_analysis_segments() {
    let (_d, mut app) = sample_app();
    app.update(Action::Open);
    let seg = thinkdbg::analysis::segment(&app.viewer.view.as_ref().unwrap().steps);
    app.update(Action::NextWord);
    assert_eq!(app.viewer.cursor, seg.words[1].start);
    app.update(Action::NextWord);
    assert_eq!(app.viewer.cursor, seg.words[2].start);
    app.update(Action::PrevWord);
    assert_eq!(app.viewer.cursor, seg.words[1].start);
    app.update(Action::NextSentence);
    assert_eq!(app.viewer.cursor, seg.sentences[1].start);
    app.update(Action::Start);
    app.update(Action::NextStep);
    assert_eq!(app.viewer.cursor, seg.steps[1].span.start);
    app.update(Action::PrevStep);
    assert_eq!(app.viewer.cursor, seg.steps[0].span.start);
    app.update(Action::End);
    app.update(Action::NextStep);
    assert_eq!(app.message, "no next reasoning step");
}

#[test]
fn search_jumps_to_matches_and_filter_narrows_sessions() {
    let (_d, mut app) = sample_app();
    app.update(Action::Search);
    for c in "python".chars() {
        app.update(Action::Input(c));
    }
    assert_eq!(app.sessions.visible.len(), 1, "only the prime run's text mentions python");
    snap!(&mut app, "sessions_filter");
    app.update(Action::InputSubmit);
    app.update(Action::Open);
    app.update(Action::Search);
    for c in "return".chars() {
        app.update(Action::Input(c));
    }
    app.update(Action::InputSubmit);
    assert_eq!(app.viewer.matches.len(), 5, "four `return`s and one `returns`");
    let v = app.viewer.view.clone().unwrap();
    let first = v.step_at_byte(app.viewer.matches[0].0);
    assert_eq!(app.viewer.cursor, first);
    app.update(Action::SearchNext);
    assert_eq!(app.viewer.cursor, v.step_at_byte(app.viewer.matches[1].0));
    app.update(Action::SearchPrev);
    app.update(Action::SearchPrev);
    assert_eq!(app.viewer.cursor, v.step_at_byte(app.viewer.matches[4].0), "wraps around");
    snap!(&mut app, "trace_search");
}

#[test]
fn flags_screen_groups_by_kind_and_jumps() {
    let (_d, mut app) = sample_app();
    app.update(Action::ScreenFlags);
    snap!(&mut app, "flags");
    assert_eq!(app.viewer.flag_order(), vec![0, 2, 1], "low-confidence flags together");
    app.update(Action::Down);
    app.update(Action::Open);
    assert_eq!(app.screen, Screen::Trace);
    assert_eq!(app.viewer.cursor, 100);
    app.update(Action::PrevFlag);
    assert_eq!(app.viewer.cursor, 90);
    app.update(Action::NextFlag);
    app.update(Action::NextFlag);
    assert_eq!(app.viewer.cursor, 100, "no flag after the last one");
    assert_eq!(app.message, "no more flags");
}

#[test]
fn help_overlay_lists_the_keymap() {
    let (_d, mut app) = sample_app();
    app.update(Action::Open);
    app.update(Action::Help);
    let text = screen_text(&mut app, BIG);
    assert!(text.contains("Next reasoning step"), "{text}");
    snap!(&mut app, "help_trace");
    // Its last line points to the user's keymap, not to a file of the source tree (a tall
    // terminal shows it all).
    let text = screen_text(&mut app, (120, 120));
    assert!(text.contains("the config directory (`thinkdbg --help` says where)"), "{text}");
    assert!(!text.contains("assets/"), "{text}");
    app.update(Action::Back);
    assert!(!app.help.open);
}

#[test]
fn too_small_terminal_shows_a_message() {
    let (_d, mut app) = sample_app();
    let term = render(&mut app, (40, 10));
    insta::assert_snapshot!("too_small", term.backend());
}

fn step(i: u32, text: &str, phase: Phase, logprob: f32) -> Step {
    Step {
        index: i,
        token_id: 1000 + i,
        text: text.into(),
        logprob,
        entropy: -logprob * 1.5,
        phase,
        t_us: u64::from(i) * 20_000,
        top: vec![
            TopToken { id: 1000 + i, text: text.into(), logprob },
            TopToken { id: 7, text: " other".into(), logprob: logprob - 1.0 },
        ],
    }
}

fn run(id: u64) -> Run {
    let mut r = Run::new_recording(RunId(id), SessionId(1), SamplerSpec::default());
    r.model.name = "test-moe".into();
    r.created_at = 1_795_000_000_000;
    r
}

#[test]
fn escape_payloads_are_shown_as_symbols() {
    let payloads = [
        "<think>",
        "csi:\u{1b}[31mred\u{1b}[0m ",
        "osc52:\u{1b}]52;c;cm0gLXJmIH4=\u{7} ",
        "osc8:\u{1b}]8;;http://evil.example\u{1b}\\click\u{1b}]8;;\u{1b}\\ ",
        "title:\u{1b}]0;PWNED\u{7} ",
        "bel:\u{7} ",
        "c1:\u{9b}31m ",
        "rlo:\u{202e}fdp.exe ",
        "tab:\u{9}x del:\u{7f}\n",
        "</think>",
        "answer \u{1b}[2J done",
    ];
    let steps: Vec<Step> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let phase = if i < 10 { Phase::Think } else { Phase::Answer };
            step(i as u32, p, phase, -0.5)
        })
        .collect();
    let mut app = app_with(None);
    app.set_view(RunView::new(run(9), steps, Vec::new(), Vec::new()));
    app.update(Action::ScreenTrace);
    app.update(Action::NextToken);
    let term = render(&mut app, BIG);
    for cell in term.backend().buffer().content() {
        assert!(
            !cell
                .symbol()
                .chars()
                .any(|c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
            "raw control {:?} reached a cell",
            cell.symbol()
        );
    }
    let text = term.backend().to_string();
    assert!(text.contains("␛]52;c;cm0gLXJmIH4=␇"), "{text}");
    assert!(text.contains("⟨U+202E⟩fdp.exe"), "{text}");
    assert!(text.contains("⟨U+009B⟩31m"), "{text}");
    snap!(&mut app, "trace_escapes");
}

/// A hand-built MoE run: 4 layers, 4 of 16 experts per token with gate weights.
fn moe_view() -> RunView {
    let words = ["The", " expert", " grid", " shows", " routing", ".", "\n", "Next", " line", "."];
    let mut steps = Vec::new();
    let mut routing = Vec::new();
    for (i, w) in words.iter().cycle().take(40).enumerate() {
        let i = i as u32;
        steps.push(step(
            i,
            w,
            if i < 20 { Phase::Think } else { Phase::Answer },
            -0.1 * (i % 7) as f32,
        ));
        let layers = (0..4u16)
            .map(|l| {
                let experts: Vec<u16> =
                    (0..4).map(|k| ((i as u16) * 3 + l * 5 + k * 4) % 16).collect();
                LayerRoute {
                    layer: l,
                    experts,
                    weights: Some(vec![0.55, 0.25, 0.15, 0.05]),
                    router: None,
                }
            })
            .collect();
        routing.push((i, Routing { layers }));
    }
    let mut r = run(11);
    r.model.experts = 16;
    r.model.experts_per_token = 4;
    RunView::new(r, steps, Vec::new(), routing)
}

#[test]
fn routing_screen_for_a_moe_run() {
    let mut app = app_with(None);
    app.set_view(moe_view());
    app.update(Action::ScreenRouting);
    for _ in 0..3 {
        app.update(Action::NextToken);
    }
    app.update(Action::NextLayer);
    assert_eq!(app.viewer.layer, 1);
    snap!(&mut app, "routing");
    app.update(Action::ScreenTrace);
    app.update(Action::CycleColour);
    app.update(Action::CycleColour);
    assert_eq!(app.viewer.colour, ColourBy::Expert);
    snap!(&mut app, "trace_expert");
}

#[test]
fn routing_screen_for_a_dense_run_says_so() {
    let (_d, mut app) = sample_app();
    app.update(Action::ScreenRouting);
    assert!(screen_text(&mut app, BIG).contains("no expert routing"));
}

#[test]
fn live_run_follows_new_tokens_only_at_the_end() {
    use thinkdbg::record::Event;
    use thinkdbg::tui::jobs::JobEvent;
    let mut app = app_with(None);
    let view = RunView::new(run(5), Vec::new(), Vec::new(), Vec::new());
    app.set_view(view);
    app.viewer.live = Some(RunId(5));
    app.update(Action::ScreenTrace);
    let ev = |i: u32| {
        Action::Job(Box::new(JobEvent {
            run: Some(RunId(5)),
            event: Event::Step { step: step(i, " tok", Phase::Answer, -0.2), routing: None },
        }))
    };
    for i in 0..5 {
        app.update(ev(i));
    }
    assert_eq!(app.viewer.cursor, 4, "the cursor follows while at the end");
    app.update(Action::PrevToken);
    app.update(Action::PrevToken);
    app.update(ev(5));
    assert_eq!(app.viewer.cursor, 2, "the cursor stays where the user put it");
    app.update(Action::End);
    app.update(ev(6));
    assert_eq!(app.viewer.cursor, 6);
    assert_eq!(app.viewer.view.as_ref().unwrap().len(), 7);
    let text = screen_text(&mut app, SMALL);
    assert!(text.contains("● live"), "{text}");
}

/// A run opened without a current analysis (imported, or recorded in the UI) is analysed on
/// opening: the result is stored beside it and its flags are the ones shown.
#[test]
fn opening_an_unanalysed_run_analyses_it() {
    let (_d, mut app) = sample_app();
    let store = app.store.clone().unwrap();
    let first = app.viewer.view.as_ref().unwrap().run.id;
    app.update(Action::Down);
    let second = app.viewer.view.as_ref().unwrap().run.id;
    assert_ne!(first, second);
    let stored: Option<thinkdbg::analysis::StoredAnalysis> = store.analysis(second).unwrap();
    let stored = stored.expect("the analysis is stored when the run is opened");
    assert_eq!(stored.steps, store.step_count(second));
    assert_eq!(app.viewer.view.as_ref().unwrap().flags, store.flags(second).unwrap());
}
