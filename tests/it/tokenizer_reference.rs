//! The GGUF tokenizer against llama.cpp on the demo model (SmolLM2-135M-Instruct, pre 'smollm'):
//! every case in `tests/fixtures/smollm2/tokenize.json` (ids from llama.cpp with add_bos=false,
//! special=true) must tokenize to exactly the same ids, and decode back to its text.

use thinkdbg::engine::gguf::Gguf;
use thinkdbg::engine::tokenizer::{StreamDecoder, Tokenizer, VocabSpec};

use crate::common::demo_model;

#[derive(serde::Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

fn demo_tokenizer() -> Result<(Tokenizer, VocabSpec), Box<dyn std::error::Error>> {
    let gguf = Gguf::open(demo_model())?;
    let spec = VocabSpec::from_gguf(&gguf)?;
    let (tk, warnings) = Tokenizer::from_spec(&spec, false)?;
    assert!(warnings.is_empty(), "{warnings:?}");
    Ok((tk, spec))
}

#[test]
fn smollm2_matches_llama_cpp() {
    let (tk, _) = demo_tokenizer().unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/smollm2/tokenize.json");
    let fixture: Fixture = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(fixture.cases.len() >= 10);
    let mut failures = Vec::new();
    for case in &fixture.cases {
        let ids = tk.encode(&case.text).unwrap();
        if ids != case.ids {
            failures.push(format!(
                "{:?}\n  llama.cpp: {:?}\n  thinkdbg:  {:?}",
                case.text, case.ids, ids
            ));
        }
        let mut d = StreamDecoder::new();
        let mut text: String = ids.iter().map(|id| d.push(tk.token_bytes(*id))).collect();
        text.push_str(&d.finish());
        assert_eq!(text, case.text, "bytes of the tokens do not give back the text");
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        fixture.cases.len(),
        failures.join("\n")
    );
}

#[test]
fn smollm2_vocabulary_facts() {
    let (tk, spec) = demo_tokenizer().unwrap();
    assert_eq!(spec.model, "gpt2");
    assert_eq!(spec.pre.as_deref(), Some("smollm"));
    assert_eq!(tk.vocab_size(), 49152);
    assert_eq!(tk.bos(), Some(1));
    assert!(!tk.add_bos());
    let im_end = tk.token_id("<|im_end|>").unwrap();
    assert_eq!(im_end, 2);
    // llama.cpp's EOG set for this file: eos <|im_end|>, <|endoftext|>, and <reponame> (FIM repo).
    assert_eq!(tk.stop_ids(), [0, 2, 4]);
    assert_eq!(tk.token_bytes(im_end), b"<|im_end|>");
    assert!(spec.chat_template.as_deref().is_some_and(|t| t.contains("<|im_start|>")));
}
