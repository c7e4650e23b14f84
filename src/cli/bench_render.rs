//! `thinkdbg bench render`: frame time and keypress-to-frame time of the trace screen on a
//! synthetic run (100k tokens by default) drawn into ratatui's TestBackend, the memory the
//! loaded run takes, and the frame time of the compare screen on two such runs that differ
//! every 5,000 tokens (with the time to build the comparison).

use std::time::Instant;

use anyhow::Result;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;

use crate::trace::{
    Flag, FlagKind, Origin, Phase, Run, RunId, SamplerSpec, SessionId, Severity, Step, TopToken,
};
use crate::tui::components::compare::CompareState;
use crate::tui::components::Screen;
use crate::tui::keymap::Keymap;
use crate::tui::run_view::RunView;
use crate::tui::theme::ThemeSet;
use crate::tui::{ui, Action, App, Dispatcher};

const WORDS: &[&str] = &[
    " the",
    " number",
    " of",
    " sheep",
    " is",
    " seventeen",
    ",",
    " so",
    " we",
    " subtract",
    " nine",
    ".",
    " Wait",
    ",",
    " let",
    " me",
    " check",
    " again",
    ":",
    " 17",
    " -",
    " 9",
    " =",
    " 8",
    ".",
];

/// A synthetic run; `forked` changes every 5,000th token (a second run to compare).
fn synthetic(steps: u32, forked: bool) -> RunView {
    let mut out = Vec::with_capacity(steps as usize);
    for i in 0..steps {
        let mut w = WORDS[(i as usize * 7 + i as usize / 13) % WORDS.len()];
        if forked && i % 5000 == 2500 {
            w = " fork";
        }
        let text = if i % 97 == 96 {
            "\n\n".to_string()
        } else if i % 23 == 22 {
            format!("{w}\n")
        } else {
            w.to_string()
        };
        let lp = -((i % 11) as f32) * 0.3;
        out.push(Step {
            index: i,
            token_id: if forked && i % 5000 == 2500 { 49_999 } else { i % 49_152 },
            text,
            logprob: lp,
            entropy: ((i % 17) as f32) * 0.25,
            phase: if i < steps * 4 / 5 { Phase::Think } else { Phase::Answer },
            t_us: u64::from(i) * 20_000,
            top: (0..5)
                .map(|k| TopToken {
                    id: i + k,
                    text: WORDS[k as usize].into(),
                    logprob: lp - k as f32,
                })
                .collect(),
        });
    }
    let flags = (0..steps / 1000)
        .map(|k| Flag {
            start: k * 1000 + 17,
            end: k * 1000 + 19,
            kind: if k % 2 == 0 { FlagKind::LowConfidence } else { FlagKind::Backtrack },
            severity: Severity::Warn,
            detail: "synthetic".into(),
            origin: Origin::Auto,
        })
        .collect();
    let run = Run::new_recording(RunId(1), SessionId(1), SamplerSpec::default());
    RunView::new(run, out, flags, Vec::new())
}

/// Resident memory of this process in KiB (Linux), 0 elsewhere.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn stats(mut v: Vec<f64>) -> (f64, f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len().max(1);
    let mean = v.iter().sum::<f64>() / n as f64;
    let pct = |p: f64| v.get(((n - 1) as f64 * p) as usize).copied().unwrap_or(0.0);
    (mean, pct(0.5), pct(0.99), v.last().copied().unwrap_or(0.0))
}

pub fn bench_render(
    steps: u32,
    width: u16,
    height: u16,
    frames: usize,
) -> Result<serde_json::Value> {
    let rss0 = rss_kib();
    let t0 = Instant::now();
    let view = synthetic(steps, false);
    let themes = ThemeSet::builtin();
    let theme = themes.load("dark", false)?;
    let mut app = App::new(None, Keymap::merged(None)?, themes, theme);
    app.set_view(view);
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let rss = rss_kib().saturating_sub(rss0);
    app.update(Action::Resize(width, height));
    app.update(Action::ScreenTrace);
    let mut term = Terminal::new(TestBackend::new(width, height))?;
    // Frame time: draws at cursor positions spread over the whole run.
    let mut frame_ms = Vec::with_capacity(frames);
    for k in 0..frames {
        app.update(Action::Start);
        let target = (k * steps as usize / frames.max(1)).min(steps as usize - 1);
        app.viewer.cursor = target;
        app.viewer.top_line = app.viewer.view.as_ref().map_or(0, |v| v.line_of(target));
        let t = Instant::now();
        term.draw(|f| ui::draw(&app, f))?;
        frame_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // Keypress to frame: dispatch, update and draw, for the common movement keys.
    app.update(Action::Start);
    let keys: [(KeyCode, KeyModifiers); 9] = [
        (KeyCode::Char('l'), KeyModifiers::NONE),
        (KeyCode::Char('j'), KeyModifiers::NONE),
        (KeyCode::Char('w'), KeyModifiers::NONE),
        (KeyCode::Char(')'), KeyModifiers::NONE),
        (KeyCode::Char('}'), KeyModifiers::NONE),
        (KeyCode::Char(']'), KeyModifiers::NONE),
        (KeyCode::Char('e'), KeyModifiers::NONE),
        (KeyCode::Char('d'), KeyModifiers::CONTROL),
        (KeyCode::Char('c'), KeyModifiers::NONE),
    ];
    let mut disp = Dispatcher::default();
    let mut key_ms = Vec::new();
    for round in 0..frames {
        let (code, mods) = keys[round % keys.len()];
        let t = Instant::now();
        if let Some(a) = disp.key(&app, KeyEvent::new(code, mods)) {
            app.update(a);
        }
        term.draw(|f| ui::draw(&app, f))?;
        key_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // The far end: G, then a frame.
    let t = Instant::now();
    app.update(Action::End);
    term.draw(|f| ui::draw(&app, f))?;
    let end_ms = t.elapsed().as_secs_f64() * 1e3;
    debug_assert_eq!(app.screen, Screen::Trace);
    // The compare screen: two runs, aligned once, then frames across the whole run.
    let t = Instant::now();
    let cfg = crate::analysis::AnalysisConfig::defaults()?;
    let cmp = CompareState::new(synthetic(steps, false), synthetic(steps, true), &cfg);
    let compare_build_ms = t.elapsed().as_secs_f64() * 1e3;
    app.compare = Some(cmp);
    app.update(Action::ScreenCompare);
    let mut compare_ms = Vec::with_capacity(frames);
    for k in 0..frames {
        let target = (k * steps as usize / frames.max(1)).min(steps as usize - 1);
        if let Some(c) = app.compare.as_mut() {
            c.cursor = target;
        }
        let t = Instant::now();
        term.draw(|f| ui::draw(&app, f))?;
        compare_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    debug_assert_eq!(app.screen, Screen::Compare);
    let (cm, c50, c99, cmax) = stats(compare_ms);
    let (fm, f50, f99, fmax) = stats(frame_ms);
    let (km, k50, k99, kmax) = stats(key_ms);
    outln!("render: {steps}-token run, trace screen {width}x{height}, {frames} frames");
    outln!(
        "  load (index, segment, highlight)   {load_ms:>8.1} ms   RSS +{:.1} MiB",
        rss as f64 / 1024.0
    );
    outln!("  frame                 mean {fm:>6.2} ms  p50 {f50:>6.2}  p99 {f99:>6.2}  max {fmax:>6.2}");
    outln!("  keypress to frame     mean {km:>6.2} ms  p50 {k50:>6.2}  p99 {k99:>6.2}  max {kmax:>6.2}");
    outln!("  jump to end (G)       {end_ms:>6.2} ms");
    outln!("  compare: build        {compare_build_ms:>8.1} ms (align two {steps}-token runs, analyse both)");
    outln!("  compare frame         mean {cm:>6.2} ms  p50 {c50:>6.2}  p99 {c99:>6.2}  max {cmax:>6.2}");
    Ok(serde_json::json!({
        "part": "render", "steps": steps, "width": width, "height": height, "frames": frames,
        "load_ms": load_ms, "rss_mib": rss as f64 / 1024.0,
        "frame_ms": {"mean": fm, "p50": f50, "p99": f99, "max": fmax},
        "key_to_frame_ms": {"mean": km, "p50": k50, "p99": k99, "max": kmax},
        "end_ms": end_ms,
        "compare_build_ms": compare_build_ms,
        "compare_frame_ms": {"mean": cm, "p50": c50, "p99": c99, "max": cmax},
    }))
}
