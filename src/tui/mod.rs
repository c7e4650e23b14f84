//! The terminal UI: browse sessions, step through a run's chain of thought token by token,
//! inspect confidence, flags and MoE routing, follow a run recording in this process, edit
//! and re-run, fork, resample, compare, annotate and export.
//!
//! Map (each module may import only what is below it here; no import circles):
//! - this file: the event loop (`run`), building the `App` (`build_app`) and `Options`.
//! - `dispatch`: key presses to `Action`s (reads `&App`).
//! - `ui`: draws the whole frame from `&App` by asking each component to draw itself.
//! - `app/`: `App`, the shared handles (store, jobs, keymap, themes, size, message) and the
//!   components; `App::update(Action)` routes every action and applies the `Effect`s the
//!   components return (starting runs, job events, storing annotations).
//! - `components/`: one file (or folder) per screen or dialog, each owning its state, its
//!   `update` and its `draw`: `sessions`, `viewer/` (trace, flags and routing screens),
//!   `compare`, `help`, `editor/`, `fork_picker`, `export_dialog`, `import_dialog`, `note_editor`,
//!   `flag_editor`, `resample/`, plus `widgets` (shared drawing helpers). They never import
//!   `app`, `ui`, `dispatch` or this file.
//! - shared below the components, in this order: `run_view` (a loaded run and its indexes),
//!   `highlight` (syntect), `provenance` (where a run came from), `keymap` (bindings from
//!   data files), `action`, `jobs` (the one job channel every live run reaches the UI
//!   through, `record --tui` included), `theme` (styles from data files), `terminal` (the
//!   guard), `safe_backend` (the cell guard every frame passes), `text` (the only way
//!   untrusted text is shown), `samples`, `error`.
//!
//! Depends on the crate's `store`, `trace`, `record`, `sanitize`, `analysis`, `compare`,
//! `export`, `runs`, `remote` and `engine` (the worker and the prompt and request types);
//! nothing depends on it except `cli`.

pub mod action;
pub mod app;
pub mod components;
mod dispatch;
pub mod error;
pub mod highlight;
pub mod jobs;
pub mod keymap;
mod provenance;
pub mod run_view;
pub mod safe_backend;
pub mod samples;
pub mod terminal;
pub mod text;
pub mod theme;
pub mod ui;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyEventKind};

pub use action::Action;
pub use app::App;
pub use components::viewer::FlagRow;
pub use dispatch::Dispatcher;
pub use error::{Error, Result};

use crate::store::Store;
use crate::trace::RunId;
use components::Overlay;
use keymap::Keymap;
use theme::{Theme, ThemeSet};

/// Renders happen at most this often; input and engine events in between are batched.
const FRAME: Duration = Duration::from_millis(10);

/// How the UI starts.
#[derive(Default)]
pub struct Options {
    /// Theme name (default `dark`, or `THINKDBG_THEME`).
    pub theme: Option<String>,
    /// The model edit / fork / resample re-run with (`--model`, default demo).
    pub model: jobs::ModelChoice,
    /// Jobs made before the UI, with a run recording in this process adopted into them
    /// (`Jobs::adopt`), and that run's id to follow.
    pub live: Option<(jobs::Jobs, RunId)>,
}

/// The user's config directory (`~/.config/thinkdbg` on Linux), or `THINKDBG_CONFIG`.
pub fn config_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("THINKDBG_CONFIG") {
        return Some(PathBuf::from(p));
    }
    directories::ProjectDirs::from("", "", "thinkdbg").map(|d| d.config_dir().to_path_buf())
}

/// Builds the app: keymap and themes from the config dir (a broken user file is reported
/// and the defaults used), the store's sessions loaded.
pub fn build_app(store: Option<Arc<Store>>, theme: Option<&str>) -> Result<App> {
    build_app_in(store, theme, config_dir())
}

/// `build_app` with the config directory `dir`: the theme is `theme`, else `THINKDBG_THEME`,
/// else the one last chosen with `T` (remembered in `dir`), else `dark`.
pub fn build_app_in(
    store: Option<Arc<Store>>,
    theme: Option<&str>,
    dir: Option<PathBuf>,
) -> Result<App> {
    let mut warnings = Vec::new();
    let keymap = match Keymap::load(dir.as_ref().map(|d| d.join("keymap.toml")).as_deref()) {
        Ok(k) => k,
        Err(e) => {
            warnings.push(format!("{e}; using the default keys"));
            Keymap::merged(None)?
        }
    };
    let themes = ThemeSet::with_dir(dir.as_ref().map(|d| d.join("themes")).as_deref());
    let no_color = Theme::no_color_env();
    let wanted = theme
        .map(str::to_string)
        .or_else(|| std::env::var("THINKDBG_THEME").ok())
        .or_else(|| dir.as_deref().and_then(theme::remembered));
    let theme = match wanted.as_deref().map(|n| themes.load(n, no_color)) {
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            warnings.push(format!("{e}; using 'dark'"));
            themes.load("dark", no_color)?
        }
        None => themes.load("dark", no_color)?,
    };
    let mut app = App::new(store, keymap, themes, theme);
    app.config_dir = dir;
    app.reload()?;
    app.message = warnings.join("; ");
    Ok(app)
}

/// Runs the UI until the user quits.
pub fn run(store: Arc<Store>, opts: Options) -> Result<()> {
    terminal::check()?;
    let lost: Vec<String> = store.lost().iter().map(|r| r.to_string()).collect();
    let mut app = build_app(Some(store), opts.theme.as_deref())?;
    if !lost.is_empty() {
        app.message = format!(
            "the store's database lost runs or changes their backups hold ({}): quit and run 'thinkdbg store salvage --to NEW'",
            lost.join(", ")
        );
    }
    if let Some((jobs, id)) = opts.live {
        app.jobs = jobs;
        app.follow(id);
    }
    app.jobs.model = opts.model;
    let mut guard = terminal::Guard::enter()?;
    let size = guard.terminal.size()?;
    app.update(Action::Resize(size.width, size.height));
    let mut keys = Dispatcher::default();
    let mut mouse_on = false;
    let mut dirty = true;
    let mut last_draw = Instant::now() - FRAME;
    let mut seen_generation = app.store.as_ref().map_or(0, |s| s.generation());
    loop {
        // Drain everything pending before drawing once.
        while event::poll(Duration::ZERO)? {
            match event::read()? {
                Event::Key(k) if k.kind != KeyEventKind::Release => {
                    if let Some(a) = keys.key(&app, k) {
                        app.update(a);
                    }
                }
                Event::Resize(w, h) => app.update(Action::Resize(w, h)),
                Event::Mouse(m) => {
                    if let Some(a) = dispatch::mouse(m) {
                        app.update(a);
                    }
                }
                Event::Paste(text) if app.input.is_some() || app.overlay.is_some() => {
                    // Pasted line breaks stay in a note and in the editor's messages (multi-line);
                    // elsewhere they are dropped.
                    let lines = matches!(app.overlay, Some(Overlay::Note(_) | Overlay::Editor(_)));
                    let text = text.replace("\r\n", "\n");
                    for c in text.chars().filter(|&c| !c.is_control() || (lines && c == '\n')) {
                        app.update(Action::Input(c));
                    }
                }
                _ => {}
            }
            dirty = true;
        }
        while let Some(action) = app.jobs.poll() {
            app.update(action);
            dirty = true;
        }
        if app.quit {
            break;
        }
        // Runs and sessions changed by another thread (a command another process handed to
        // this one, `cli::serve`): the lists are reloaded, the selection kept.
        if let Some(g) = app.store.as_ref().map(|s| s.generation()) {
            if g != seen_generation && !app.jobs.busy() {
                seen_generation = g;
                app.refresh_list();
                dirty = true;
            }
        }
        if app.mouse != mouse_on {
            guard.set_mouse(app.mouse)?;
            mouse_on = app.mouse;
        }
        let since = last_draw.elapsed();
        if dirty && since >= FRAME {
            guard.terminal.draw(|f| ui::draw(&app, f))?;
            last_draw = Instant::now();
            dirty = false;
        }
        let wait = if dirty {
            FRAME.saturating_sub(last_draw.elapsed())
        } else if app.jobs.busy() || app.jobs.loading.is_some() {
            FRAME
        } else {
            Duration::from_millis(250)
        };
        event::poll(wait)?;
    }
    drop(guard);
    app.jobs.shutdown();
    Ok(())
}
