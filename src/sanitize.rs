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
