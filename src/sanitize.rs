//! Making untrusted text (model output, imported files) safe to show in a terminal.
//!
//! Model output is stored unchanged, so the debugger can show that a model emitted an escape
//! byte; every path that prints it goes through `for_terminal`, which turns control bytes into
//! visible symbols. Depends on nothing else in the crate.

use std::borrow::Cow;

/// True for the bidirectional-override and isolate controls ("Trojan Source" characters).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

fn needs_escape(c: char, keep_newlines: bool) -> bool {
    (c.is_control() && !(keep_newlines && c == '\n')) || is_bidi_control(c)
}

/// Text that is safe to write to a terminal: C0 controls (except `\n` when `keep_newlines`),
/// DEL and C1 controls become visible symbols (ESC becomes `␛`, CR `␍`, DEL `␡`, C1 and
/// bidirectional controls `⟨U+XXXX⟩`); a tab becomes four spaces.
pub fn for_terminal(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    if !s.chars().any(|c| needs_escape(c, keep_newlines)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !needs_escape(c, keep_newlines) {
            out.push(c);
            continue;
        }
        match c {
            '\t' => out.push_str("    "),
            '\n' => out.push('␤'),
            // C0 controls map onto the Control Pictures block, U+2400 + code.
            '\u{0}'..='\u{1f}' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('\u{FFFD}')),
            '\u{7f}' => out.push('␡'),
            _ => out.push_str(&format!("⟨U+{:04X}⟩", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// Text that is safe to write to a terminal and otherwise unchanged: every character that
/// `for_terminal` escapes except `\n` and `\t` (which cannot drive a terminal) becomes the
/// same visible symbol. The CLI's output streams (`cli::out`) pass everything through this.
pub fn for_output(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\t' && needs_escape(c, true)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    let mut rest = s;
    while let Some(i) = rest.find(|c: char| c != '\t' && needs_escape(c, true)) {
        out.push_str(&rest[..i]);
        let c = rest[i..].chars().next().unwrap_or('\u{FFFD}');
        out.push_str(&for_terminal(c.encode_utf8(&mut [0u8; 4]), true));
        rest = &rest[i + c.len_utf8()..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Shows invisible characters of a single token for inspection: space as `·`, newline as
/// `↵`, tab as `→`, and every control as in `for_terminal`.
pub fn visible_token(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ' ' => out.push('·'),
            '\n' => out.push('↵'),
            '\t' => out.push('→'),
            _ => out.push_str(&for_terminal(c.encode_utf8(&mut [0u8; 4]), false)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_never_reach_the_terminal() {
        let evil = "a\u{1b}]0;PWNED\u{7}b\u{9b}31mc\u{7f}\u{202e}d\re";
        let safe = for_terminal(evil, true);
        assert!(!safe.chars().any(|c| c.is_control() || is_bidi_control(c)), "{safe}");
        assert_eq!(safe, "a␛]0;PWNED␇b⟨U+009B⟩31mc␡⟨U+202E⟩d␍e");
    }

    #[test]
    fn plain_text_is_borrowed_and_newlines_kept() {
        assert!(matches!(for_terminal("hello\nworld", true), Cow::Borrowed(_)));
        assert_eq!(for_terminal("a\nb", false), "a␤b");
        assert_eq!(for_terminal("a\tb", true), "a    b");
    }

    #[test]
    fn output_keeps_tabs_and_newlines_and_escapes_the_rest() {
        assert!(matches!(for_output("a\tb\nc"), Cow::Borrowed(_)));
        assert_eq!(
            for_output("a\t\u{1b}]0;x\u{7}\n\u{9b}\r\u{202e}"),
            "a\t␛]0;x␇\n⟨U+009B⟩␍⟨U+202E⟩"
        );
    }

    #[test]
    fn tokens_show_their_whitespace() {
        assert_eq!(visible_token(" the\n"), "·the↵");
        assert_eq!(visible_token("\u{1b}"), "␛");
    }
}

/// Serializes `value` as one line of JSON in which every control, DEL, C1 and bidirectional
/// character inside strings is a `\uXXXX` escape (serde_json leaves C1 and bidi raw), so that
/// `cat` of a JSONL file cannot drive the terminal.
pub fn json_line<T: serde::Serialize>(value: &T) -> serde_json::Result<String> {
    let raw = serde_json::to_string(value)?;
    if !raw.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Ok(raw);
    }
    let mut out = String::with_capacity(raw.len() + 16);
    for c in raw.chars() {
        if c.is_control() || is_bidi_control(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod json_tests {
    #[test]
    fn json_lines_escape_c1_and_bidi_but_stay_equal() {
        let v = serde_json::json!({"text": "a\u{9b}b\u{202e}c\u{1b}"});
        let line = super::json_line(&v).unwrap();
        assert!(line.is_ascii(), "{line}");
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back, v);
    }
}

/// True for characters that draw nothing and take no column (or a column a terminal may not
/// give them): the zero-width spaces and joiners, the bidirectional marks, the line and
/// paragraph separators, word joiner and invisible operators, the byte order mark, soft
/// hyphen, Hangul fillers, Mongolian variation selectors, interlinear annotation controls and
/// tags — the `Format` characters and the `Default_Ignorable_Code_Point`s that are not
/// combining marks. `for_display` shows each as `⟨U+XXXX⟩`.
pub fn is_invisible(c: char) -> bool {
    is_bidi_control(c)
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFFB}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// How `display_chars` shows white space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whitespace {
    /// As text: a newline becomes `␤`, a tab four spaces.
    Line,
    /// As text, keeping newlines (for text drawn over several rows).
    Lines,
    /// As one token to inspect: space `·`, newline `↵`, tab `→`.
    Token,
}

/// One character of untrusted text as it is shown: `at` is its byte offset in the text,
/// `shown` what is drawn for it, `escaped` whether that differs from the character itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisplayChar {
    pub at: usize,
    pub shown: String,
    pub escaped: bool,
}

/// Whether `c` is drawn as itself by `display_chars`, given whether a base character
/// precedes it.
fn plain(c: char, has_base: bool) -> bool {
    !c.is_control()
        && !is_invisible(c)
        && (has_base || unicode_width::UnicodeWidthChar::width(c) != Some(0))
}

/// Untrusted text, character by character, as a terminal must show it so that what is drawn
/// takes exactly the columns that `unicode-width` gives it: controls and bidirectional
/// controls as in `for_terminal`, the other invisible characters (`is_invisible`: U+200B,
/// U+200D, U+FEFF, …) as `⟨U+XXXX⟩`, and a zero-width character that has no base before it
/// (a combining mark at the start, or after a newline or an escaped character) on a dotted
/// circle, `◌́`, so it takes one column instead of none.
pub fn display_chars(s: &str, ws: Whitespace) -> impl Iterator<Item = DisplayChar> + '_ {
    let mut has_base = false;
    s.char_indices().map(move |(at, c)| {
        let base_before = has_base;
        has_base = true;
        let shown = match (c, ws) {
            ('\n', Whitespace::Lines) => {
                has_base = false;
                return DisplayChar { at, shown: "\n".into(), escaped: false };
            }
            (' ', Whitespace::Token) => "·".to_string(),
            ('\n', Whitespace::Token) => "↵".to_string(),
            ('\t', Whitespace::Token) => "→".to_string(),
            _ if plain(c, base_before) => {
                return DisplayChar { at, shown: c.to_string(), escaped: false };
            }
            _ if c.is_control() || is_bidi_control(c) => {
                has_base = false;
                for_terminal(c.encode_utf8(&mut [0u8; 4]), false).into_owned()
            }
            _ if is_invisible(c) => {
                has_base = false;
                format!("⟨U+{:04X}⟩", c as u32)
            }
            // A zero-width character with nothing to sit on.
            _ => format!("◌{c}"),
        };
        DisplayChar { at, shown, escaped: true }
    })
}

/// `s` as `display_chars` shows it, in one string; borrowed when nothing needs showing
/// differently. With `keep_newlines`, newlines stay (and a mark after one gets its `◌`).
pub fn for_display(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    let ws = if keep_newlines { Whitespace::Lines } else { Whitespace::Line };
    let mut has_base = false;
    let clean = s.chars().all(|c| {
        let ok = (keep_newlines && c == '\n') || plain(c, has_base);
        has_base = c != '\n';
        ok
    });
    if clean {
        return Cow::Borrowed(s);
    }
    Cow::Owned(display_chars(s, ws).map(|d| d.shown).collect())
}

/// One token as `visible_token` shows it (space `·`, newline `↵`, tab `→`), with invisible
/// characters and base-less marks shown as `for_display` shows them.
pub fn token_for_display(s: &str) -> String {
    display_chars(s, Whitespace::Token).map(|d| d.shown).collect()
}

#[cfg(test)]
mod display_tests {
    use super::*;
    use unicode_width::UnicodeWidthStr;

    #[test]
    fn invisible_characters_are_named_and_controls_pictured() {
        assert_eq!(
            for_display("a\u{200D}b\u{200B}c\u{FEFF}", false),
            "a⟨U+200D⟩b⟨U+200B⟩c⟨U+FEFF⟩"
        );
        assert_eq!(for_display("x\u{1b}]0;pwned\u{7}", false), "x␛]0;pwned␇");
        assert_eq!(for_display("\u{202e}\u{2066}", false), "⟨U+202E⟩⟨U+2066⟩");
        assert_eq!(for_display("a\nb", false), "a␤b");
        assert_eq!(for_display("a\nb", true), "a\nb");
        assert_eq!(token_for_display(" \u{200D}\n"), "·⟨U+200D⟩↵");
    }

    #[test]
    fn a_mark_without_a_base_sits_on_a_dotted_circle() {
        assert_eq!(for_display("\u{301}", false), "◌\u{301}");
        assert_eq!(for_display("\u{301}\u{302}", false), "◌\u{301}\u{302}");
        assert_eq!(for_display("\u{1b}\u{301}", false), "␛◌\u{301}");
        assert_eq!(for_display("a\n\u{301}", true), "a\n◌\u{301}");
        assert_eq!(for_display("\u{200D}\u{301}", false), "⟨U+200D⟩◌\u{301}");
        // With a base, marks stay as they are and the text is not copied.
        assert!(matches!(for_display("e\u{301}", false), Cow::Borrowed(_)));
        assert!(matches!(for_display("नमस्ते", false), Cow::Borrowed(_)));
        assert_eq!(token_for_display(" \u{301}"), "·\u{301}");
    }

    #[test]
    fn shown_text_takes_a_column_per_visible_character() {
        let evil = "\u{301}a\u{200D}\u{200B}\u{FEFF}\u{1b}[2J\u{9b}\u{2028}\u{E0041}";
        let shown = for_display(evil, false);
        assert!(!shown.chars().any(|c| c.is_control() || is_invisible(c)), "{shown}");
        // Every character but the marks on their base takes at least one column.
        for d in display_chars(evil, Whitespace::Line) {
            assert!(d.shown.width() >= 1, "{:?}", d);
        }
        assert_eq!(display_chars("é", Whitespace::Line).count(), 1);
        assert_eq!(
            display_chars("e\u{301}", Whitespace::Line).nth(1).map(|d| d.escaped),
            Some(false)
        );
    }
}
