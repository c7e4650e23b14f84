//! Bytes behind tokens: GPT-2's byte-level alphabet (vocabulary strings -> raw bytes), display
//! strings for lone tokens, and incremental UTF-8 decoding of a token stream. Pure functions over
//! bytes; it must not depend on `tokenizers` or on any other thinkdbg module.

/// True for the bytes GPT-2's `bytes_to_unicode` maps to the code point of the same value.
fn is_printable(b: u8) -> bool {
    matches!(b, 33..=126 | 161..=172 | 174..=255)
}

/// The byte a byte-level alphabet character stands for, if it is one.
pub(super) fn char_to_byte(c: char) -> Option<u8> {
    let cp = u32::from(c);
    if let Ok(b) = u8::try_from(cp) {
        return is_printable(b).then_some(b);
    }
    // The other 68 bytes (0..=32, 127..=160, 173) map in order to U+0100, U+0101, ...
    let n = usize::try_from(cp.checked_sub(256)?).ok()?;
    (0..=255u8).filter(|b| !is_printable(*b)).nth(n)
}

/// The raw bytes of a byte-level vocabulary string. Characters outside the byte-level alphabet
/// (which a well-formed vocabulary does not have) are kept as their UTF-8.
pub(super) fn decode_byte_level(token: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(token.len());
    for c in token.chars() {
        match char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

/// Valid UTF-8 as is, every byte of an invalid or incomplete sequence as `\xNN`.
pub(super) fn display(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// Incremental UTF-8 decoding: push a token's bytes, get the text that became complete (partial
/// multi-byte chars held back; truly invalid bytes emitted as U+FFFD once they can never complete).
#[derive(Debug, Default, Clone)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `bytes` and returns every character that is now complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    out.push_str(&String::from_utf8_lossy(valid));
                    match e.error_len() {
                        // Invalid for good: one replacement for the bad sequence, go on.
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = after.get(n..).unwrap_or(&[]);
                        }
                        // An incomplete character at the end: wait for more bytes.
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }

    /// Ends the stream: bytes still held back can never complete and come out as U+FFFD.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_alphabet_round_trips() {
        assert_eq!(char_to_byte('Ġ'), Some(b' '));
        assert_eq!(char_to_byte('Ċ'), Some(b'\n'));
        assert_eq!(char_to_byte('a'), Some(b'a'));
        assert_eq!(char_to_byte('Ā'), Some(0));
        assert_eq!(char_to_byte('Ń'), Some(173)); // the last non-printable byte (soft hyphen)
        assert_eq!(char_to_byte(' '), None);
        assert_eq!(char_to_byte('中'), None);
        let all: Vec<u8> = (0..=255u8).collect();
        let mut seen = std::collections::HashSet::new();
        for c in (0..=400u32).filter_map(char::from_u32) {
            if let Some(b) = char_to_byte(c) {
                assert!(seen.insert(b), "byte {b} mapped twice");
            }
        }
        assert_eq!(seen.len(), all.len());
        assert_eq!(decode_byte_level("ĠhelloĊ"), b" hello\n");
        // "中" is E4 B8 AD: 'ä' (E4), '¸' (B8), 'Ń' (AD is non-printable -> U+0143).
        assert_eq!(decode_byte_level("ä¸Ń"), "中".as_bytes());
    }

    #[test]
    fn display_escapes_only_invalid_bytes() {
        assert_eq!(display(b"hi"), "hi");
        assert_eq!(display(&[0xE4, 0xB8]), "\\xE4\\xB8");
        assert_eq!(display(&[b'a', 0xFF, b'b']), "a\\xFFb");
        assert_eq!(display("中".as_bytes()), "中");
    }

    #[test]
    fn stream_holds_back_split_chinese() {
        let bytes = "中文".as_bytes();
        let mut d = StreamDecoder::new();
        assert_eq!(d.push(&bytes[..1]), "");
        assert_eq!(d.push(&bytes[1..4]), "中");
        assert_eq!(d.push(&bytes[4..]), "文");
        assert_eq!(d.finish(), "");
    }

    #[test]
    fn stream_holds_back_split_emoji() {
        let bytes = "a🤔b".as_bytes();
        let mut d = StreamDecoder::new();
        let mut out = String::new();
        for b in bytes {
            out.push_str(&d.push(std::slice::from_ref(b)));
        }
        assert_eq!(out, "a🤔b");
        assert_eq!(d.finish(), "");
    }

    #[test]
    fn stream_replaces_invalid_bytes_once_they_cannot_complete() {
        let mut d = StreamDecoder::new();
        assert_eq!(d.push(&[0xE4, 0xB8]), "");
        // 'x' cannot continue the sequence: the two bytes are one bad sequence.
        assert_eq!(d.push(b"x"), "\u{FFFD}x");
        assert_eq!(d.push(&[0xFF, b'y']), "\u{FFFD}y");
        assert_eq!(d.push(&[0xF0, 0x9F]), "");
        assert_eq!(d.finish(), "\u{FFFD}");
        assert_eq!(d.push(b"ok"), "ok");
    }
}
