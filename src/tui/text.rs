//! The one way untrusted text — model tokens and output, prompts, imported model names,
//! arch and quant, run labels, session titles, flag labels and details, notes, messages from
//! servers and errors — becomes something the TUI draws, and the one rule for what a person
//! may type into a label or a note. Everything shown passes `sanitize::display_chars`:
//! controls as control pictures (`␛`), bidirectional and other invisible characters (U+200B,
//! U+200D, U+FEFF, …) as `⟨U+XXXX⟩`, and a combining mark with no base on a dotted circle
//! (`◌́`), so that each shown string takes exactly the columns its width says. The rest of
//! the tui never calls `sanitize` itself (tests/it/architecture.rs checks); `safe_backend`
//! guards the cells in case something is drawn without this. Depends on `sanitize` only.

use std::borrow::Cow;

use crate::sanitize::{display_chars, for_display, is_invisible, token_for_display};
pub use crate::sanitize::{DisplayChar, Whitespace};

/// Untrusted text on one row (a newline shows as `␤`).
pub fn shown(s: &str) -> Cow<'_, str> {
    for_display(s, false)
}

/// Untrusted text over several rows: each line as `shown` shows it.
pub fn shown_lines(s: &str) -> Vec<String> {
    for_display(s, true).lines().map(str::to_string).collect()
}

/// One token for inspection: space `·`, newline `↵`, tab `→`, the rest as `shown`.
pub fn shown_token(s: &str) -> String {
    token_for_display(s)
}

/// Untrusted text character by character, with each character's byte offset, for views
/// that style characters one by one (the trace). A mark shows on `◌` only when nothing in
/// `s` before it is its base.
pub fn shown_chars(s: &str, ws: Whitespace) -> impl Iterator<Item = DisplayChar> + '_ {
    display_chars(s, ws)
}

/// Whether a character typed or pasted into a label, a note or a flag detail is kept: no
/// control (a newline only where the field has several lines), no bidirectional control, no
/// zero-width or other invisible character. The prompt editor keeps everything, as a prompt
/// is model input, and shows it with `shown`.
pub fn typable(c: char, multiline: bool) -> bool {
    (multiline && c == '\n') || !(c.is_control() || is_invisible(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keep_no_invisible_or_control_character() {
        let pasted = "ok\u{202e}gpj.exe\u{200B}\u{1b}[2J\u{FEFF}\nx";
        let kept: String = pasted.chars().filter(|&c| typable(c, false)).collect();
        assert_eq!(kept, "okgpj.exe[2Jx");
        let note: String = pasted.chars().filter(|&c| typable(c, true)).collect();
        assert_eq!(note, "okgpj.exe[2J\nx");
        assert!(typable('é', false) && typable('\u{301}', false) && typable('界', false));
    }

    #[test]
    fn lines_are_shown_one_by_one() {
        assert_eq!(shown_lines("a\u{200D}\n\u{301}b\u{1b}"), ["a⟨U+200D⟩", "◌\u{301}b␛"]);
        assert_eq!(shown("arch\u{1b}]0;pwned\u{7}"), "arch␛]0;pwned␇");
        assert_eq!(shown_token(" \u{FEFF}"), "·⟨U+FEFF⟩");
    }
}
