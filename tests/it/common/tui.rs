//! Terminal UI fixtures: an `App` on a store with the built-in dark theme and the default
//! keymap, rendering it on ratatui's `TestBackend` at the two snapshot sizes, the `snap!`
//! macro (insta snapshots named after the calling module), typing into it, and feeding it its
//! background jobs' events until they end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::backend::TestBackend;
use ratatui::Terminal;
use thinkdbg::store::Store;
use thinkdbg::tui::components::editor::PromptEditor;
use thinkdbg::tui::components::Overlay;
use thinkdbg::tui::keymap::Keymap;
use thinkdbg::tui::theme::ThemeSet;
use thinkdbg::tui::{ui, Action, App};

/// The snapshot sizes: a roomy terminal and the classic 80×24.
pub const BIG: (u16, u16) = (120, 40);
pub const SMALL: (u16, u16) = (80, 24);

/// An App on `store` (or none) with the default keymap and the built-in dark theme, its
/// sessions read.
pub fn app_with(store: Option<Arc<Store>>) -> App {
    let themes = ThemeSet::builtin();
    let theme = themes.load("dark", false).unwrap();
    let mut app = App::new(store, Keymap::merged(None).unwrap(), themes, theme);
    app.reload().unwrap();
    app
}

/// Draws the app on a fresh `TestBackend` of `size` (after telling it the size).
pub fn render(app: &mut App, size: (u16, u16)) -> Terminal<TestBackend> {
    app.update(Action::Resize(size.0, size.1));
    let mut term = Terminal::new(TestBackend::new(size.0, size.1)).unwrap();
    term.draw(|f| ui::draw(app, f)).unwrap();
    term
}

/// The screen at `size` as `TestBackend` prints it: each row quoted, one per line.
pub fn screen_text(app: &mut App, size: (u16, u16)) -> String {
    render(app, size).backend().to_string()
}

/// The screen at `size` as its cells' symbols, one row per line, nothing added.
pub fn screen_cells(app: &mut App, size: (u16, u16)) -> String {
    cells(render(app, size).backend().buffer())
}

/// A buffer's cells' symbols, one row per line, nothing added.
pub fn cells(buf: &ratatui::buffer::Buffer) -> String {
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

/// An app on a store holding the sample sessions, with `flags` on the first sample run
/// (stored as its current analysis, so opening the run keeps them) and `notes` on it.
pub fn samples_app(
    flags: &[thinkdbg::trace::Flag],
    notes: &[thinkdbg::trace::Note],
) -> (tempfile::TempDir, App) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    assert_eq!(thinkdbg::tui::samples::import_samples(&store).unwrap(), 4);
    let first = store.sessions().unwrap().iter().min_by_key(|s| s.created_at).unwrap().runs[0];
    store.put_flags(first, flags).unwrap();
    store.put_notes(first, notes).unwrap();
    let current = thinkdbg::analysis::StoredAnalysis {
        fingerprint: thinkdbg::analysis::AnalysisConfig::load().unwrap().fingerprint(),
        steps: store.step_count(first),
        stats: Default::default(),
    };
    store.put_analysis(first, &current).unwrap();
    (dir, app_with(Some(Arc::new(store))))
}

/// An automatic warning flag, as the analysis writes one.
pub fn auto_flag(
    start: u32,
    end: u32,
    kind: thinkdbg::trace::FlagKind,
    detail: &str,
) -> thinkdbg::trace::Flag {
    thinkdbg::trace::Flag {
        start,
        end,
        kind,
        severity: thinkdbg::trace::Severity::Warn,
        detail: detail.into(),
        origin: thinkdbg::trace::Origin::Auto,
    }
}

/// Snapshots the app at `BIG` and `SMALL` as `{name}_big` and `{name}_small`. A macro, so that
/// insta names and places the snapshots after the calling module (`it__tui__…` in
/// `tests/it/snapshots/`), not after this one.
macro_rules! snap {
    ($app:expr, $name:expr) => {
        for (label, size) in
            [("big", $crate::common::tui::BIG), ("small", $crate::common::tui::SMALL)]
        {
            let term = $crate::common::tui::render($app, size);
            insta::assert_snapshot!(format!("{}_{label}", $name), term.backend());
        }
    };
}
pub(crate) use snap;

/// Types `text` into whatever has the focus, one `Input` per character.
pub fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        app.update(Action::Input(c));
    }
}

/// The open prompt editor (the run dialog); fails the test if there is none.
pub fn editor(app: &App) -> &PromptEditor {
    match &app.overlay {
        Some(Overlay::Editor(e)) => e,
        _ => panic!("no editor open: {}", app.message),
    }
}

/// Feeds the background jobs' events to the app until `done` holds or nothing is left
/// running or loading, failing the test after `limit`; returns the number of events fed.
pub fn pump_until(app: &mut App, limit: Duration, done: impl Fn(&App) -> bool) -> usize {
    let deadline = Instant::now() + limit;
    let mut events = 0;
    loop {
        while let Some(action) = app.jobs.poll() {
            app.update(action);
            events += 1;
        }
        if done(app) || (!app.jobs.busy() && app.jobs.loading.is_none()) {
            return events;
        }
        assert!(Instant::now() < deadline, "the run did not end in {limit:?}: {}", app.message);
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Feeds the background jobs' events to the app until every run has ended (see `pump_until`).
pub fn pump(app: &mut App, limit: Duration) -> usize {
    pump_until(app, limit, |_| false)
}
