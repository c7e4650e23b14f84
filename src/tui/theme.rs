//! Themes as data: `themes/*.toml` (compiled in, plus `*.toml` in the user's
//! `themes/` config directory) map semantic keys such as `token.logprob.low` or
//! `phase.think` to styles, with a `[palette]` of named colours and `inherits = "parent"`.
//! With `NO_COLOR` set, every style falls back to bold / reverse / underline / dim.
//! Depends on nothing else in the tui.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

use super::error::{Error, Result};

/// The themes shipped with thinkdbg: (name, file text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    ("high-contrast", include_str!("../../themes/high-contrast.toml")),
    ("colorblind", include_str!("../../themes/colorblind.toml")),
];

/// Keys a theme may define: `ui.background`, the colours of every cell nothing else colours
/// (unset: the terminal's own).
pub const OPTIONAL_KEYS: &[&str] = &["ui.background"];

/// Every semantic key a theme must define (directly or through `inherits`), with the
/// attribute it falls back to under `NO_COLOR`.
pub const KEYS: &[(&str, NoColor)] = &[
    ("ui.text", NoColor::Plain),
    ("ui.dim", NoColor::Dim),
    ("ui.border", NoColor::Plain),
    ("ui.border.focus", NoColor::Bold),
    ("ui.title", NoColor::Bold),
    ("ui.tab", NoColor::Plain),
    ("ui.tab.active", NoColor::Reverse),
    ("ui.status", NoColor::Reverse),
    ("ui.selection", NoColor::Reverse),
    ("ui.cursor", NoColor::Reverse),
    ("ui.match", NoColor::Reverse),
    ("ui.mark", NoColor::Italic),
    ("ui.warning", NoColor::Bold),
    ("ui.error", NoColor::Bold),
    ("ui.help.key", NoColor::Bold),
    ("ui.bar", NoColor::Plain),
    ("compare.diff", NoColor::Underline),
    ("compare.same", NoColor::Plain),
    ("compare.divergence", NoColor::Reverse),
    ("editor.field", NoColor::Dim),
    ("editor.field.focus", NoColor::Bold),
    ("job.running", NoColor::Bold),
    ("note.span", NoColor::Underline),
    ("note.marker", NoColor::Bold),
    ("resample.changed", NoColor::Bold),
    ("phase.think", NoColor::Dim),
    ("phase.answer", NoColor::Plain),
    ("token.control", NoColor::Reverse),
    ("token.logprob.high", NoColor::Plain),
    ("token.logprob.mid", NoColor::Plain),
    ("token.logprob.low", NoColor::Underline),
    ("token.logprob.verylow", NoColor::Bold),
    ("token.entropy.low", NoColor::Plain),
    ("token.entropy.mid", NoColor::Plain),
    ("token.entropy.high", NoColor::Underline),
    ("token.entropy.veryhigh", NoColor::Bold),
    ("flag.language", NoColor::Bold),
    ("flag.low_confidence", NoColor::Bold),
    ("flag.entropy_spike", NoColor::Bold),
    ("flag.repetition", NoColor::Bold),
    ("flag.backtrack", NoColor::Bold),
    ("flag.integrity", NoColor::Bold),
    ("flag.mismatch", NoColor::Bold),
    ("flag.user", NoColor::Bold),
    ("expert.heat.0", NoColor::Dim),
    ("expert.heat.1", NoColor::Plain),
    ("expert.heat.2", NoColor::Plain),
    ("expert.heat.3", NoColor::Bold),
    ("expert.heat.4", NoColor::Reverse),
    ("expert.id.0", NoColor::Plain),
    ("expert.id.1", NoColor::Bold),
    ("expert.id.2", NoColor::Underline),
    ("expert.id.3", NoColor::Dim),
    ("expert.id.4", NoColor::Italic),
    ("expert.id.5", NoColor::Reverse),
    ("expert.id.6", NoColor::Plain),
    ("expert.id.7", NoColor::Bold),
    ("diff.insert", NoColor::Bold),
    ("diff.delete", NoColor::Dim),
    ("code.block", NoColor::Plain),
    ("spark.entropy", NoColor::Plain),
    ("spark.logprob", NoColor::Plain),
    ("timeline.cursor", NoColor::Reverse),
];

/// The attribute a key is drawn with when colours are off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoColor {
    Plain,
    Bold,
    Dim,
    Italic,
    Underline,
    Reverse,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawStyle {
    Fg(String),
    Full {
        #[serde(default)]
        fg: Option<String>,
        #[serde(default)]
        bg: Option<String>,
        #[serde(default)]
        modifiers: Vec<String>,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTheme {
    #[serde(default)]
    inherits: Option<String>,
    /// A syntect theme name for code blocks.
    #[serde(default)]
    syntax: Option<String>,
    #[serde(default)]
    palette: HashMap<String, String>,
    #[serde(default)]
    styles: HashMap<String, RawStyle>,
}

/// A resolved theme: a style for every key in `KEYS`.
#[derive(Debug, Clone)]
pub struct Theme {
    pub name: String,
    pub syntax: String,
    pub no_color: bool,
    styles: HashMap<String, Style>,
}

/// The theme files known: built-ins plus user files, by name.
#[derive(Debug, Clone, Default)]
pub struct ThemeSet {
    files: Vec<(String, String)>,
}

impl ThemeSet {
    pub fn builtin() -> ThemeSet {
        ThemeSet { files: BUILTIN.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect() }
    }

    /// Built-ins plus every `*.toml` in `dir` (a user file of a built-in's name replaces it).
    pub fn with_dir(dir: Option<&Path>) -> ThemeSet {
        let mut set = ThemeSet::builtin();
        let Some(entries) = dir.and_then(|d| std::fs::read_dir(d).ok()) else { return set };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "toml")) {
            let (Some(stem), Ok(text)) =
                (p.file_stem().and_then(|s| s.to_str()), std::fs::read_to_string(&p))
            else {
                continue;
            };
            set.files.retain(|(n, _)| n != stem);
            set.files.push((stem.to_string(), text));
        }
        set
    }

    pub fn names(&self) -> Vec<String> {
        self.files.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Resolves `name` through its `inherits` chain.
    pub fn load(&self, name: &str, no_color: bool) -> Result<Theme> {
        let mut chain: Vec<(String, RawTheme)> = Vec::new();
        let mut next = Some(name.to_string());
        while let Some(n) = next {
            if chain.iter().any(|(c, _)| *c == n) {
                return Err(Error::Theme { file: n, msg: "'inherits' forms a cycle".into() });
            }
            let text = self
                .files
                .iter()
                .find(|(f, _)| *f == n)
                .map(|(_, t)| t)
                .ok_or_else(|| Error::Theme { file: n.clone(), msg: "no such theme".into() })?;
            let raw: RawTheme = toml::from_str(text)
                .map_err(|e| Error::Theme { file: format!("{n}.toml"), msg: e.to_string() })?;
            next = raw.inherits.clone();
            chain.push((n, raw));
        }
        // Parents first, children override.
        let mut palette: HashMap<String, String> = HashMap::new();
        let mut raw_styles: HashMap<String, RawStyle> = HashMap::new();
        let mut syntax = String::from("base16-ocean.dark");
        for (_, raw) in chain.iter().rev() {
            palette.extend(raw.palette.clone());
            raw_styles.extend(raw.styles.clone());
            if let Some(s) = &raw.syntax {
                syntax = s.clone();
            }
        }
        let file = format!("{name}.toml");
        let mut styles = HashMap::new();
        for (key, raw) in &raw_styles {
            if !KEYS.iter().any(|(k, _)| k == key) && !OPTIONAL_KEYS.contains(&key.as_str()) {
                return Err(Error::Theme { file, msg: format!("unknown key '{key}'") });
            }
            let style = to_style(raw, &palette).map_err(|msg| Error::Theme {
                file: file.clone(),
                msg: format!("'{key}': {msg}"),
            })?;
            styles.insert(key.clone(), style);
        }
        if let Some((missing, _)) = KEYS.iter().find(|(k, _)| !styles.contains_key(*k)) {
            return Err(Error::Theme { file, msg: format!("key '{missing}' is not defined") });
        }
        if no_color {
            styles.remove("ui.background");
            for (k, nc) in KEYS {
                let m = match nc {
                    NoColor::Plain => Modifier::empty(),
                    NoColor::Bold => Modifier::BOLD,
                    NoColor::Dim => Modifier::DIM,
                    NoColor::Italic => Modifier::ITALIC,
                    NoColor::Underline => Modifier::UNDERLINED,
                    NoColor::Reverse => Modifier::REVERSED,
                };
                styles.insert(k.to_string(), Style::new().add_modifier(m));
            }
        }
        Ok(Theme { name: name.to_string(), syntax, no_color, styles })
    }
}

fn colour(text: &str, palette: &HashMap<String, String>) -> std::result::Result<Color, String> {
    let resolved = palette.get(text).map_or(text, String::as_str);
    Color::from_str(resolved).map_err(|_| format!("unknown colour '{resolved}'"))
}

fn to_style(
    raw: &RawStyle,
    palette: &HashMap<String, String>,
) -> std::result::Result<Style, String> {
    match raw {
        RawStyle::Fg(c) => Ok(Style::new().fg(colour(c, palette)?)),
        RawStyle::Full { fg, bg, modifiers } => {
            let mut s = Style::new();
            if let Some(c) = fg {
                s = s.fg(colour(c, palette)?);
            }
            if let Some(c) = bg {
                s = s.bg(colour(c, palette)?);
            }
            for m in modifiers {
                s = s.add_modifier(match m.as_str() {
                    "bold" => Modifier::BOLD,
                    "dim" => Modifier::DIM,
                    "italic" => Modifier::ITALIC,
                    "underlined" | "underline" => Modifier::UNDERLINED,
                    "reversed" | "reverse" => Modifier::REVERSED,
                    "crossed_out" => Modifier::CROSSED_OUT,
                    other => return Err(format!("unknown modifier '{other}'")),
                });
            }
            Ok(s)
        }
    }
}

/// The file in the config directory that remembers the theme last chosen with `T`.
pub const REMEMBERED: &str = "tui.toml";

#[derive(Debug, Default, Deserialize, serde::Serialize)]
struct Remembered {
    theme: Option<String>,
}

/// The theme last chosen with `T`, remembered in `dir/tui.toml` (none if the file is missing
/// or unreadable).
pub fn remembered(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(REMEMBERED)).ok()?;
    toml::from_str::<Remembered>(&text).ok()?.theme
}

/// Remembers `name` as the theme to start with (`dir/tui.toml`, the directory created).
pub fn remember(dir: &Path, name: &str) -> Result<()> {
    let path = dir.join(REMEMBERED);
    let body = toml::to_string(&Remembered { theme: Some(name.to_string()) })
        .map_err(|e| Error::Theme { file: REMEMBERED.into(), msg: e.to_string() })?;
    let text = format!("# The theme thinkdbg starts with; written when you press T.\n{body}");
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&path, text))
        .map_err(|source| Error::Write { path, source })
}

impl Theme {
    /// The style of `key` (the default style for a key that is not in `KEYS`).
    pub fn get(&self, key: &str) -> Style {
        self.styles.get(key).copied().unwrap_or_default()
    }

    /// True when `NO_COLOR` is set to something non-empty.
    pub fn no_color_env() -> bool {
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
    }
}
