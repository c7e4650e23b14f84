//! The vocabulary of synthetic models: a byte-level BPE learned on a small fixed corpus (256
//! byte tokens, then merges, then ChatML and think special tokens), so synthetic files have a
//! real tokenizer that thinkdbg and llama.cpp both build. Depends on nothing.

use std::collections::HashMap;

/// GPT-2's byte-to-unicode table: printable bytes stand for themselves, the rest are moved
/// to code points from 256 up.
pub fn byte_to_char() -> Vec<char> {
    let mut table = vec!['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u32 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).unwrap_or('?')
        } else {
            next += 1;
            char::from_u32(next - 1).unwrap_or('?')
        };
    }
    table
}

const CORPUS: &str = "the quick brown fox jumps over the lazy dog. the answer is 42. \
Let me think about this step by step. First, the the the. Wait, that is not right. \
fn main() { println!(\"hello\"); } def f(x): return x * 2 # comment \
therefore the answer is the one we thought of. thinking is hard but the answer is there.";

/// Special tokens appended after the BPE vocabulary: `(text, token_type)`.
pub const SPECIALS: &[(&str, i32)] = &[
    ("<|endoftext|>", 3),
    ("<|im_start|>", 3),
    ("<|im_end|>", 3),
    ("<think>", 4),
    ("</think>", 4),
];

/// A byte-level BPE vocabulary learned on the corpus: 256 byte tokens, `n_merges` merges,
/// then the special tokens. Returns `(tokens, token_types, merges)`.
pub fn bpe_vocab(n_merges: usize) -> (Vec<String>, Vec<i32>, Vec<String>) {
    let b2c = byte_to_char();
    let mut tokens: Vec<String> = (0..256).map(|b| b2c[b].to_string()).collect();
    // Words as pre-tokenized by a GPT-2-like split: a leading space stays with the word.
    let mut words: Vec<Vec<String>> = Vec::new();
    let mut current = String::new();
    for ch in CORPUS.chars() {
        if ch == ' ' && !current.is_empty() {
            words.push(current.bytes().map(|b| b2c[b as usize].to_string()).collect());
            current.clear();
        }
        current.push(ch);
    }
    words.push(current.bytes().map(|b| b2c[b as usize].to_string()).collect());
    let mut merges = Vec::new();
    for _ in 0..n_merges {
        let mut counts: HashMap<(String, String), usize> = HashMap::new();
        for w in &words {
            for pair in w.windows(2) {
                *counts.entry((pair[0].clone(), pair[1].clone())).or_default() += 1;
            }
        }
        let Some(((a, b), _)) = counts.into_iter().max_by(|x, y| x.1.cmp(&y.1).then(y.0.cmp(&x.0)))
        else {
            break;
        };
        let merged = format!("{a}{b}");
        for w in &mut words {
            let mut i = 0;
            while i + 1 < w.len() {
                if w[i] == a && w[i + 1] == b {
                    w[i] = merged.clone();
                    w.remove(i + 1);
                }
                i += 1;
            }
        }
        merges.push(format!("{a} {b}"));
        tokens.push(merged);
    }
    let mut types = vec![1i32; tokens.len()];
    for (s, t) in SPECIALS {
        tokens.push(s.to_string());
        types.push(*t);
    }
    (tokens, types, merges)
}

pub const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
pub const CHATML_THINK: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n<think>\n' }}{% endif %}";
