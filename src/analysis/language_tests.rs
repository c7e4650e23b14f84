use super::*;
use crate::analysis::config::AnalysisConfig;

pub(crate) use super::tests_text::{CODE_COT, MIXED_COT};

fn cfg() -> LanguageConfig {
    AnalysisConfig::defaults().unwrap().language
}

#[test]
fn mixed_chinese_english_reasoning_has_one_switch_to_english() {
    let ch = chunks(MIXED_COT, 0..MIXED_COT.len(), &cfg(), None);
    assert_eq!(dominant(&ch).as_deref(), Some("cmn"), "{ch:?}");
    let sw = switches(&ch, "cmn", 4);
    assert_eq!(sw.len(), 1, "{sw:?}");
    assert_eq!(sw[0].to, "eng");
    let english = &MIXED_COT[sw[0].bytes.clone()];
    assert!(
        english.starts_with("Let me solve") && english.ends_with("answer quickly"),
        "{english}"
    );
    let m = mix(&ch);
    assert_eq!(m.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(), vec!["cmn", "eng"]);
    let eng = m[1].1;
    assert_eq!(eng, english.split_whitespace().count());
}

#[test]
fn code_and_math_are_not_language_switches() {
    let ch = chunks(CODE_COT, 0..CODE_COT.len(), &cfg(), Some("eng"));
    assert!(ch.iter().all(|c| c.lang == "eng"), "{ch:?}");
    assert!(switches(&ch, "eng", 4).is_empty());
    // The Chinese comment inside the fence is not seen at all.
    assert!(!ch.iter().any(|c| CODE_COT[c.bytes.clone()].contains("返回")));
    // No chunk reaches into code or math.
    let masks = masked(CODE_COT, 0..CODE_COT.len());
    for c in &ch {
        assert!(masks.iter().all(|m| m.end <= c.bytes.start || c.bytes.end <= m.start), "{c:?}");
    }
}

#[test]
fn masks_cover_fences_inline_code_and_math() {
    let t = "a `x y` b $z$ c ```\nq\n``` d \\(w\\) e $ unclosed";
    let m: Vec<&str> = masked(t, 0..t.len()).into_iter().map(|r| &t[r]).collect();
    assert_eq!(m, vec!["`x y`", "$z$", "```\nq\n```", "\\(w\\)"]);
}

#[test]
fn a_french_sentence_in_english_is_found_and_short_bits_are_not() {
    let t = "We add the two numbers and then divide the result by two to get the mean. \
Maintenant je vais vérifier le calcul avec beaucoup de soin pour être sûr. \
OK merci. Then we check the result against the expected value.";
    let ch = chunks(t, 0..t.len(), &cfg(), Some("eng"));
    let sw = switches(&ch, "eng", 4);
    assert_eq!(sw.len(), 1, "{ch:?}");
    assert_eq!(sw[0].to, "fra");
    assert!(t[sw[0].bytes.clone()].starts_with("Maintenant"));
}

#[test]
fn japanese_kana_and_korean_are_told_apart_by_script() {
    let t = "これはペンです。 한국어 문장입니다";
    let ch = chunks(t, 0..t.len(), &cfg(), None);
    let langs: Vec<&str> = ch.iter().map(|c| c.lang.as_str()).collect();
    assert!(langs.contains(&"jpn") && langs.contains(&"kor"), "{langs:?}");
    assert!(is_latin_lang("eng") && !is_latin_lang("cmn"));
}
