//! Final answers of ordinary text: found in a run's answer part (or in all its text when it
//! has none) as, in this order, the last `\boxed{}`, the last "the answer is …" / "Answer: …"
//! statement, a leading or closing yes / no, the last number of the last sentence that has
//! one, else the last sentence; and compared by value where both are numbers (`1,000`,
//! `\frac{1}{2}`, `50%`), as yes / no, else as normalized text. Depends on `trace` and the
//! other analysis modules only.

use std::ops::Range;

use super::integrity::{stated_answer, subset};
use super::segment::segment;
use super::text::StepText;
use crate::trace::Step;

/// How an answer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerKind {
    /// `\boxed{…}`.
    Boxed,
    /// "the answer is …", "Answer: …", "答案是 …".
    Stated,
    /// A leading or closing "Yes" / "No".
    YesNo,
    /// The last number of the last sentence that has one.
    Number,
    /// The last sentence.
    Sentence,
}

impl AnswerKind {
    /// The kind as `diff --json` and the screens name it.
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerKind::Boxed => "boxed",
            AnswerKind::Stated => "stated",
            AnswerKind::YesNo => "yes_no",
            AnswerKind::Number => "number",
            AnswerKind::Sentence => "sentence",
        }
    }
}

/// A final answer: its text as written, how it was found, where (bytes of the text it was
/// found in) and its numeric value when it is one number.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub value: String,
    pub kind: AnswerKind,
    pub bytes: Range<usize>,
    pub number: Option<f64>,
}

/// The final answer of `steps`: searched in the answer part, or in all the text when the run
/// has no answer part.
pub fn of_steps(steps: &[Step]) -> Option<Answer> {
    let text = StepText::new(steps);
    let seg = segment(steps);
    let bytes = match seg.answer {
        Some(a) => text.bytes_of(a),
        None => 0..text.text.len(),
    };
    extract(&text.text, bytes)
}

/// The final answer stated in `text[bytes]`, if any text is there.
pub fn extract(text: &str, bytes: Range<usize>) -> Option<Answer> {
    let part = text.get(bytes.clone())?;
    if let Some(s) = stated_answer(text, bytes.clone()) {
        let kind = if s.boxed { AnswerKind::Boxed } else { AnswerKind::Stated };
        let value = s.value.trim().to_string();
        let number = value_number(&value);
        return Some(Answer { value, kind, bytes: s.bytes, number });
    }
    let sentences = sentences(part);
    let (first, last) = (sentences.first()?, sentences.last()?);
    for r in [first, last] {
        if let Some(yn) = yes_no(&part[r.clone()]) {
            let at = bytes.start + r.start;
            return Some(Answer {
                value: yn.to_string(),
                kind: AnswerKind::YesNo,
                bytes: at..bytes.start + r.end,
                number: None,
            });
        }
    }
    for r in sentences.iter().rev() {
        let nums = numbers_at(&part[r.clone()]);
        // A number in parentheses is a working, not the result ("12 (3 bags of 4)").
        if let Some((span, v, _)) = nums.iter().rev().find(|n| !n.2).or(nums.last()) {
            let at = bytes.start + r.start;
            return Some(Answer {
                value: part[r.start + span.start..r.start + span.end].to_string(),
                kind: AnswerKind::Number,
                bytes: at + span.start..at + span.end,
                number: Some(*v),
            });
        }
    }
    let r = last.clone();
    let value = part[r.clone()].split_whitespace().collect::<Vec<_>>().join(" ");
    let value = value
        .trim_matches(|c: char| c == '*' || c == '#' || c.is_whitespace())
        .trim_end_matches(['.', '。', '!', '！']);
    (!value.is_empty()).then(|| Answer {
        value: value.to_string(),
        kind: AnswerKind::Sentence,
        bytes: bytes.start + r.start..bytes.start + r.end,
        number: None,
    })
}

/// Whether two answers agree: by value when both are one number, as yes / no, as multisets
/// when both hold several numbers, else by normalized text.
pub fn agree(a: &Answer, b: &Answer) -> bool {
    if let (Some(x), Some(y)) = (a.number, b.number) {
        return (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0);
    }
    let (na, nb) = (normalized(&a.value), normalized(&b.value));
    let yn = |s: &str| matches!(s, "yes" | "no");
    if yn(&na) || yn(&nb) {
        return na == nb;
    }
    // Two lists of numbers ("3 and 4", "x = 4, y = 3") agree as multisets; one number
    // against several, or a working ("22 sheep (1 sheep) - 9"), does not.
    let (xa, xb) = (all_numbers(&a.value), all_numbers(&b.value));
    if xa.len() > 1 && xb.len() > 1 {
        return xa.len() == xb.len() && subset(&xa, &xb);
    }
    na == nb
}

/// The sentences of `part` as byte ranges, trimmed, without empty ones. A sentence ends at
/// `.`, `!`, `?` or `。` (a decimal point does not end one) or at a blank line.
fn sentences(part: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let b = part.as_bytes();
    for (i, c) in part.char_indices() {
        let end = match c {
            '!' | '?' | '。' | '！' | '？' => true,
            '.' => {
                !(i > 0
                    && b[i - 1].is_ascii_digit()
                    && b.get(i + 1).is_some_and(u8::is_ascii_digit))
            }
            '\n' => part[i + 1..].starts_with('\n'),
            _ => false,
        };
        if end {
            push_trimmed(&mut out, part, start..i + c.len_utf8());
            start = i + c.len_utf8();
        }
    }
    push_trimmed(&mut out, part, start..part.len());
    out
}

fn push_trimmed(out: &mut Vec<Range<usize>>, part: &str, r: Range<usize>) {
    let s = &part[r.clone()];
    if s.trim().is_empty() {
        return;
    }
    let lead = s.len() - s.trim_start().len();
    let trail = s.len() - s.trim_end().len();
    let r = r.start + lead..r.end - trail;
    // Only punctuation or markup (`**`, `---`, `.`) is no sentence.
    if part[r.clone()].chars().any(char::is_alphanumeric) {
        out.push(r);
    }
}

/// "yes" / "no" when `sentence` is one of them, or opens with one followed by punctuation.
fn yes_no(sentence: &str) -> Option<&'static str> {
    let s = sentence.trim_start_matches(|c: char| !c.is_alphanumeric());
    let lower = s.to_lowercase();
    for (w, v) in [("yes", "yes"), ("no", "no"), ("是的", "yes"), ("不是", "no")] {
        if let Some(rest) = lower.strip_prefix(w) {
            let next = rest.chars().next();
            if next.is_none_or(|c| !c.is_alphanumeric() && c != ' ' && c != '-' && c != '\'') {
                return Some(v);
            }
        }
    }
    None
}

/// The numbers of `s` with their byte spans and whether they stand inside parentheses:
/// `1,234` and `-3.5` are one number each, `3/4` is 0.75.
fn numbers_at(s: &str) -> Vec<(Range<usize>, f64, bool)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            _ => {}
        }
        let neg = b[i] == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit);
        let prev_alnum = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if (b[i].is_ascii_digit() || neg) && !prev_alnum {
            let start = i;
            i += usize::from(neg);
            let mut end = i;
            while end < b.len() {
                let c = b[end];
                let next_digit = b.get(end + 1).is_some_and(u8::is_ascii_digit);
                if c.is_ascii_digit() || ((c == b',' || c == b'.' || c == b'/') && next_digit) {
                    end += 1;
                } else {
                    break;
                }
            }
            if let Some(v) = parse_number(&s[start..end]) {
                out.push((start..end, v, depth > 0));
            }
            i = end;
            continue;
        }
        i += 1;
    }
    out
}

/// `1,234.5`, `-2`, `3/4` as a number.
fn parse_number(s: &str) -> Option<f64> {
    let s = s.replace(',', "");
    if let Some((n, d)) = s.split_once('/') {
        let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
        return (d != 0.0).then(|| n / d);
    }
    s.parse().ok()
}

/// The numbers of `s` after LaTeX fractions are rewritten as `a/b`, sorted.
fn all_numbers(s: &str) -> Vec<f64> {
    let mut v: Vec<f64> = numbers_at(&delatex(s)).into_iter().map(|n| n.1).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// `\frac{a}{b}` / `\dfrac{a}{b}` as `a/b`, `\$`, `$`, `\!`, `\,` and `\%` dropped.
fn delatex(s: &str) -> String {
    let mut out = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac");
    while let Some(at) = out.find("\\frac{") {
        let rest = &out[at + 6..];
        let Some(close) = rest.find('}') else { break };
        let num = rest[..close].to_string();
        let after = &rest[close + 1..];
        let Some(den_rest) = after.strip_prefix('{') else { break };
        let Some(dclose) = den_rest.find('}') else { break };
        let den = den_rest[..dclose].to_string();
        let tail = den_rest[dclose + 1..].to_string();
        out = format!("{}{num}/{den}{tail}", &out[..at]);
    }
    for x in ["\\$", "$", "\\!", "\\,", "\\%", "\\left", "\\right"] {
        out = out.replace(x, "");
    }
    out
}

/// The value of an answer when it is one number: `42`, `$1,000`, `\frac{1}{2}`, `x = 5`,
/// `50%`, `42 sheep`; `None` for `3 and 4` or text.
fn value_number(value: &str) -> Option<f64> {
    let clean = delatex(value);
    let part = clean.rsplit_once('=').map_or(clean.as_str(), |(_, r)| r);
    let nums = numbers_at(part);
    let [(_, v, _)] = nums.as_slice() else { return None };
    // A number with words after it is a value with a unit ("42 sheep"), but not "3 of 4".
    Some(*v)
}

/// Lower case, markup and whitespace dropped, trailing punctuation dropped.
fn normalized(s: &str) -> String {
    delatex(s)
        .replace("\\text{", "{")
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '{' | '}' | '*' | '"' | '\'' | '`'))
        .collect::<String>()
        .trim_end_matches(['.', '!', '?', '。'])
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ans(s: &str) -> Option<Answer> {
        extract(s, 0..s.len())
    }

    fn check(text: &str, kind: AnswerKind, value: &str) {
        let a = ans(text).unwrap_or_else(|| panic!("no answer in {text:?}"));
        assert_eq!((a.kind, a.value.as_str()), (kind, value), "{text:?}");
        assert_eq!(&text[a.bytes.clone()].trim_matches(['*', '.']), &a.value.as_str(), "{text:?}");
    }

    #[test]
    fn answers_of_real_styles_are_found() {
        use AnswerKind::*;
        let table: &[(&str, AnswerKind, &str)] = &[
            ("So the total is $\\boxed{\\frac{3}{4}}$.", Boxed, "\\frac{3}{4}"),
            ("Thus, the final answer is \\boxed{42}.", Boxed, "42"),
            ("Therefore, the answer is 17.", Stated, "17"),
            ("**Answer:** 3,600 km", Stated, "3,600 km"),
            ("Answer: Paris", Stated, "Paris"),
            ("答案是 12。", Stated, "12"),
            ("The farmer has 2 sheep left.", Number, "2"),
            ("Each bag holds 4 apples, so she has 12 apples in total (3 bags of 4).", Number, "12"),
            (
                "Yes, 97 is a prime number because it has no divisors besides 1 and itself.",
                YesNo,
                "yes",
            ),
            ("We check all divisors up to 9.\n\nNo.", YesNo, "no"),
            ("**No** — 91 = 7 × 13.", YesNo, "no"),
            ("The speed is 2.5 m/s.", Number, "2.5"),
            ("It would take -3 degrees. Hope this helps!", Number, "-3"),
            (
                "The capital of Australia is Canberra.",
                Sentence,
                "The capital of Australia is Canberra",
            ),
        ];
        for (text, kind, value) in table {
            let a = ans(text).unwrap_or_else(|| panic!("no answer in {text:?}"));
            assert_eq!((a.kind, a.value.as_str()), (*kind, *value), "{text:?}");
        }
        check("The farmer has 2 sheep left.", Number, "2");
        assert_eq!(ans("The farmer has 2 sheep left.").unwrap().number, Some(2.0));
        assert!(ans("   \n").is_none());
        assert!(ans("").is_none());
        // "no idea" is not a no.
        assert_eq!(ans("no idea").unwrap().kind, Sentence);
    }

    #[test]
    fn answers_compare_by_value() {
        let same = |x: &str, y: &str| agree(&ans(x).unwrap(), &ans(y).unwrap());
        assert!(same("The answer is \\boxed{0.5}.", "So the answer is \\frac{1}{2}."));
        assert!(same("Answer: 1,000", "The answer is 1000."));
        assert!(same("The farmer has 2 sheep left.", "\\boxed{2}"));
        assert!(same("The answer is $42$.", "There are 42 students."));
        assert!(same("Answer: x = 5", "\\boxed{5}"));
        assert!(!same("The farmer has 2 sheep left.", "The farmer has 9 sheep left."));
        assert!(same("Yes, it is prime.", "The answer is yes."));
        assert!(!same("Yes, it is prime.", "No."));
        assert!(same("The capital is Canberra.", "the capital is  canberra"));
        assert!(!same("The capital is Canberra.", "The capital is Sydney."));
        assert!(same("The answer is 3 and 4.", "Answer: 4 and 3"));
        assert!(!same("The answer is 3 and 4.", "Answer: 4"));
        assert!(!same("Answer: 22 sheep (1 sheep) - 9 sheep (9 sheep", "\\boxed{9}"));
    }
}
