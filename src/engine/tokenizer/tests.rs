//! Unit tests of the GGUF tokenizer on tiny hand-made byte-level vocabularies.

use super::*;

/// The byte-level alphabet character of byte `b`.
fn byte_char(b: u8) -> char {
    (0..=400u32).filter_map(char::from_u32).find(|c| bytes::char_to_byte(*c) == Some(b)).unwrap()
}

/// A vocabulary of the 256 byte tokens (id = byte value), then one token per merge result, then
/// `extra` tokens with their GGUF types.
fn spec(pre: Option<&str>, merges: &[&str], extra: &[(&str, i64)]) -> VocabSpec {
    let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_char(b).to_string()).collect();
    let mut types = vec![1i64; 256];
    for m in merges {
        let joined = m.replacen(' ', "", 1);
        if !tokens.contains(&joined) {
            tokens.push(joined);
            types.push(1);
        }
    }
    for (t, ty) in extra {
        tokens.push((*t).to_owned());
        types.push(*ty);
    }
    VocabSpec {
        model: "gpt2".into(),
        pre: pre.map(str::to_owned),
        tokens,
        token_types: types,
        merges: merges.iter().map(|m| (*m).to_owned()).collect(),
        ..VocabSpec::default()
    }
}

fn build(spec: &VocabSpec) -> Tokenizer {
    Tokenizer::from_spec(spec, false).unwrap().0
}

/// The vocabulary strings of the ids `text` encodes to.
fn pieces(tk: &Tokenizer, spec: &VocabSpec, text: &str) -> Vec<String> {
    tk.encode(text).unwrap().into_iter().map(|id| spec.tokens[id as usize].clone()).collect()
}

fn round_trip(tk: &Tokenizer, text: &str) -> Vec<u8> {
    tk.encode(text).unwrap().into_iter().flat_map(|id| tk.token_bytes(id).to_vec()).collect()
}

const TEXTS: &[&str] = &[
    "Hello, world! It's 2025.",
    "  two  spaces\n\nnew lines\r\n\ttab",
    "中文和日本語のテキスト, 한국어",
    "emoji 🤔🎉 and accents café naïve",
    "<think>\nLet me think.\n</think>\n\nAnswer: 42<|im_end|>",
    "numbers 1234567 and 3.14159",
    "we'll they're I'M",
];

#[test]
fn every_pre_tokenizer_round_trips_bytes() {
    for pre in [
        "smollm",
        "qwen2",
        "deepseek-r1-qwen",
        "llama-bpe",
        "llama3",
        "llama-v3",
        "gpt-2",
        "deepseek-v3",
        "deepseek-llm",
        "deepseek-coder",
        "default",
    ] {
        let s = spec(
            Some(pre),
            &["Ġ t", "h e", "Ġt he", "1 2"],
            &[("<|im_end|>", 3), ("<think>", 4), ("</think>", 4)],
        );
        let tk = build(&s);
        for text in TEXTS {
            assert_eq!(String::from_utf8(round_trip(&tk, text)).unwrap(), *text, "pre '{pre}'");
        }
    }
}

#[test]
fn smollm_splits_digits_but_gpt2_does_not() {
    let s = spec(Some("smollm"), &["1 2"], &[]);
    assert_eq!(pieces(&build(&s), &s, "12"), ["1", "2"]);
    let s = spec(Some("gpt-2"), &["1 2"], &[]);
    assert_eq!(pieces(&build(&s), &s, "12"), ["12"]);
}

#[test]
fn smollm_keeps_gpt2_space_prefix_and_contractions() {
    let s = spec(Some("smollm"), &["Ġ a", "' s", "a s"], &[]);
    let tk = build(&s);
    assert_eq!(pieces(&tk, &s, " a's"), ["Ġa", "'s"]);
    // "as" would merge, but "'s" is split off first.
    assert_eq!(pieces(&tk, &s, "as"), ["as"]);
}

#[test]
fn llama3_groups_digits_by_three() {
    let merges = ["3 4", "1 2", "12 3"];
    let s = spec(Some("llama-bpe"), &merges, &[]);
    assert_eq!(pieces(&build(&s), &s, "1234"), ["123", "4"]);
    let s = spec(Some("gpt-2"), &merges, &[]);
    assert_eq!(pieces(&build(&s), &s, "1234"), ["12", "34"]);
}

#[test]
fn llama3_and_qwen2_attach_one_punctuation_char_to_letters() {
    for pre in ["llama-bpe", "qwen2"] {
        let s = spec(Some(pre), &["! h"], &[]);
        assert_eq!(pieces(&build(&s), &s, "!h"), ["!h"], "{pre}");
    }
    let s = spec(Some("gpt-2"), &["! h"], &[]);
    assert_eq!(pieces(&build(&s), &s, "!h"), ["!", "h"]);
}

#[test]
fn llama3_ignores_merges_for_whole_vocabulary_words() {
    // "hello" is a token no merge produces: llama-bpe takes it whole, qwen2 cannot reach it.
    let s = spec(Some("llama-bpe"), &[], &[("hello", 1)]);
    assert_eq!(pieces(&build(&s), &s, "hello"), ["hello"]);
    let s = spec(Some("qwen2"), &[], &[("hello", 1)]);
    assert_eq!(pieces(&build(&s), &s, "hello"), ["h", "e", "l", "l", "o"]);
}

#[test]
fn qwen2_splits_single_digits_and_normalizes_nfc() {
    let s = spec(Some("deepseek-r1-qwen"), &["1 2"], &[]);
    let tk = build(&s);
    assert_eq!(pieces(&tk, &s, "12"), ["1", "2"]);
    // e + COMBINING ACUTE becomes U+00E9 (C3 A9) under NFC.
    assert_eq!(tk.encode("e\u{301}").unwrap(), [0xC3, 0xA9]);
    let s = spec(Some("llama-bpe"), &[], &[]);
    assert_eq!(build(&s).encode("e\u{301}").unwrap(), [b'e' as u32, 0xCC, 0x81]);
}

#[test]
fn deepseek_v3_splits_cjk_runs_and_punctuated_words() {
    let s = spec(Some("deepseek-v3"), &[". a", "1 2", "12 3"], &[]);
    let tk = build(&s);
    assert_eq!(pieces(&tk, &s, ".a"), [".a"]);
    assert_eq!(pieces(&tk, &s, "1234"), ["123", "4"]);
    let s = spec(Some("gpt-2"), &[". a"], &[]);
    assert_eq!(pieces(&build(&s), &s, ".a"), [".", "a"]);
}

#[test]
fn deepseek_llm_splits_newlines_and_digit_runs() {
    let s = spec(Some("deepseek-llm"), &["Ċ Ċ", "1 2", "12 3", "123 4"], &[]);
    let tk = build(&s);
    // Every newline is its own piece, so they never merge.
    assert_eq!(pieces(&tk, &s, "\n\n"), ["Ċ", "Ċ"]);
    assert_eq!(pieces(&tk, &s, "1234"), ["1234"]);
}

#[test]
fn added_tokens_are_matched_and_think_stays_visible() {
    let s = spec(
        Some("qwen2"),
        &[],
        &[("<|im_end|>", 3), ("<think>", 4), ("</think>", 4), ("[PAD0]", 5)],
    );
    let tk = build(&s);
    let end = tk.token_id("<|im_end|>").unwrap();
    let think = tk.token_id("<think>").unwrap();
    let close = tk.token_id("</think>").unwrap();
    assert_eq!(tk.encode("<think>a</think><|im_end|>").unwrap(), [think, b'a' as u32, close, end]);
    assert_eq!(tk.token_bytes(think), b"<think>");
    assert_eq!(tk.token_display(close), "</think>");
    // USER_DEFINED tokens are not special: a decode that skips special tokens keeps them.
    let ids = [think, b'a' as u32, close, end];
    let decoded = tk.inner.decode(&ids, true).unwrap();
    assert!(decoded.contains("<think>") && decoded.contains("</think>"), "{decoded:?}");
    assert!(!decoded.contains("<|im_end|>"));
    // UNUSED padding tokens are never matched in text.
    let pad = tk.token_id("[PAD0]").unwrap();
    assert!(!tk.encode("[PAD0]").unwrap().contains(&pad));
    assert_eq!(tk.vocab_size(), s.tokens.len());
}

#[test]
fn token_bytes_and_display_of_partial_utf8() {
    let s = spec(Some("qwen2"), &["ä ¸"], &[]);
    let tk = build(&s);
    let partial = tk.token_id("ä¸").unwrap();
    assert_eq!(tk.token_bytes(partial), [0xE4, 0xB8]);
    assert_eq!(tk.token_display(partial), "\\xE4\\xB8");
    assert_eq!(tk.token_display(b' ' as u32), " ");
    assert_eq!(tk.token_bytes(u32::MAX), b"");
    assert_eq!(tk.token_display(u32::MAX), "");
    let mut d = StreamDecoder::new();
    let text: String =
        tk.encode("中").unwrap().iter().map(|id| d.push(tk.token_bytes(*id))).collect();
    assert_eq!(text, "中");
}

#[test]
fn stop_ids_follow_llama_cpp() {
    let extra = [
        ("<|endoftext|>", 3),
        ("<|im_start|>", 3),
        ("<|im_end|>", 3),
        ("<｜end▁of▁sentence｜>", 3),
        ("<|fim_pad|>", 3),
        ("<think>", 4),
    ];
    let mut s = spec(Some("qwen2"), &[], &extra);
    let id = |s: &VocabSpec, t: &str| s.tokens.iter().position(|x| x == t).unwrap() as u32;
    s.eos = Some(id(&s, "<｜end▁of▁sentence｜>"));
    let tk = build(&s);
    let mut want = vec![
        id(&s, "<|endoftext|>"),
        id(&s, "<|im_end|>"),
        id(&s, "<｜end▁of▁sentence｜>"),
        id(&s, "<|fim_pad|>"),
    ];
    want.sort_unstable();
    assert_eq!(tk.stop_ids(), want);
    assert!(!tk.stop_ids().contains(&id(&s, "<|im_start|>")));

    // With no eos/eot keys, DeepSeek's end-of-sentence token is found by name as the eot.
    let s = spec(Some("deepseek-v3"), &[], &[("<｜end▁of▁sentence｜>", 3)]);
    assert_eq!(build(&s).stop_ids(), [256]);

    // gpt-oss: <|end|> is not a stop when <|return|> and <|call|> exist.
    let s = spec(Some("gpt-2"), &[], &[("<|end|>", 3), ("<|return|>", 3), ("<|call|>", 3)]);
    assert_eq!(build(&s).stop_ids(), [257, 258]);
    let s = spec(Some("gpt-2"), &[], &[("<|end|>", 3)]);
    assert_eq!(build(&s).stop_ids(), [256]);
}

#[test]
fn bos_and_add_bos_defaults() {
    let mut s = spec(Some("llama-bpe"), &[], &[("<|begin_of_text|>", 3)]);
    s.bos = Some(256);
    let tk = build(&s);
    assert_eq!(tk.bos(), Some(256));
    assert!(tk.add_bos());
    s.add_bos = Some(false);
    assert!(!build(&s).add_bos());
    let mut s = spec(Some("qwen2"), &[], &[]);
    assert!(!build(&s).add_bos());
    s.bos = Some(9999);
    let (tk, warnings) = Tokenizer::from_spec(&s, false).unwrap();
    assert_eq!(tk.bos(), None);
    assert!(warnings[0].contains("'tokenizer.ggml.bos_token_id'"), "{warnings:?}");
}

#[test]
fn unknown_pre_is_an_error_unless_forced() {
    let s = spec(Some("mystery-bpe"), &[], &[]);
    let err = Tokenizer::from_spec(&s, false).unwrap_err().to_string();
    assert!(err.contains("'mystery-bpe'") && err.contains("'tokenizer.ggml.pre'"), "{err}");
    assert!(err.contains("'qwen2'") && err.contains("'smollm'"), "{err}");
    let (tk, warnings) = Tokenizer::from_spec(&s, true).unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("'mystery-bpe'"));
    assert_eq!(String::from_utf8(round_trip(&tk, "it's 12")).unwrap(), "it's 12");
}

#[test]
fn missing_pre_warns_and_uses_the_default() {
    for pre in [None, Some("")] {
        let s = spec(pre, &[], &[]);
        let (_, warnings) = Tokenizer::from_spec(&s, false).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("'tokenizer.ggml.pre'"));
    }
}

#[test]
fn non_bpe_and_malformed_vocabularies_are_errors() {
    let mut s = spec(Some("gpt-2"), &[], &[]);
    s.model = "llama".into();
    let err = Tokenizer::from_spec(&s, false).unwrap_err().to_string();
    assert!(err.contains("'llama'") && err.contains("'tokenizer.ggml.model'"), "{err}");
    let mut s = spec(Some("gpt-2"), &["a b"], &[]);
    s.token_types.pop();
    assert!(Tokenizer::from_spec(&s, false)
        .unwrap_err()
        .to_string()
        .contains("'tokenizer.ggml.token_type'"));
    let mut s = spec(Some("gpt-2"), &["a b"], &[]);
    s.merges.push("nospace".into());
    let err = Tokenizer::from_spec(&s, false).unwrap_err().to_string();
    assert!(err.contains("'nospace'"), "{err}");
}

#[test]
fn json_override_must_match_the_gguf_vocabulary() {
    let s = spec(Some("qwen2"), &["Ġ t"], &[("<think>", 4)]);
    let tk = build(&s);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    tk.inner.save(&path, false).unwrap();
    let over = Tokenizer::from_json_file(&path, &s).unwrap();
    assert_eq!(over.encode(" t<think>").unwrap(), tk.encode(" t<think>").unwrap());
    assert_eq!(over.token_bytes(256), b" t");

    let mut smaller = s.clone();
    smaller.tokens.truncate(200);
    smaller.token_types.truncate(200);
    let err = Tokenizer::from_json_file(&path, &smaller).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json") && err.contains("200"), "{err}");

    let mut renamed = s.clone();
    renamed.tokens[65] = "Z".into();
    let err = Tokenizer::from_json_file(&path, &renamed).unwrap_err().to_string();
    assert!(err.contains("token 65"), "{err}");
    let err =
        Tokenizer::from_json_file(&dir.path().join("missing.json"), &s).unwrap_err().to_string();
    assert!(err.contains("missing.json"), "{err}");
}
