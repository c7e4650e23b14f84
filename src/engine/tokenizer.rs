//! The tokenizer: rebuilds a `tokenizers` byte-level BPE tokenizer from GGUF metadata the way
//! llama.cpp reads it (pre-tokenizer regexes per `tokenizer.ggml.pre`, CONTROL tokens special,
//! USER_DEFINED tokens such as `<think>` plain added tokens that stay visible), and owns the
//! per-token byte and display tables and the end-of-generation ids.
//!
//! It depends on `engine::gguf` and `engine::error` only; it must not know about models,
//! sampling, the store or the terminal.

mod bytes;
mod pre;

use std::collections::HashMap;
use std::path::Path;

use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

pub use bytes::StreamDecoder;
use pre::PreKind;

use super::error::{Error, Result};
use super::gguf::Gguf;

/// GGUF token types (`tokenizer.ggml.token_type`).
const TYPE_UNKNOWN: i64 = 2;
const TYPE_CONTROL: i64 = 3;
const TYPE_USER_DEFINED: i64 = 4;
const TYPE_UNUSED: i64 = 5;

/// Token names llama.cpp treats as end of generation whatever the metadata says.
const EOG_NAMES: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
];
/// Names llama.cpp takes as the end-of-turn token when `eot_token_id` is absent.
const EOT_NAMES: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
/// Fill-in-the-middle pad/repo/separator tokens, which llama.cpp also stops on.
const FIM_EOG_NAMES: &[&[&str]] = &[
    &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>"],
    &["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"],
    &["<|file_sep|>"],
];

/// The tokenizer part of a GGUF file's metadata.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VocabSpec {
    pub model: String,
    pub pre: Option<String>,
    pub tokens: Vec<String>,
    pub token_types: Vec<i64>,
    pub merges: Vec<String>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub add_bos: Option<bool>,
    pub chat_template: Option<String>,
}

impl VocabSpec {
    /// Reads the `tokenizer.*` keys. Missing optional keys are `None`/empty; keys of the wrong
    /// type are errors naming the key.
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let opt_str = |key: &str| -> Result<Option<String>> {
            g.get(key).map(|_| g.str(key).map(str::to_owned)).transpose()
        };
        let opt_id = |key: &str| -> Result<Option<u32>> {
            g.opt_usize(key)?
                .map(|v| {
                    u32::try_from(v).map_err(|_| {
                        Error::metadata(key, format!("'{v}' is too large for a token id"))
                    })
                })
                .transpose()
        };
        let opt_array = |key: &str| -> Result<Vec<String>> {
            if g.get(key).is_some() {
                g.str_array(key)
            } else {
                Ok(Vec::new())
            }
        };
        Ok(VocabSpec {
            model: g.str("tokenizer.ggml.model")?.to_owned(),
            pre: opt_str("tokenizer.ggml.pre")?,
            tokens: g.str_array("tokenizer.ggml.tokens")?,
            token_types: if g.get("tokenizer.ggml.token_type").is_some() {
                g.i64_array("tokenizer.ggml.token_type")?
            } else {
                Vec::new()
            },
            merges: opt_array("tokenizer.ggml.merges")?,
            bos: opt_id("tokenizer.ggml.bos_token_id")?,
            eos: opt_id("tokenizer.ggml.eos_token_id")?,
            eot: opt_id("tokenizer.ggml.eot_token_id")?,
            eom: opt_id("tokenizer.ggml.eom_token_id")?,
            add_bos: g.opt_bool("tokenizer.ggml.add_bos_token"),
            chat_template: opt_str("tokenizer.chat_template")?,
        })
    }

    /// The GGUF token type of `id` (NORMAL when the file has no type list).
    fn token_type(&self, id: usize) -> i64 {
        self.token_types.get(id).copied().unwrap_or(1)
    }
}

/// A byte-level BPE tokenizer plus the per-token tables the engine and the UI need.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Concatenated bytes of every token; token `i` is `bytes[ends[i-1]..ends[i]]`.
    bytes: Vec<u8>,
    byte_ends: Vec<usize>,
    display: String,
    display_ends: Vec<usize>,
    ids: HashMap<String, u32>,
    bos: Option<u32>,
    add_bos: bool,
    stop: Vec<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.bos)
            .field("add_bos", &self.add_bos)
            .field("stop", &self.stop)
            .finish_non_exhaustive()
    }
}

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

impl Tokenizer {
    /// Builds from GGUF metadata. Unknown `pre` -> Err naming it and listing the known ones,
    /// unless `force` (then a warning string is returned and the GPT-2 regex is used).
    /// Returns warnings.
    pub fn from_spec(spec: &VocabSpec, force: bool) -> Result<(Self, Vec<String>)> {
        let mut warnings = Vec::new();
        check_spec(spec)?;
        let kind = match spec.pre.as_deref() {
            None | Some("") => {
                warnings.push(
                    "'tokenizer.ggml.pre' is missing: using llama.cpp's default pre-tokenizer; \
                     tokenization may differ from the model's own"
                        .to_owned(),
                );
                PreKind::Default
            }
            Some(name) => match pre::lookup(name) {
                Some(kind) => kind,
                None if force => {
                    warnings.push(format!(
                        "unknown pre-tokenizer '{name}': using the GPT-2 regex because it was forced; \
                         tokenization may differ from the model's own"
                    ));
                    PreKind::Gpt2
                }
                None => {
                    return Err(Error::metadata(
                        "tokenizer.ggml.pre",
                        format!(
                            "'{name}' is not a pre-tokenizer thinkdbg knows (known: {})",
                            pre::known_names()
                        ),
                    ))
                }
            },
        };
        let inner = build_bpe(spec, kind)?;
        let tk = Self::with_inner(inner, spec, kind.add_bos_default(), &mut warnings);
        Ok((tk, warnings))
    }

    /// Uses a HF tokenizer.json instead of the GGUF vocab (the override option); ids must agree
    /// with the GGUF vocab size.
    pub fn from_json_file(path: &Path, spec: &VocabSpec) -> Result<Self> {
        let mut inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| Error::Tokenizer(format!("cannot load '{}': {e}", path.display())))?;
        inner.with_truncation(None).map_err(tok_err)?;
        inner.with_padding(None);
        let n = inner.get_vocab_size(true);
        if n > spec.tokens.len() {
            return Err(Error::Tokenizer(format!(
                "'{}' has {n} tokens but the model's GGUF vocabulary has {}",
                path.display(),
                spec.tokens.len()
            )));
        }
        for (id, gguf_token) in spec.tokens.iter().enumerate() {
            let Ok(id32) = u32::try_from(id) else { break };
            if let Some(json_token) = inner.id_to_token(id32) {
                if &json_token != gguf_token {
                    return Err(Error::Tokenizer(format!(
                        "'{}' calls token {id} '{json_token}' but the model's GGUF vocabulary calls it '{gguf_token}'",
                        path.display()
                    )));
                }
            }
        }
        let add_bos_default =
            spec.pre.as_deref().and_then(pre::lookup).is_some_and(PreKind::add_bos_default);
        Ok(Self::with_inner(inner, spec, add_bos_default, &mut Vec::new()))
    }

    fn with_inner(
        inner: tokenizers::Tokenizer,
        spec: &VocabSpec,
        add_bos_default: bool,
        warnings: &mut Vec<String>,
    ) -> Self {
        let n = spec.tokens.len();
        let mut bytes = Vec::new();
        let mut byte_ends = Vec::with_capacity(n);
        let mut display = String::new();
        let mut display_ends = Vec::with_capacity(n);
        let mut ids = HashMap::with_capacity(n);
        for (i, token) in spec.tokens.iter().enumerate() {
            let raw = match spec.token_type(i) {
                TYPE_UNKNOWN | TYPE_CONTROL | TYPE_USER_DEFINED | TYPE_UNUSED => {
                    token.as_bytes().to_vec()
                }
                _ => bytes::decode_byte_level(token),
            };
            display.push_str(&bytes::display(&raw));
            display_ends.push(display.len());
            bytes.extend_from_slice(&raw);
            byte_ends.push(bytes.len());
            if let Ok(id) = u32::try_from(i) {
                ids.insert(token.clone(), id);
            }
        }
        let valid = |key: &str, id: Option<u32>, warnings: &mut Vec<String>| -> Option<u32> {
            let id = id?;
            if (id as usize) < n {
                Some(id)
            } else {
                warnings.push(format!(
                    "'{key}' is {id}, outside the vocabulary of {n} tokens; ignored"
                ));
                None
            }
        };
        let bos = valid("tokenizer.ggml.bos_token_id", spec.bos, warnings);
        let eos = valid("tokenizer.ggml.eos_token_id", spec.eos, warnings);
        let eot = valid("tokenizer.ggml.eot_token_id", spec.eot, warnings);
        let eom = valid("tokenizer.ggml.eom_token_id", spec.eom, warnings);
        let stop = stop_ids(&ids, eos, eot, eom);
        Tokenizer {
            inner,
            bytes,
            byte_ends,
            display,
            display_ends,
            ids,
            bos,
            add_bos: spec.add_bos.unwrap_or(add_bos_default),
            stop,
        }
    }

    /// Tokenizes text; added/special tokens written in the text are matched (like llama.cpp
    /// parse_special=true); never adds BOS/EOS.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(tok_err)?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn vocab_size(&self) -> usize {
        self.byte_ends.len()
    }

    /// The exact bytes a token stands for (byte-level BPE decoded; added tokens as their UTF-8
    /// text). Precomputed table, O(1). Ids outside the vocabulary give no bytes.
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        let (start, end) = span(&self.byte_ends, id);
        self.bytes.get(start..end).unwrap_or(&[])
    }

    /// A display string for one token alone (for top-k alternatives): valid UTF-8 as is, invalid
    /// bytes as `\xNN`. Precomputed, O(1).
    pub fn token_display(&self, id: u32) -> &str {
        let (start, end) = span(&self.display_ends, id);
        self.display.get(start..end).unwrap_or("")
    }

    /// Exact token string lookup (the GGUF vocabulary string), e.g. `"<think>"`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// GGUF `add_bos_token`; default per llama.cpp rules for the pre type (llama-bpe: true) else
    /// false.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// End-of-generation ids, sorted: eos, eot, eom and llama.cpp's by-name heuristics.
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop
    }
}

/// Start and end of entry `id` in a table of cumulative ends.
fn span(ends: &[usize], id: u32) -> (usize, usize) {
    let i = id as usize;
    match ends.get(i) {
        Some(&end) => (if i == 0 { 0 } else { ends.get(i - 1).copied().unwrap_or(0) }, end),
        None => (0, 0),
    }
}

fn check_spec(spec: &VocabSpec) -> Result<()> {
    if spec.model != "gpt2" {
        return Err(Error::metadata(
            "tokenizer.ggml.model",
            format!(
                "is '{}'; thinkdbg supports only 'gpt2' (byte-level BPE) vocabularies",
                spec.model
            ),
        ));
    }
    if spec.tokens.is_empty() {
        return Err(Error::metadata("tokenizer.ggml.tokens", "is empty"));
    }
    if u32::try_from(spec.tokens.len()).is_err() {
        return Err(Error::metadata(
            "tokenizer.ggml.tokens",
            "has more tokens than fit a 32-bit id",
        ));
    }
    if !spec.token_types.is_empty() && spec.token_types.len() != spec.tokens.len() {
        return Err(Error::metadata(
            "tokenizer.ggml.token_type",
            format!(
                "has {} entries but 'tokenizer.ggml.tokens' has {}",
                spec.token_types.len(),
                spec.tokens.len()
            ),
        ));
    }
    Ok(())
}

/// Splits a merge rule `"a b"` at the first space after the first byte, as llama.cpp does.
fn split_merge(i: usize, rule: &str) -> Result<(String, String)> {
    let pos = rule.as_bytes().iter().skip(1).position(|b| *b == b' ').map(|p| p + 1);
    match pos.and_then(|p| Some((rule.get(..p)?, rule.get(p + 1..)?))) {
        Some((a, b)) => Ok((a.to_owned(), b.to_owned())),
        None => Err(Error::metadata(
            "tokenizer.ggml.merges",
            format!("item {i} '{rule}' is not two tokens separated by a space"),
        )),
    }
}

fn build_bpe(spec: &VocabSpec, kind: PreKind) -> Result<tokenizers::Tokenizer> {
    let vocab: Vocab = spec
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            // llama.cpp renames empty tokens the same way.
            let t = if t.is_empty() { format!("[EMPTY_{i}]") } else { t.clone() };
            (t, i as u32)
        })
        .collect();
    let merges = spec
        .merges
        .iter()
        .enumerate()
        .map(|(i, m)| split_merge(i, m))
        .collect::<Result<Vec<_>>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(kind.ignore_merges())
        .build()
        .map_err(|e| {
            Error::Tokenizer(format!(
                "cannot build the BPE model from 'tokenizer.ggml.merges': {e}"
            ))
        })?;
    let mut tk = tokenizers::Tokenizer::new(bpe);

    let mut seq: Vec<PreTokenizerWrapper> = Vec::new();
    for r in kind.regexes() {
        let split =
            Split::new(SplitPattern::Regex(r.to_owned()), SplitDelimiterBehavior::Isolated, false)
                .map_err(|e| Error::Tokenizer(format!("pre-tokenizer regex '{r}': {e}")))?;
        seq.push(split.into());
    }
    seq.push(ByteLevel::new(false, false, false).into());
    tk.with_pre_tokenizer(Some(Sequence::new(seq)));
    if kind.nfc() {
        tk.with_normalizer(Some(NFC)).map_err(tok_err)?;
    }

    let mut special = Vec::new();
    let mut plain = Vec::new();
    for (i, t) in spec.tokens.iter().enumerate() {
        if t.is_empty() {
            continue;
        }
        match spec.token_type(i) {
            TYPE_CONTROL | TYPE_UNKNOWN => special.push(AddedToken::from(t.clone(), true)),
            TYPE_USER_DEFINED => plain.push(AddedToken::from(t.clone(), false).normalized(false)),
            _ => {}
        }
    }
    tk.add_special_tokens(special).map_err(tok_err)?;
    tk.add_tokens(plain).map_err(tok_err)?;
    Ok(tk)
}

/// llama.cpp's end-of-generation set: eos, eot (or the first by-name match), eom (or
/// `<|eom_id|>`), the FIM pad/repo/separator tokens and every token named in [`EOG_NAMES`];
/// `<|end|>` is dropped when both `<|return|>` and `<|call|>` exist (gpt-oss's harmony format).
fn stop_ids(
    ids: &HashMap<String, u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    eom: Option<u32>,
) -> Vec<u32> {
    let by_name = |names: &[&str]| names.iter().filter_map(|n| ids.get(*n).copied()).min();
    let eot = eot.or_else(|| by_name(EOT_NAMES));
    let eom = eom.or_else(|| by_name(&["<|eom_id|>"]));
    let mut stop: Vec<u32> = [eos, eot, eom].into_iter().flatten().collect();
    stop.extend(FIM_EOG_NAMES.iter().filter_map(|names| by_name(names)));
    stop.extend(EOG_NAMES.iter().filter_map(|n| ids.get(*n).copied()));
    if let (Some(_), Some(_), Some(end)) =
        (ids.get("<|return|>"), ids.get("<|call|>"), ids.get("<|end|>"))
    {
        stop.retain(|id| id != end);
    }
    stop.sort_unstable();
    stop.dedup();
    stop
}

#[cfg(test)]
mod tests;
