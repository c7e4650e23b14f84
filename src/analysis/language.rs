//! Language identification of a run's text: words classified by Unicode script (each Han or
//! kana character a word), Latin- and Cyrillic-script sentences identified by `whatlang`,
//! code (``` fences, `inline`) and math (`$...$`, `\[...\]`, `\(...\)`) left out. From these:
//! the run's target-language ratio, its language mix and its language switches.
//! Depends on `trace` and `whatlang` only.

use std::collections::BTreeMap;
use std::ops::Range;

use super::config::LanguageConfig;
use super::text::is_ideographic;

/// A stretch of text in one script, with the language it was identified as.
#[derive(Debug, Clone, PartialEq)]
pub struct LangChunk {
    pub bytes: Range<usize>,
    /// ISO 639-3 code (`eng`, `cmn`, `jpn`), or a script name when no language is known.
    pub lang: String,
    pub words: usize,
}

/// A place where the text leaves the target language.
#[derive(Debug, Clone, PartialEq)]
pub struct Switch {
    pub bytes: Range<usize>,
    pub to: String,
    pub words: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Latin,
    Cjk,
    Hangul,
    Cyrillic,
    Other,
}

fn class_of(c: char) -> Option<Class> {
    if is_ideographic(c) {
        return Some(Class::Cjk);
    }
    if !c.is_alphabetic() {
        return None;
    }
    let u = c as u32;
    Some(match u {
        0..=0x24F | 0x1E00..=0x1EFF => Class::Latin,
        0x0400..=0x052F => Class::Cyrillic,
        0xAC00..=0xD7AF | 0x1100..=0x11FF | 0x3130..=0x318F => Class::Hangul,
        _ => Class::Other,
    })
}

fn is_kana(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF)
}

/// Byte ranges (absolute) of code, math and think tags inside `text[bytes]`.
pub fn masked(text: &str, bytes: Range<usize>) -> Vec<Range<usize>> {
    let part = &text[bytes.clone()];
    let mut out = Vec::new();
    let mut i = 0;
    let b = part.as_bytes();
    let close = |from: usize, pat: &str, same_line: bool| -> Option<usize> {
        let rest = &part[from..];
        let at = rest.find(pat)?;
        (!same_line || !rest[..at].contains('\n')).then_some(from + at + pat.len())
    };
    while i < b.len() {
        let rest = &part[i..];
        let end = if rest.starts_with("<think>") || rest.starts_with("</think>") {
            rest.find('>').map(|e| i + e + 1)
        } else if rest.starts_with("```") {
            Some(close(i + 3, "```", false).unwrap_or(part.len()))
        } else if rest.starts_with('`') {
            close(i + 1, "`", true)
        } else if rest.starts_with("$$") {
            close(i + 2, "$$", false)
        } else if rest.starts_with('$') {
            close(i + 1, "$", true)
        } else if rest.starts_with("\\[") {
            close(i + 2, "\\]", false)
        } else if rest.starts_with("\\(") {
            close(i + 2, "\\)", false)
        } else {
            None
        };
        match end {
            Some(e) => {
                out.push(bytes.start + i..bytes.start + e);
                i = e;
            }
            None => i += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    out
}

struct Builder<'a> {
    text: &'a str,
    cfg: &'a LanguageConfig,
    out: Vec<(LangChunk, Class, Option<String>)>,
    chunk: Option<(Range<usize>, Class, usize, bool, String)>,
}

impl Builder<'_> {
    fn word(&mut self, bytes: Range<usize>, class: Class) {
        let w = &self.text[bytes.clone()];
        if class != Class::Cjk && w.chars().count() < 2 {
            return; // a variable such as `x`, not a word
        }
        if self.chunk.as_ref().is_some_and(|c| c.1 != class) {
            self.finish();
        }
        let c = self.chunk.get_or_insert_with(|| (bytes.clone(), class, 0, false, String::new()));
        c.0.end = bytes.end;
        c.2 += 1;
        c.3 |= w.chars().any(is_kana);
        c.4.push_str(w);
        c.4.push(' ');
    }

    fn finish(&mut self) {
        let Some((bytes, class, words, kana, text)) = self.chunk.take() else { return };
        let detect = || whatlang::detect(&text);
        let (lang, guess) = match class {
            Class::Cjk => (Some(if kana { "jpn" } else { "cmn" }.to_string()), None),
            Class::Hangul => (Some("kor".to_string()), None),
            Class::Latin | Class::Cyrillic | Class::Other => match detect() {
                Some(i) if i.confidence() >= self.cfg.min_confidence && words >= 3 => {
                    (Some(i.lang().code().to_string()), None)
                }
                Some(i) => (None, Some(i.lang().code().to_string())),
                None => (None, None),
            },
        };
        let chunk = LangChunk { bytes, lang: lang.unwrap_or_default(), words };
        self.out.push((chunk, class, guess));
    }
}

/// The language chunks of `text[bytes]`, code and math left out. Chunks whose language could
/// not be identified take their neighbours' (same script), else `fallback` for Latin script,
/// else whatlang's best guess.
pub fn chunks(
    text: &str,
    bytes: Range<usize>,
    cfg: &LanguageConfig,
    fallback: Option<&str>,
) -> Vec<LangChunk> {
    let masks = masked(text, bytes.clone());
    let mut b = Builder { text, cfg, out: Vec::new(), chunk: None };
    let mut word: Option<(usize, Class)> = None;
    let mut mask_i = 0;
    let mut iter = text[bytes.clone()].char_indices();
    while let Some((i, c)) = iter.next() {
        let at = bytes.start + i;
        if let Some(m) = masks.get(mask_i).filter(|m| m.start == at) {
            if let Some((s, k)) = word.take() {
                b.word(s..at, k);
            }
            b.finish();
            let skip_to = m.end;
            mask_i += 1;
            while iter.clone().next().is_some_and(|(j, _)| bytes.start + j < skip_to) {
                iter.next();
            }
            continue;
        }
        let class = class_of(c);
        let glue = matches!(c, '\'' | '’') && word.is_some_and(|w| w.1 == Class::Latin);
        match (word, class) {
            (Some((_, k)), Some(cl)) if k == cl && cl != Class::Cjk => {}
            _ if glue => {}
            _ => {
                if let Some((s, k)) = word.take() {
                    b.word(s..at, k);
                }
                match class {
                    Some(Class::Cjk) => b.word(at..at + c.len_utf8(), Class::Cjk),
                    Some(cl) => word = Some((at, cl)),
                    None => {}
                }
            }
        }
        if matches!(c, '.' | '!' | '?' | ';' | '\n' | '。' | '！' | '？' | '；' | ':' | '：') {
            b.finish();
        }
    }
    if let Some((s, k)) = word {
        b.word(s..bytes.end, k);
    }
    b.finish();
    resolve(b.out, fallback)
}

fn resolve(
    mut raw: Vec<(LangChunk, Class, Option<String>)>,
    fallback: Option<&str>,
) -> Vec<LangChunk> {
    // Forward, then backward: an unidentified chunk takes the nearest identified language
    // of the same script.
    for pass in 0..2 {
        let mut last: BTreeMap<u8, String> = BTreeMap::new();
        let n = raw.len();
        for k in 0..n {
            let j = if pass == 0 { k } else { n - 1 - k };
            let (chunk, class, _) = &mut raw[j];
            let key = *class as u8;
            if chunk.lang.is_empty() {
                if let Some(l) = last.get(&key) {
                    chunk.lang = l.clone();
                }
            } else {
                last.insert(key, chunk.lang.clone());
            }
        }
    }
    raw.into_iter()
        .map(|(mut chunk, class, guess)| {
            if chunk.lang.is_empty() {
                chunk.lang = match (class, fallback) {
                    (Class::Latin, Some(f)) if is_latin_lang(f) => f.to_string(),
                    _ => guess.unwrap_or_else(|| "und".to_string()),
                };
            }
            chunk
        })
        .collect()
}

/// Whether a language code names a language written in Latin script.
pub fn is_latin_lang(code: &str) -> bool {
    whatlang::Lang::from_code(code).is_some_and(|l| whatlang::Script::Latin.langs().contains(&l))
}

/// A language's English name for display (the code itself when unknown).
pub fn lang_name(code: &str) -> String {
    whatlang::Lang::from_code(code).map_or_else(|| code.to_string(), |l| l.eng_name().to_string())
}

/// The language with the most words.
pub fn dominant(chunks: &[LangChunk]) -> Option<String> {
    let mix = mix(chunks);
    mix.into_iter().max_by_key(|(_, n)| *n).map(|(l, _)| l)
}

/// Words per language, most words first.
pub fn mix(chunks: &[LangChunk]) -> Vec<(String, usize)> {
    let mut m: BTreeMap<&str, usize> = BTreeMap::new();
    for c in chunks {
        *m.entry(c.lang.as_str()).or_default() += c.words;
    }
    let mut v: Vec<(String, usize)> = m.into_iter().map(|(l, n)| (l.to_string(), n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// Runs of chunks outside `target` with at least `min_words` words between them.
pub fn switches(chunks: &[LangChunk], target: &str, min_words: usize) -> Vec<Switch> {
    let mut out = Vec::new();
    let mut cur: Option<Switch> = None;
    let flush = |cur: &mut Option<Switch>, out: &mut Vec<Switch>| {
        if let Some(s) = cur.take().filter(|s| s.words >= min_words.max(1)) {
            out.push(s);
        }
    };
    for c in chunks {
        if c.lang == target {
            flush(&mut cur, &mut out);
            continue;
        }
        match &mut cur {
            Some(s) if s.to == c.lang => {
                s.bytes.end = c.bytes.end;
                s.words += c.words;
            }
            _ => {
                flush(&mut cur, &mut out);
                cur = Some(Switch { bytes: c.bytes.clone(), to: c.lang.clone(), words: c.words });
            }
        }
    }
    flush(&mut cur, &mut out);
    out
}

#[cfg(test)]
#[path = "language_texts.rs"]
pub(crate) mod tests_text;

#[cfg(test)]
#[path = "language_tests.rs"]
mod tests;
