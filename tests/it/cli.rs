//! The `thinkdbg` binary, end to end, on tiny models: `run` in its three output modes,
//! `model info`, and every kind of bad input giving a one-line error, a non-zero exit code and
//! no panic.

use assert_cmd::Command;
use predicates::prelude::*;

use crate::common::{thinkdbg, write_tiny, Tiny};

/// Asserts a failure whose one error line, the last on stderr, contains `needle`; no panic.
fn fails_with(cmd: &mut Command, needle: &str) {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success; stderr: {stderr}");
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Progress lines may come first (e.g. the model loaded before the prompt was found too
    // long); the error itself is one line, and the last.
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "expected one error line, got: {stderr}");
    let last = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains(needle),
        "missing '{needle}' in: {stderr}"
    );
}

#[test]
fn help_lists_the_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    thinkdbg(dir.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("run").and(predicate::str::contains("model")));
}

#[test]
fn jsonl_prints_exactly_one_object_per_step() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::qwen3());
    let out = thinkdbg(dir.path())
        .args(["run", "--jsonl", "--ignore-eos", "-n", "12", "--top-logprobs", "3", "--model"])
        .arg(&model)
        .arg("what is 6 times 7?")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 12, "{stdout}");
    for (i, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let obj = v.as_object().unwrap();
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        let mut want =
            vec!["entropy", "index", "logprob", "phase", "t_us", "text", "token_id", "top"];
        want.sort_unstable();
        let mut got = keys.clone();
        got.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(obj["index"], i);
        assert_eq!(obj["phase"], "think", "the qwen3 template opens <think>");
        let top = obj["top"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        assert!(
            top[0].get("id").is_some()
                && top[0].get("text").is_some()
                && top[0].get("logprob").is_some()
        );
    }
    // Nothing for people went to stdout; the summary went to stderr.
    assert!(String::from_utf8_lossy(&out.stderr).contains("decode"));
}

#[test]
fn text_and_logprob_modes_print_the_generation() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::llama());
    let out = thinkdbg(dir.path())
        .args(["run", "-n", "8", "--model"])
        .arg(&model)
        .arg("hello")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tiny-llama") && stderr.contains("tokens, stop:"), "{stderr}");
    assert!(!out.stdout.contains(&0x1b), "escape bytes on stdout without a terminal");
    let out = thinkdbg(dir.path())
        .args(["run", "-n", "4", "--show-logprobs", "--top-logprobs", "2", "--model"])
        .arg(&model)
        .arg("hello")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    assert!(stdout.lines().all(|l| l.contains(" lp ") && l.contains(" H ")), "{stdout}");
}

#[test]
fn raw_prompts_skip_the_template() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::llama());
    thinkdbg(dir.path())
        .args(["run", "--raw", "-n", "3", "--model"])
        .arg(&model)
        .arg("the answer is")
        .assert()
        .success();
}

#[test]
fn model_info_describes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::qwen2());
    thinkdbg(dir.path()).args(["model", "info"]).arg(&model).assert().success().stdout(
        predicate::str::contains("architecture  qwen2 (supported)")
            .and(predicate::str::contains("qwen2.attention.head_count"))
            .and(predicate::str::contains("tokenizer.ggml.pre")),
    );
}

#[test]
fn missing_and_non_gguf_files_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    fails_with(
        thinkdbg(dir.path()).args(["run", "--model", "no/such/model.gguf", "hi"]),
        "does not exist",
    );
    let bogus = dir.path().join("notes.gguf");
    std::fs::write(&bogus, "this is not a model\n").unwrap();
    fails_with(
        thinkdbg(dir.path()).args(["run", "--model"]).arg(&bogus).arg("hi"),
        "is not a GGUF file",
    );
    fails_with(thinkdbg(dir.path()).args(["model", "info"]).arg(&bogus), "is not a GGUF file");
}

#[test]
fn truncated_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::llama());
    let bytes = std::fs::read(&model).unwrap();
    for cut in [20, 2000, bytes.len() - 100] {
        let short = dir.path().join(format!("cut{cut}.gguf"));
        std::fs::write(&short, &bytes[..cut]).unwrap();
        fails_with(
            thinkdbg(dir.path()).args(["run", "--model"]).arg(&short).arg("hi"),
            "is truncated or corrupt",
        );
    }
}

#[test]
fn unknown_architectures_list_the_supported_ones() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny { arch: "mamba", ..Tiny::llama() });
    fails_with(
        thinkdbg(dir.path()).args(["run", "--model"]).arg(&model).arg("hi"),
        "unknown architecture 'mamba' (supported: llama, qwen2, qwen3, qwen3moe, deepseek2)",
    );
}

#[test]
fn unsupported_tensor_types_name_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::llama());
    let mut bytes = std::fs::read(&model).unwrap();
    // Patch the type of one tensor in the directory to 16 (IQ2_XXS): after the name come
    // n_dims (u32), the dims (u64 each), then the type (u32).
    let name = b"blk.1.ffn_up.weight";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    let n_dims = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let ty = at + 4 + 8 * n_dims;
    bytes[ty..ty + 4].copy_from_slice(&16u32.to_le_bytes());
    let patched = dir.path().join("iq.gguf");
    std::fs::write(&patched, &bytes).unwrap();
    fails_with(
        thinkdbg(dir.path()).args(["run", "--model"]).arg(&patched).arg("hi"),
        "tensor 'blk.1.ffn_up.weight' has type IQ2_XXS",
    );
    // model info still describes it.
    thinkdbg(dir.path()).args(["model", "info"]).arg(&patched).assert().success().stdout(
        predicate::str::contains("cannot run: tensor 'blk.1.ffn_up.weight' has type IQ2_XXS"),
    );
}

/// Impossible hyper-parameters and dimensions are one line, not an abort or a silent run.
#[test]
fn impossible_block_counts_and_dimensions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::llama());
    let bytes = std::fs::read(&model).unwrap();
    // The key's string is followed by the value type (u32) and the u32 value.
    let key = b"llama.block_count";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 4;
    for (count, want) in [
        (u32::MAX, "'llama.block_count' is 4294967295, but the file has tensors for 2 blocks"),
        (0, "'llama.block_count' is 0, but the file has tensors for 2 blocks"),
    ] {
        let mut patched = bytes.clone();
        patched[at..at + 4].copy_from_slice(&count.to_le_bytes());
        let file = dir.path().join(format!("blocks-{count}.gguf"));
        std::fs::write(&file, &patched).unwrap();
        fails_with(thinkdbg(dir.path()).args(["run", "--model"]).arg(&file).arg("hi"), want);
    }
    // A dimension of 2^62 (the element count would wrap).
    let mut patched = bytes.clone();
    let name = b"blk.0.ffn_up.weight";
    let at = patched.windows(name.len()).position(|w| w == name).unwrap() + name.len() + 4;
    patched[at..at + 8].copy_from_slice(&(1u64 << 62).to_le_bytes());
    let file = dir.path().join("huge.gguf");
    std::fs::write(&file, &patched).unwrap();
    fails_with(
        thinkdbg(dir.path()).args(["model", "info"]).arg(&file),
        "tensor 'blk.0.ffn_up.weight' claims dimensions",
    );
    // A dimension of 0 (candle would build a slice from a dangling pointer).
    let mut patched = bytes.clone();
    patched[at..at + 8].copy_from_slice(&0u64.to_le_bytes());
    let file = dir.path().join("empty.gguf");
    std::fs::write(&file, &patched).unwrap();
    for args in [&["model", "info"][..], &["run", "-n", "2", "--model"][..]] {
        let mut cmd = thinkdbg(dir.path());
        cmd.args(args).arg(&file);
        if args[0] == "run" {
            cmd.arg("hi");
        }
        fails_with(&mut cmd, "tensor 'blk.0.ffn_up.weight' has a dimension of 0");
    }
}

/// Strings from a GGUF file that reach an error message cannot drive the terminal.
#[test]
fn gguf_strings_in_errors_are_sanitized() {
    let dir = tempfile::tempdir().unwrap();
    let pre = write_tiny(dir.path(), &Tiny { pre: "\u{1b}]0;p\u{7}", ..Tiny::llama() });
    let template = write_tiny(
        dir.path(),
        &Tiny {
            template: Some("{{ raise_exception('boom \u{1b}]0;pwned\u{7}') }}"),
            arch: "qwen2",
            ..Tiny::llama()
        },
    );
    for (model, needle) in [(pre, "␛]0;p"), (template, "boom ␛]0;pwned")] {
        let out =
            thinkdbg(dir.path()).args(["run", "--model"]).arg(&model).arg("hi").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
        assert!(err.contains(needle), "{err}");
    }
}

/// Files that are not regular files are refused at once (a FIFO would block forever), an
/// unwritable log file is said, and a dumb terminal gets no UI.
#[test]
fn odd_files_and_terminals_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.gguf");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for path in [fifo.as_path(), std::path::Path::new("/dev/urandom")] {
        fails_with(
            thinkdbg(dir.path())
                .args(["model", "info"])
                .arg(path)
                .timeout(std::time::Duration::from_secs(20)),
            "is not a regular file, not a GGUF file",
        );
    }
    // An import refuses a device, and gives up on a pipe that is not an export at its first
    // line (an endless stream would otherwise fill memory); a pipe carrying an export imports.
    fails_with(
        thinkdbg(dir.path())
            .args(["import", "/dev/urandom"])
            .timeout(std::time::Duration::from_secs(20)),
        "is not a regular file or a pipe",
    );
    let feed = |bytes: Vec<u8>, endless: bool| {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            while w.write_all(&bytes).is_ok() && endless {}
        })
    };
    let writer = feed(b"\x00garbage without end\n".repeat(1000), true);
    fails_with(
        thinkdbg(dir.path()).arg("import").arg(&fifo).timeout(std::time::Duration::from_secs(20)),
        "line 1: not a valid thinkdbg JSONL line",
    );
    writer.join().unwrap();
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sessions/sky-blue.jsonl");
    let writer = feed(std::fs::read(sample).unwrap(), false);
    let out = thinkdbg(dir.path())
        .arg("import")
        .arg(&fifo)
        .timeout(std::time::Duration::from_secs(20))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    writer.join().unwrap();
    let model = write_tiny(dir.path(), &Tiny::llama());
    let out = thinkdbg(dir.path())
        .env("THINKDBG_LOG_FILE", model.join("cannot-be-here.log"))
        .args(["ls"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("warning: cannot write the log file"), "{err}");
    fails_with(
        thinkdbg(dir.path())
            .env("TERM", "dumb")
            .args(["record", "--tui", "--model"])
            .arg(&model)
            .arg("hi"),
        "TERM is 'dumb'",
    );
}

#[test]
fn a_prompt_longer_than_the_context_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny { context: 32, ..Tiny::llama() });
    let long = "the answer is 42. ".repeat(30);
    fails_with(
        thinkdbg(dir.path()).args(["run", "--model"]).arg(&model).arg(long),
        "but the context holds 32",
    );
}

#[test]
fn bad_sampler_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::llama());
    fails_with(
        thinkdbg(dir.path()).args(["run", "--top-p", "0", "--model"]).arg(&model).arg("hi"),
        "'top-p' must be in (0, 1]",
    );
    fails_with(
        thinkdbg(dir.path()).args(["run", "-n", "0", "--model"]).arg(&model).arg("hi"),
        "'--max-tokens' must be at least 1",
    );
}

#[test]
fn offline_mode_explains_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    fails_with(
        thinkdbg(dir.path()).args(["--offline", "run", "hi"]),
        "the demo model is not in the cache",
    );
    fails_with(
        thinkdbg(dir.path()).args(["--offline", "run", "--model", "hf:org/repo/model.gguf", "hi"]),
        "is not in the Hugging Face cache",
    );
    fails_with(
        thinkdbg(dir.path()).env("HF_HUB_OFFLINE", "1").args([
            "model",
            "info",
            "hf:org/repo/model.gguf",
        ]),
        "offline mode is on",
    );
}

/// `THINKDBG_DEVICE=cpu` always works; asking for a backend this (CPU-only) build lacks is a
/// one-line error, not a silent fallback to the CPU.
#[cfg(not(any(feature = "cuda", feature = "metal")))]
#[test]
fn thinkdbg_device_selects_or_refuses_a_backend() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::qwen3());
    thinkdbg(dir.path())
        .env("THINKDBG_DEVICE", "cpu")
        .args(["run", "-n", "2", "--ignore-eos", "--model"])
        .arg(&model)
        .arg("hi")
        .assert()
        .success();
    fails_with(
        thinkdbg(dir.path())
            .env("THINKDBG_DEVICE", "cuda")
            .args(["run", "-n", "2", "--model"])
            .arg(&model)
            .arg("hi"),
        "THINKDBG_DEVICE=cuda, but this build has the cpu backend",
    );
}
