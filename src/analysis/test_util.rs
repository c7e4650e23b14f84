//! Test support: steps made from text, split roughly as a BPE tokenizer would.

use crate::trace::{Phase, Run, RunId, SamplerSpec, SessionId, Step};

/// Pieces of `text` the way a tokenizer splits it: a word with its leading space, each
/// punctuation mark, each run of newlines, each ideograph.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        let word_char = c.is_alphanumeric() && !super::text::is_ideographic(c);
        let continues = word_char
            && cur.chars().last().is_some_and(|l| l.is_alphanumeric() || l == ' ')
            && !cur.chars().any(super::text::is_ideographic);
        let newline_run = c == '\n' && cur.chars().all(|l| l == '\n') && !cur.is_empty();
        if continues || newline_run || (cur == " " && c != '\n') {
            cur.push(c);
        } else {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A stable token id per distinct text.
fn id_of(t: &str) -> u32 {
    t.bytes().fold(2_166_136_261u32, |h, b| (h ^ u32::from(b)).wrapping_mul(16_777_619))
}

/// Steps for `think` (inside `<think>` ... `</think>`) and then `answer`, with mildly varying
/// confident logprobs and low entropy.
pub fn run_steps(think: Option<&str>, answer: &str) -> Vec<Step> {
    let mut pieces: Vec<(String, Phase)> = Vec::new();
    if let Some(t) = think {
        pieces.push(("<think>".into(), Phase::Think));
        pieces.extend(tokens(t).into_iter().map(|p| (p, Phase::Think)));
        pieces.push(("</think>".into(), Phase::Think));
    }
    pieces.extend(tokens(answer).into_iter().map(|p| (p, Phase::Answer)));
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, (text, phase))| Step {
            index: i as u32,
            token_id: id_of(&text),
            logprob: -0.05 - 0.3 * ((i * 7 % 11) as f32 / 11.0),
            entropy: 0.3 + 0.4 * ((i * 5 % 13) as f32 / 13.0),
            text,
            phase,
            t_us: i as u64 * 20_000,
            top: Vec::new(),
        })
        .collect()
}

pub fn run() -> Run {
    let mut r = Run::new_recording(RunId(1), SessionId(1), SamplerSpec::default());
    r.rendered_prompt = "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n".into();
    r.stop = Some(crate::trace::StopReason::Eos);
    r
}

/// A clean English chain of thought: nothing in it deserves a flag.
pub const CLEAN_THINK: &str = "Okay, so I need to find the sum of the first ten positive \
integers. The formula for the sum of the first n integers is n times n plus one, divided by two.\n\n\
With n equal to ten, that gives ten times eleven, which is one hundred and ten, divided by two, \
which is fifty five. I can also add them in pairs: one and ten make eleven, two and nine make \
eleven, and there are five such pairs, so the total is fifty five as well.\n\n\
Both methods agree, so the answer is 55.";

pub const CLEAN_ANSWER: &str = "The sum of the first ten positive integers is \\boxed{55}.";
