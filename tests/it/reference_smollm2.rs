//! The real model against llama.cpp: greedy decoding of SmolLM2-135M-Instruct Q4_1, compared
//! with llama.cpp's greedy decoding of the same file (`tests/fixtures/smollm2/greedy.json`,
//! made by `make_reference.py` beside it with llama-cpp-python).
//!
//! The chat prompt must render and tokenize exactly as llama.cpp's. For the decoded tokens,
//! this model turns out to be numerically chaotic: llama.cpp itself, switched from its default
//! f16 KV cache to an f32 one (`greedy_f32kv.json`), picks a different token at steps where its
//! top-2 gap is up to 0.25 nats and moves top-1 logprobs by up to 0.23 (SmolLM2 has massive
//! activation outliers, and the 8-bit quantization of activations before every quantized
//! matmul amplifies last-bit differences). No engine that is not a bit-exact port of ggml's
//! kernels can stay within 0.05 at every step, so thinkdbg is held to llama.cpp's own
//! precision envelope: it must agree with llama.cpp's default at least about as well as
//! llama.cpp with an f32 cache does. A real bug (a wrong RoPE, norm or mask) diverges at the
//! first steps by whole nats and fails these checks.

use std::sync::atomic::AtomicBool;

use serde::Deserialize;
use thinkdbg::engine::generate::{Prompt, RunRequest};
use thinkdbg::engine::{Engine, LoadOptions};
use thinkdbg::record::Event;
use thinkdbg::trace::{Message, RoutingDetail, SamplerSpec};

use crate::common::{demo_model, heavy};

#[derive(Deserialize)]
struct Fixture {
    model_sha256: String,
    max_tokens: usize,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    messages: Vec<Message>,
    prompt: String,
    prompt_ids: Vec<u32>,
    tokens: Vec<u32>,
    logprobs: Vec<f32>,
    top2_gap: Vec<f32>,
}

/// How closely a candidate decoding follows the reference.
#[derive(Debug, Default)]
struct Agreement {
    /// Steps with the same token before each case's first divergence, over all cases.
    compared: usize,
    /// |logprob difference| at those steps.
    diffs: Vec<f32>,
    /// The reference's top-2 gap at each divergence, with the case and step.
    divergences: Vec<(String, usize, f32)>,
}

impl Agreement {
    fn add(&mut self, reference: &Case, tokens: &[u32], logprobs: &[f32]) {
        for (i, (&want, &got)) in reference.tokens.iter().zip(tokens).enumerate() {
            if want != got {
                self.divergences.push((reference.name.clone(), i, reference.top2_gap[i]));
                return;
            }
            self.diffs.push((logprobs[i] - reference.logprobs[i]).abs());
            self.compared += 1;
        }
    }

    fn percentile(&self, p: f64) -> f32 {
        let mut d = self.diffs.clone();
        d.sort_by(f32::total_cmp);
        d.get(((d.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0)
    }

    fn max_gap(&self) -> f32 {
        self.divergences.iter().map(|d| d.2).fold(0.0, f32::max)
    }

    fn report(&self, who: &str) {
        eprintln!(
            "{who}: {} steps agree before divergence, logprob diff median {:.4} p90 {:.4} max {:.4}; divergences {:?}",
            self.compared,
            self.percentile(0.5),
            self.percentile(0.9),
            self.percentile(1.0),
            self.divergences
        );
    }
}

fn fixture(text: &str, model_sha256: &str) -> Fixture {
    let f: Fixture = serde_json::from_str(text).unwrap();
    assert_eq!(f.model_sha256, model_sha256, "the fixture was made from another file");
    f
}

#[test]
fn greedy_decoding_matches_llama_cpp_within_its_own_precision_envelope() {
    let _heavy = heavy();
    let sha = thinkdbg::engine::source::DEMO_SHA256;
    let reference = fixture(include_str!("../fixtures/smollm2/greedy.json"), sha);
    let f32kv = fixture(include_str!("../fixtures/smollm2/greedy_f32kv.json"), sha);
    within_envelope(&reference, &f32kv, &demo_model());
}

/// The same check on another SmolLM2 file, e.g. the demo requantized to `Q4_K_M` by
/// llama.cpp (`assets/bench/requantize.py`): `THINKDBG_REFERENCE_MODEL` is the GGUF and
/// `THINKDBG_REFERENCE_DIR` holds `greedy.json` and `greedy_f32kv.json` written for it by
/// `make_reference.py --any-model`. Run by hand (`--ignored`), in a release build with
/// `THINKDBG_KERNELS=ours` to check thinkdbg's kernels for the file's types.
#[test]
#[ignore = "needs THINKDBG_REFERENCE_MODEL and THINKDBG_REFERENCE_DIR"]
fn greedy_decoding_of_another_file_matches_llama_cpp_within_its_envelope() {
    use sha2::{Digest, Sha256};
    let _heavy = heavy();
    let var = |v: &str| std::env::var(v).unwrap_or_else(|_| panic!("{v} is not set"));
    let model = std::path::PathBuf::from(var("THINKDBG_REFERENCE_MODEL"));
    let dir = std::path::PathBuf::from(var("THINKDBG_REFERENCE_DIR"));
    let sha: String =
        Sha256::digest(std::fs::read(&model).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let reference = fixture(&read("greedy.json"), &sha);
    let f32kv = fixture(&read("greedy_f32kv.json"), &sha);
    within_envelope(&reference, &f32kv, &model);
}

/// thinkdbg's greedy decoding of `model` against llama.cpp's (`reference`, default f16 KV
/// cache), held to the agreement of llama.cpp with an f32 KV cache (`f32kv`) with it.
fn within_envelope(reference: &Fixture, f32kv: &Fixture, path: &std::path::Path) {
    assert!(reference.cases.len() >= 5);
    let mut baseline = Agreement::default();
    for (r, alt) in reference.cases.iter().zip(&f32kv.cases) {
        assert_eq!(r.prompt_ids, alt.prompt_ids);
        baseline.add(r, &alt.tokens, &alt.logprobs);
    }

    let mut engine = Engine::load(path, &LoadOptions::default(), &mut |_, _| {}).unwrap();
    let mut ours = Agreement::default();
    for case in &reference.cases {
        let prompt = Prompt::Chat(case.messages.clone());
        let (text, ids) = engine.prepare(&prompt).unwrap();
        assert_eq!(text, case.prompt, "{}: chat template rendering differs", case.name);
        assert_eq!(ids, case.prompt_ids, "{}: prompt tokens differ", case.name);
        let req = RunRequest {
            prompt,
            sampler: SamplerSpec { max_tokens: reference.max_tokens, ..SamplerSpec::default() },
            top_logprobs: 2,
            forced: Vec::new(),
            forced_text: None,
            routing: RoutingDetail::Selected,
            prompt_routing: true,
        };
        let mut events: Vec<Event> = Vec::new();
        engine.generate(&req, &mut events, &AtomicBool::new(false)).unwrap();
        let steps: Vec<_> = events
            .into_iter()
            .filter_map(|e| if let Event::Step { step, .. } = e { Some(step) } else { None })
            .collect();
        assert_eq!(steps.len(), case.tokens.len().min(reference.max_tokens), "{}", case.name);
        let tokens: Vec<u32> = steps.iter().map(|s| s.token_id).collect();
        let logprobs: Vec<f32> = steps.iter().map(|s| s.logprob).collect();
        ours.add(case, &tokens, &logprobs);
        // Where llama.cpp was confident (a top-2 gap over 0.5 with both its caches), the
        // first steps must agree outright (while the tokens before them agree: after a
        // divergence the steps are not comparable), and their logprobs within 0.25 or, where
        // llama.cpp with an f32 cache moves further on the same tokens, 1.5 times that.
        let alt = f32kv.cases.iter().find(|c| c.name == case.name);
        for i in 0..4.min(case.tokens.len()) {
            // llama.cpp with an f32 cache, where it decoded the same tokens up to step `i`.
            let same = alt.filter(|a| a.tokens.get(..=i) == case.tokens.get(..=i));
            if case.top2_gap[i].min(same.map_or(0.0, |a| a.top2_gap[i])) > 0.5 {
                assert_eq!(
                    tokens[i], case.tokens[i],
                    "{}: step {i} differs though llama.cpp's gap is {}",
                    case.name, case.top2_gap[i]
                );
                let own = same.map_or(0.0, |a| (a.logprobs[i] - case.logprobs[i]).abs());
                let d = (logprobs[i] - case.logprobs[i]).abs();
                assert!(
                    d < (1.5 * own).max(0.25),
                    "{}: step {i}: {d} from llama.cpp (its own with an f32 cache: {own})",
                    case.name
                );
            }
            if tokens[i] != case.tokens[i] {
                break;
            }
        }
    }
    baseline.report("llama.cpp f32 KV vs llama.cpp default");
    ours.report("thinkdbg vs llama.cpp default");

    let margin = 1.5;
    assert!(
        ours.compared as f64 >= 0.75 * baseline.compared as f64,
        "thinkdbg agrees for {} steps, llama.cpp with an f32 cache for {}",
        ours.compared,
        baseline.compared
    );
    assert!(ours.percentile(0.5) <= 0.05, "median logprob difference {}", ours.percentile(0.5));
    assert!(
        ours.percentile(0.9) <= (margin * baseline.percentile(0.9)).max(0.05),
        "p90 {} vs llama.cpp's own {}",
        ours.percentile(0.9),
        baseline.percentile(0.9)
    );
    assert!(
        ours.percentile(1.0) <= (margin * baseline.percentile(1.0)).max(0.05),
        "max {} vs llama.cpp's own {}",
        ours.percentile(1.0),
        baseline.percentile(1.0)
    );
    assert!(
        ours.max_gap() <= (margin * baseline.max_gap()).max(0.01),
        "thinkdbg diverged where llama.cpp's top-2 gap was {} (llama.cpp's own divergences go up to {})",
        ours.max_gap(),
        baseline.max_gap()
    );
}
