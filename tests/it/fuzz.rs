//! Fuzzing the parsers of untrusted input with proptest over bytes, for a fixed budget of cases
//! (so CI time stays fixed): the GGUF header and tensor directory, the JSONL import, and the
//! SSE reader with the chunk assembler. Seeds are real inputs (`tests/fixtures/fuzz/`, the
//! sample sessions, a tiny model written here), mutated by flipped, inserted and removed bytes
//! and truncation. Every parser must answer with a value or an error: a panic, a hang or an
//! allocation the size of a corrupt length fails the test (the last aborts the process).
use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use thinkdbg::engine::gguf::Gguf;
use thinkdbg::export::jsonl;
use thinkdbg::remote::chunk::Assembler;
use thinkdbg::remote::sse::{ReadError, SseReader};

/// One change to a seed input.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, to: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Remove { at: usize, len: usize },
    Truncate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(at, to)| Mutation::Flip { at, to }),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (any::<usize>(), 1usize..64).prop_map(|(at, len)| Mutation::Remove { at, len }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

/// Applies the mutations; positions wrap around the input (biased towards its head, where the
/// headers and lengths are, by `head`).
fn mutate(seed: &[u8], muts: &[Mutation], head: usize) -> Vec<u8> {
    let mut b = seed.to_vec();
    for m in muts {
        if b.is_empty() {
            break;
        }
        let pos =
            |at: usize, len: usize| if at % 2 == 0 { at % len.min(head).max(1) } else { at % len };
        match m {
            Mutation::Flip { at, to } => {
                let i = pos(*at, b.len());
                b[i] = *to;
            }
            Mutation::Insert { at, bytes } => {
                let i = pos(*at, b.len());
                b.splice(i..i, bytes.iter().copied());
            }
            Mutation::Remove { at, len } => {
                let i = pos(*at, b.len());
                let end = (i + len).min(b.len());
                b.drain(i..end);
            }
            Mutation::Truncate { at } => {
                let i = pos(*at, b.len());
                b.truncate(i);
            }
        }
    }
    b
}

fn tiny_gguf() -> &'static [u8] {
    static SEED: OnceLock<Vec<u8>> = OnceLock::new();
    SEED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let t = crate::common::Tiny { n_layer: 1, ..crate::common::Tiny::llama() };
        std::fs::read(crate::common::write_tiny(dir.path(), &t)).unwrap()
    })
}

fn fixture(name: &str) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read(root.join(name)).unwrap()
}

fn sse_seed() -> &'static [u8] {
    static SEED: OnceLock<Vec<u8>> = OnceLock::new();
    SEED.get_or_init(|| fixture("tests/fixtures/fuzz/stream.sse"))
}

fn jsonl_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        ["sessions/prime-function.jsonl", "sessions/sky-blue.jsonl"]
            .iter()
            .map(|f| {
                // The head of each file (header, session, run and the first steps) keeps every
                // case fast; the lines are the format's every kind.
                let text = fixture(f);
                let cut = text.iter().enumerate().filter(|(_, &b)| b == b'\n').nth(40);
                text[..cut.map_or(text.len(), |(i, _)| i + 1)].to_vec()
            })
            .collect()
    })
}

/// Feeds bytes through the SSE reader and the assembler, as the client does.
fn read_stream(bytes: &[u8]) {
    let mut reader = SseReader::new(std::io::BufReader::new(bytes));
    let mut asm = Assembler::new(2, false);
    for _ in 0..10_000 {
        match reader.next_event() {
            Ok(Some(ev)) => {
                if ev.data != "[DONE]" {
                    let _ = asm.chunk_str(&ev.data, ev.line, 0);
                }
            }
            Ok(None) | Err(ReadError::Bad(_)) | Err(ReadError::Io(_)) => return,
        }
    }
    panic!("the reader never reached the end of {} bytes", bytes.len());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_gguf_reader_survives_any_damage(muts in prop::collection::vec(mutation(), 1..6)) {
        let bytes = mutate(tiny_gguf(), &muts, 4096);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(g) = Gguf::open(&path) {
            // What was read must be usable: every tensor's data lies inside the file.
            let reader = g.reader();
            prop_assert!(reader.is_ok());
            let _ = g.fingerprint();
        }
    }

    #[test]
    fn the_jsonl_import_survives_any_damage(which in 0usize..2, muts in prop::collection::vec(mutation(), 1..6)) {
        let bytes = mutate(&jsonl_seeds()[which], &muts, 2048);
        let _ = jsonl::parse_bytes(&bytes);
    }

    #[test]
    fn the_sse_reader_survives_any_damage(muts in prop::collection::vec(mutation(), 1..8)) {
        read_stream(&mutate(sse_seed(), &muts, 512));
    }

    #[test]
    fn the_sse_reader_survives_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        read_stream(&bytes);
    }
}

#[test]
fn the_seeds_parse() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("m.gguf");
    std::fs::write(&gguf, tiny_gguf()).unwrap();
    assert!(Gguf::open(&gguf).is_ok());
    for seed in jsonl_seeds() {
        jsonl::parse_bytes(seed).unwrap();
    }
    let mut reader = SseReader::new(std::io::BufReader::new(sse_seed()));
    let mut asm = Assembler::new(2, false);
    let mut steps = 0;
    while let Ok(Some(ev)) = reader.next_event() {
        if ev.data != "[DONE]" {
            steps += asm.chunk_str(&ev.data, ev.line, 0).unwrap().len();
        }
    }
    assert!(steps >= 3, "{steps}");
}
