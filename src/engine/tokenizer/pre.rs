//! The pre-tokenizer table: which regex sequence, merge rule and BOS default llama.cpp uses for
//! each `tokenizer.ggml.pre` name (llama.cpp `src/llama-vocab.cpp`, `load()` and the
//! `llm_tokenizer_bpe` constructor). Pure data; it must not depend on anything but `std`.

/// llama.cpp's GPT-2 regex (its version has no trailing `|\s+`; unmatched text stays a piece).
pub(super) const GPT2: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";

const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

const DEEPSEEK3_MAIN: &str = r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##;

/// DeepSeek-LLM's Latin/Greek/Cyrillic/... letter class, as llama.cpp lists it. Characters that
/// Unicode normalization would change (U+1F7D, U+1FBE, U+1FD3, U+1FDB, U+2126, U+212A) are
/// written as escapes so that no editor can silently turn them into their canonical forms.
const DEEPSEEK_LLM_LETTERS: &str = "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u{1f7d}ᾀ-ᾴᾶ-ᾼ\u{1fbe}ῂ-ῄῆ-ῌῐ-\u{1fd3}ῖ-\u{1fdb}ῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u{2126}ℨ\u{212a}-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ\u{10400}-\u{1044f}𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+";

/// One pre-tokenizer family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PreKind {
    Llama3,
    Qwen2,
    Smollm,
    Gpt2,
    DeepseekV3,
    DeepseekLlm,
    DeepseekCoder,
    Chatglm4,
    /// llama.cpp's `default` (also used for an empty or absent name).
    Default,
}

/// The names this build knows, grouped by family (for error messages and lookup).
const NAMES: &[(&str, PreKind)] = &[
    ("llama-bpe", PreKind::Llama3),
    ("llama3", PreKind::Llama3),
    ("llama-v3", PreKind::Llama3),
    ("falcon3", PreKind::Llama3),
    ("falcon-h1", PreKind::Llama3),
    ("pixtral", PreKind::Llama3),
    ("midm-2.0", PreKind::Llama3),
    ("lfm2", PreKind::Llama3),
    ("dbrx", PreKind::Llama3),
    ("smaug-bpe", PreKind::Llama3),
    ("qwen2", PreKind::Qwen2),
    ("deepseek-r1-qwen", PreKind::Qwen2),
    ("kormo", PreKind::Qwen2),
    ("megrez", PreKind::Qwen2),
    ("stablelm2", PreKind::Qwen2),
    ("hunyuan", PreKind::Qwen2),
    ("smollm", PreKind::Smollm),
    ("starcoder", PreKind::Smollm),
    ("refact", PreKind::Smollm),
    ("command-r", PreKind::Smollm),
    ("codeshell", PreKind::Smollm),
    ("exaone", PreKind::Smollm),
    ("minerva-7b", PreKind::Smollm),
    ("gpt-2", PreKind::Gpt2),
    ("phi-2", PreKind::Gpt2),
    ("mpt", PreKind::Gpt2),
    ("olmo", PreKind::Gpt2),
    ("jais", PreKind::Gpt2),
    ("exaone4", PreKind::Gpt2),
    ("deepseek-v3", PreKind::DeepseekV3),
    ("hunyuan-dense", PreKind::DeepseekV3),
    ("deepseek-llm", PreKind::DeepseekLlm),
    ("deepseek-coder", PreKind::DeepseekCoder),
    ("glm4", PreKind::Chatglm4),
    ("chatglm-bpe", PreKind::Chatglm4),
    ("default", PreKind::Default),
];

/// The family for a `tokenizer.ggml.pre` name, if this build knows it.
pub(super) fn lookup(name: &str) -> Option<PreKind> {
    NAMES.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
}

/// All known names, comma separated, for error messages.
pub(super) fn known_names() -> String {
    NAMES.iter().map(|(n, _)| format!("'{n}'")).collect::<Vec<_>>().join(", ")
}

impl PreKind {
    /// The regexes applied in order; each splits the pieces the previous ones left (matches and
    /// the text between them both become pieces), then each piece is byte-level encoded.
    pub(super) fn regexes(self) -> Vec<&'static str> {
        match self {
            PreKind::Llama3 | PreKind::Chatglm4 => vec![LLAMA3],
            PreKind::Qwen2 => vec![QWEN2],
            PreKind::Smollm => vec![r"\p{N}", GPT2],
            PreKind::Gpt2 => vec![GPT2],
            PreKind::DeepseekV3 => vec![r"\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+", DEEPSEEK3_MAIN],
            PreKind::DeepseekLlm => vec![
                r"[\r\n]",
                DEEPSEEK_LLM_LETTERS,
                r"\s?[!-/:-~！-／：-～‘-‟　-。]+",
                r"\s+$",
                "[一-龥ࠀ-一가-퟿]+",
                r"\p{N}+",
            ],
            PreKind::DeepseekCoder => {
                vec![r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", "[一-龥ࠀ-一가-퟿]+", r"\p{N}"]
            }
            PreKind::Default => {
                vec![r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"]
            }
        }
    }

    /// llama.cpp's `ignore_merges`: a whole piece that is a vocabulary token is taken as is.
    pub(super) fn ignore_merges(self) -> bool {
        self == PreKind::Llama3
    }

    /// llama.cpp's BOS default when the GGUF has no `tokenizer.ggml.add_bos_token`.
    pub(super) fn add_bos_default(self) -> bool {
        self == PreKind::Llama3
    }

    /// Hugging Face's Qwen2 tokenizers NFC-normalize their input.
    pub(super) fn nfc(self) -> bool {
        self == PreKind::Qwen2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve_to_their_family() {
        assert_eq!(lookup("llama-bpe"), Some(PreKind::Llama3));
        assert_eq!(lookup("llama3"), Some(PreKind::Llama3));
        assert_eq!(lookup("llama-v3"), Some(PreKind::Llama3));
        assert_eq!(lookup("deepseek-r1-qwen"), Some(PreKind::Qwen2));
        assert_eq!(lookup("smollm"), Some(PreKind::Smollm));
        assert_eq!(lookup("nonsense"), None);
        assert!(known_names().contains("'deepseek-v3'"));
    }

    #[test]
    fn every_regex_compiles() {
        for (name, kind) in NAMES {
            for r in kind.regexes() {
                let split = tokenizers::pre_tokenizers::split::Split::new(
                    tokenizers::pre_tokenizers::split::SplitPattern::Regex(r.to_string()),
                    tokenizers::SplitDelimiterBehavior::Isolated,
                    false,
                );
                assert!(split.is_ok(), "{name}: {r}");
            }
        }
    }
}
