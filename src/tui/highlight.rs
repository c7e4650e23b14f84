//! Syntax colours for fenced code blocks (```lang ... ```) in model output, from syntect
//! with the syntect theme the UI theme names. Computed when a run is loaded, never while
//! drawing. Depends on nothing else in the tui.

use std::sync::OnceLock;

use ratatui::style::Color;
use syntect::easy::HighlightLines;
use syntect::highlighting::ThemeSet;
use syntect::parsing::SyntaxSet;

/// A run of bytes `start..end` of the run text drawn in `color`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Highlight {
    pub start: usize,
    pub end: usize,
    pub color: Color,
}

fn syntaxes() -> &'static SyntaxSet {
    static SET: OnceLock<SyntaxSet> = OnceLock::new();
    SET.get_or_init(SyntaxSet::load_defaults_newlines)
}

fn themes() -> &'static ThemeSet {
    static SET: OnceLock<ThemeSet> = OnceLock::new();
    SET.get_or_init(ThemeSet::load_defaults)
}

/// The code blocks of `text` (byte ranges, fences included) and the colours of their
/// contents under the syntect theme `theme` (falling back to `base16-ocean.dark`).
pub fn code_blocks(text: &str, theme: &str) -> (Vec<(usize, usize)>, Vec<Highlight>) {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, usize, String)> = None; // (fence start, body start, lang)
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            match open.take() {
                None => open = Some((pos, pos + line.len(), info.trim().to_string())),
                Some((start, body, lang)) => blocks.push((start, body, pos, lang)),
            }
        }
        pos += line.len();
    }
    // An unclosed block (a run cut off mid-code) runs to the end.
    if let Some((start, body, lang)) = open {
        blocks.push((start, body, text.len(), lang));
    }
    let mut spans = Vec::new();
    let ss = syntaxes();
    let ts = themes();
    let Some(th) = ts.themes.get(theme).or_else(|| ts.themes.get("base16-ocean.dark")) else {
        return (blocks.iter().map(|b| (b.0, fence_end(text, b.2))).collect(), spans);
    };
    for (_, body, end, lang) in &blocks {
        let syntax = ss
            .find_syntax_by_token(lang)
            .or_else(|| ss.find_syntax_by_first_line(&text[*body..*end]))
            .unwrap_or_else(|| ss.find_syntax_plain_text());
        let mut h = HighlightLines::new(syntax, th);
        let mut p = *body;
        for line in text[*body..*end].split_inclusive('\n') {
            if let Ok(parts) = h.highlight_line(line, ss) {
                let mut q = p;
                for (style, piece) in parts {
                    let c = style.foreground;
                    spans.push(Highlight {
                        start: q,
                        end: q + piece.len(),
                        color: Color::Rgb(c.r, c.g, c.b),
                    });
                    q += piece.len();
                }
            }
            p += line.len();
        }
    }
    (blocks.iter().map(|b| (b.0, fence_end(text, b.2))).collect(), spans)
}

/// The end of the closing fence line that starts at `close` (or `close` at the text's end).
fn fence_end(text: &str, close: usize) -> usize {
    text[close..].find('\n').map_or(text.len(), |n| close + n + 1)
}
