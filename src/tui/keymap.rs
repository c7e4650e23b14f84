//! Key bindings as data: `assets/keymap.toml` (compiled in) with the user's
//! `keymap.toml` from the config directory merged over it. Each binding has `on` (a key, or a
//! chord of keys separated by spaces such as `g g`; an array gives alternatives), `run` (an
//! action name) and `desc`. The help overlay is generated from the same table. Depends on
//! `action` only.

use std::collections::HashMap;
use std::path::Path;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Deserialize;

use super::action::Action;
use super::error::{Error, Result};

/// The keymap shipped with thinkdbg.
pub const DEFAULT_KEYMAP: &str = include_str!("../../assets/keymap.toml");

/// The screens (modes) a binding can belong to; `global` applies everywhere.
pub const MODES: &[&str] =
    &["global", "sessions", "trace", "flags", "routing", "compare", "experiments"];

/// One key press, normalised (shift folded into the character).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl Key {
    pub fn from_event(ev: KeyEvent) -> Key {
        let mut mods = ev.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT);
        let code = ev.code;
        if !matches!(code, KeyCode::Char(_)) {
            mods |= ev.modifiers & KeyModifiers::SHIFT;
        }
        Key { code, mods }
    }

    pub fn parse(text: &str) -> Option<Key> {
        let mut mods = KeyModifiers::NONE;
        let mut rest = text;
        loop {
            if let Some(r) = rest.strip_prefix("ctrl-") {
                mods |= KeyModifiers::CONTROL;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("alt-") {
                mods |= KeyModifiers::ALT;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("shift-").filter(|r| r.chars().count() > 1) {
                mods |= KeyModifiers::SHIFT;
                rest = r;
            } else {
                break;
            }
        }
        let code = match rest {
            "enter" => KeyCode::Enter,
            "esc" => KeyCode::Esc,
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "space" => KeyCode::Char(' '),
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "pageup" => KeyCode::PageUp,
            "pagedown" => KeyCode::PageDown,
            "backspace" => KeyCode::Backspace,
            s if s.chars().count() == 1 => KeyCode::Char(s.chars().next()?),
            s if s.starts_with('f') => KeyCode::F(s[1..].parse().ok()?),
            _ => return None,
        };
        Some(Key { code, mods })
    }

    /// The key as written in the keymap file (and shown in help).
    pub fn label(&self) -> String {
        let mut s = String::new();
        if self.mods.contains(KeyModifiers::CONTROL) {
            s.push_str("ctrl-");
        }
        if self.mods.contains(KeyModifiers::ALT) {
            s.push_str("alt-");
        }
        if self.mods.contains(KeyModifiers::SHIFT) {
            s.push_str("shift-");
        }
        match self.code {
            KeyCode::Char(' ') => s.push_str("space"),
            KeyCode::Char(c) => s.push(c),
            KeyCode::Enter => s.push_str("enter"),
            KeyCode::Esc => s.push_str("esc"),
            KeyCode::Tab => s.push_str("tab"),
            KeyCode::BackTab => s.push_str("backtab"),
            KeyCode::Up => s.push('↑'),
            KeyCode::Down => s.push('↓'),
            KeyCode::Left => s.push('←'),
            KeyCode::Right => s.push('→'),
            KeyCode::Home => s.push_str("home"),
            KeyCode::End => s.push_str("end"),
            KeyCode::PageUp => s.push_str("pageup"),
            KeyCode::PageDown => s.push_str("pagedown"),
            KeyCode::Backspace => s.push_str("backspace"),
            KeyCode::F(n) => s.push_str(&format!("f{n}")),
            _ => s.push('?'),
        }
        s
    }
}

/// One binding: a chord (one or more keys) in a mode running an action.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub mode: String,
    pub chord: Vec<Key>,
    pub action: Action,
    pub desc: String,
}

impl Binding {
    pub fn chord_label(&self) -> String {
        self.chord.iter().map(Key::label).collect::<Vec<_>>().join(" ")
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum On {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBinding {
    on: On,
    run: String,
    #[serde(default)]
    desc: Option<String>,
}

type RawKeymap = HashMap<String, Vec<RawBinding>>;

/// What a key press resolved to.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    Run(Action),
    /// The keys so far start a longer chord: wait for the next key.
    Pending,
    None,
}

/// The merged key bindings.
#[derive(Debug, Clone, Default)]
pub struct Keymap {
    pub bindings: Vec<Binding>,
}

impl Keymap {
    /// Parses a keymap file's text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Keymap> {
        let err = |msg: String| Error::Keymap { file: file.to_string(), msg };
        let raw: RawKeymap = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut bindings = Vec::new();
        let mut modes: Vec<_> = raw.into_iter().collect();
        modes.sort_by(|a, b| a.0.cmp(&b.0));
        for (mode, list) in modes {
            if !MODES.contains(&mode.as_str()) {
                return Err(err(format!("unknown mode '{mode}' (one of {})", MODES.join(", "))));
            }
            for b in list {
                let action = Action::from_name(&b.run)
                    .ok_or_else(|| err(format!("[{mode}] unknown action '{}'", b.run)))?;
                let ons = match b.on {
                    On::One(s) => vec![s],
                    On::Many(v) => v,
                };
                for on in ons {
                    let chord = on
                        .split_whitespace()
                        .map(|k| {
                            Key::parse(k).ok_or_else(|| err(format!("[{mode}] unknown key '{k}'")))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    if chord.is_empty() {
                        return Err(err(format!("[{mode}] empty 'on' for '{}'", b.run)));
                    }
                    let desc = b.desc.clone().unwrap_or_else(|| action.description().to_string());
                    bindings.push(Binding {
                        mode: mode.clone(),
                        chord,
                        action: action.clone(),
                        desc,
                    });
                }
            }
        }
        Ok(Keymap { bindings })
    }

    /// The default keymap with `user` (if any) merged over it: a user binding replaces every
    /// default binding of the same chord in the same mode.
    pub fn merged(user: Option<&Keymap>) -> Result<Keymap> {
        let mut base = Keymap::parse(DEFAULT_KEYMAP, "assets/keymap.toml")?;
        if let Some(user) = user {
            base.bindings
                .retain(|b| !user.bindings.iter().any(|u| u.mode == b.mode && u.chord == b.chord));
            base.bindings.extend(user.bindings.iter().cloned());
        }
        Ok(base)
    }

    /// The default keymap merged with `path` when that file exists.
    pub fn load(path: Option<&Path>) -> Result<Keymap> {
        let user = match path.filter(|p| p.exists()) {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| Error::Read { path: p.to_path_buf(), source: e })?;
                Some(Keymap::parse(&text, &p.display().to_string())?)
            }
            None => None,
        };
        Keymap::merged(user.as_ref())
    }

    /// Resolves the keys pressed so far in `mode` (mode bindings win over global ones).
    pub fn resolve(&self, mode: &str, keys: &[Key]) -> Resolved {
        let mut pending = false;
        for m in [mode, "global"] {
            for b in self.bindings.iter().filter(|b| b.mode == m) {
                if b.chord == keys {
                    return Resolved::Run(b.action.clone());
                }
                if b.chord.len() > keys.len() && b.chord.starts_with(keys) {
                    pending = true;
                }
            }
        }
        if pending {
            Resolved::Pending
        } else {
            Resolved::None
        }
    }

    /// Pairs of bindings that cannot both work in the screen `mode`: the same chord for
    /// different actions, or one chord a prefix of another.
    pub fn conflicts(&self, mode: &str) -> Vec<(String, String)> {
        let active: Vec<&Binding> =
            self.bindings.iter().filter(|b| b.mode == mode || b.mode == "global").collect();
        let mut out = Vec::new();
        for (i, a) in active.iter().enumerate() {
            for b in &active[i + 1..] {
                let shadow = a.mode != b.mode && a.chord == b.chord;
                let clash = a.chord == b.chord && a.action != b.action && !shadow;
                let prefix = a.chord.len() != b.chord.len()
                    && (a.chord.starts_with(&b.chord) || b.chord.starts_with(&a.chord));
                if clash || prefix {
                    out.push((
                        format!("[{}] {} = {}", a.mode, a.chord_label(), a.action.name()),
                        format!("[{}] {} = {}", b.mode, b.chord_label(), b.action.name()),
                    ));
                }
            }
        }
        out
    }

    /// The bindings of `mode` for the help overlay, one line per action with all its keys.
    pub fn help_rows(&self, mode: &str) -> Vec<(String, String)> {
        let mut rows: Vec<(Action, Vec<String>, String)> = Vec::new();
        for b in self.bindings.iter().filter(|b| b.mode == mode) {
            match rows.iter_mut().find(|r| r.0 == b.action) {
                Some(r) => r.1.push(b.chord_label()),
                None => rows.push((b.action.clone(), vec![b.chord_label()], b.desc.clone())),
            }
        }
        rows.into_iter().map(|(_, keys, desc)| (keys.join(", "), desc)).collect()
    }
}
