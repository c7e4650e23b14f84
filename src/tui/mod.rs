//! The terminal UI: browse sessions, step through a run's chain of thought token by token,
//! inspect confidence, flags and MoE routing, follow a run recording in this process.
//!
//! Layout: `app` holds the state and `App::update(Action)` is the only place it changes;
//! `ui` and one file per component draw from `&App` without I/O; `keymap` and `theme` load
//! bindings and styles from data files; `terminal` is the guard; this file runs the event
//! loop. Depends on `store`, `trace`, `sanitize` and the engine's event type; nothing
//! depends on it except `cli`.

pub mod action;
pub mod annotate;
mod annotations;
pub mod app;
pub mod compare;
mod debug_loop;
pub mod editor;
mod editor_draw;
pub mod error;
pub mod export_dialog;
mod flags;
pub mod fork_picker;
mod help;
pub mod highlight;
mod inspector;
pub mod jobs;
pub mod keymap;
mod navigate;
mod provenance;
pub mod resample;
mod resample_panel;
mod routing;
pub mod run_view;
pub mod samples;
mod sessions;
pub mod terminal;
pub mod theme;
mod timeline;
pub mod trace;
pub mod ui;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

pub use action::Action;
pub use annotations::FlagRow;
pub use app::App;
pub use error::{Error, Result};

use crate::store::Store;
use crate::trace::RunId;
use keymap::{Key, Keymap, Resolved};
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
    let dir = config_dir();
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
    let wanted = theme.map(str::to_string).or_else(|| std::env::var("THINKDBG_THEME").ok());
    let theme = match wanted.as_deref().map(|n| themes.load(n, no_color)) {
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            warnings.push(format!("{e}; using 'dark'"));
            themes.load("dark", no_color)?
        }
        None => themes.load("dark", no_color)?,
    };
    let mut app = App::new(store, keymap, themes, theme);
    app.reload()?;
    app.message = warnings.join("; ");
    Ok(app)
}

/// Turns key presses into actions: chords wait for their next key, and while a search or
/// filter is typed, keys are text.
#[derive(Debug, Default)]
pub struct Dispatcher {
    pending: Vec<Key>,
}

impl Dispatcher {
    pub fn key(&mut self, app: &App, ev: event::KeyEvent) -> Option<Action> {
        if matches!(app.overlay, Some(app::Overlay::Editor(_))) {
            if let Some(a) = editor_key(ev) {
                return Some(a);
            }
        }
        let ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
        if matches!(app.overlay, Some(app::Overlay::Note(_))) {
            // The note editor is multi-line: Enter is a new line, Ctrl-S saves.
            match ev.code {
                KeyCode::Enter => return Some(Action::Input('\n')),
                KeyCode::Char('s') if ctrl => return Some(Action::InputSubmit),
                KeyCode::Tab | KeyCode::BackTab | KeyCode::Up | KeyCode::Down => return None,
                _ => {}
            }
        }
        if app.overlay.is_some() {
            return match ev.code {
                KeyCode::Esc => Some(Action::Back),
                KeyCode::Enter => Some(Action::InputSubmit),
                KeyCode::Backspace => Some(Action::InputBackspace),
                KeyCode::Tab | KeyCode::Down => Some(Action::FieldNext),
                KeyCode::BackTab | KeyCode::Up => Some(Action::FieldPrev),
                KeyCode::Char('c') if ev.modifiers.contains(KeyModifiers::CONTROL) => {
                    Some(Action::Quit)
                }
                KeyCode::Char(c) if !ev.modifiers.contains(KeyModifiers::CONTROL) => {
                    Some(Action::Input(c))
                }
                _ => None,
            };
        }
        if app.input.is_some() {
            return match ev.code {
                KeyCode::Esc => Some(Action::Back),
                KeyCode::Enter => Some(Action::InputSubmit),
                KeyCode::Backspace => Some(Action::InputBackspace),
                KeyCode::Char('c') if ev.modifiers.contains(KeyModifiers::CONTROL) => {
                    Some(Action::Quit)
                }
                KeyCode::Char(c) if !ev.modifiers.contains(KeyModifiers::CONTROL) => {
                    Some(Action::Input(c))
                }
                _ => None,
            };
        }
        let key = Key::from_event(ev);
        self.pending.push(key);
        let mode = app.screen.mode();
        match app.keymap.resolve(mode, &self.pending) {
            Resolved::Run(a) => {
                self.pending.clear();
                Some(a)
            }
            Resolved::Pending => None,
            Resolved::None => {
                // An unfinished chord followed by another key: try that key on its own.
                let retry = self.pending.len() > 1;
                self.pending.clear();
                if retry {
                    self.pending.push(key);
                    match app.keymap.resolve(mode, &self.pending) {
                        Resolved::Run(a) => {
                            self.pending.clear();
                            return Some(a);
                        }
                        Resolved::Pending => return None,
                        Resolved::None => self.pending.clear(),
                    }
                }
                None
            }
        }
    }
}

/// The prompt editor's own keys: a new line (alt-enter, ctrl-j) and the text cursor.
fn editor_key(ev: event::KeyEvent) -> Option<Action> {
    use action::Caret;
    let caret = match ev.code {
        KeyCode::Enter if ev.modifiers.contains(KeyModifiers::ALT) => {
            return Some(Action::Input('\n'))
        }
        KeyCode::Char('j') if ev.modifiers.contains(KeyModifiers::CONTROL) => {
            return Some(Action::Input('\n'))
        }
        KeyCode::Up => Caret::Up,
        KeyCode::Down => Caret::Down,
        KeyCode::Left => Caret::Left,
        KeyCode::Right => Caret::Right,
        KeyCode::Home => Caret::Home,
        KeyCode::End => Caret::End,
        _ => return None,
    };
    Some(Action::Caret(caret))
}

/// Runs the UI until the user quits.
pub fn run(store: Arc<Store>, opts: Options) -> Result<()> {
    let mut app = build_app(Some(store), opts.theme.as_deref())?;
    if let Some((jobs, id)) = opts.live {
        app.jobs = jobs;
        app.follow(id);
    }
    app.jobs.model = opts.model;
    let mut guard = terminal::Guard::enter()?;
    let size = guard.terminal.size()?;
    app.update(Action::Resize(size.width, size.height));
    let mut keys = Dispatcher::default();
    let mut dirty = true;
    let mut last_draw = Instant::now() - FRAME;
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
                Event::Paste(text) if app.input.is_some() || app.overlay.is_some() => {
                    // Pasted line breaks stay in a note and in the editor's messages (multi-line);
                    // elsewhere they are dropped.
                    let lines = matches!(
                        app.overlay,
                        Some(app::Overlay::Note(_) | app::Overlay::Editor(_))
                    );
                    let text = text.replace("\r\n", "\n");
                    for c in text.chars().filter(|&c| !c.is_control() || (lines && c == '\n')) {
                        app.update(Action::Input(c));
                    }
                }
                _ => {}
            }
            dirty = true;
        }
        while let Some(ev) = app.jobs.poll() {
            app.update(Action::Job(Box::new(ev)));
            dirty = true;
        }
        if app.quit {
            break;
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
