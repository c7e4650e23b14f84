//! What the test modules share: the `thinkdbg` binary with its data kept in a test's own
//! directory and the helpers around running it (`stdout`, `record`, `run_id`), the demo model,
//! tiny GGUF models from an independent writer (`tiny`) with a naive forward pass to check the
//! engine against (`naive`), a real llama.cpp server (`llama_server`), the terminal UI
//! fixtures (`tui`: an App on a store, rendering, snapshots, feeding it its jobs' events), and
//! `heavy`, the lock that keeps the CPU-bound tests from running at the same time.

pub mod llama_server;
pub mod naive;
pub mod tiny;
pub mod tui;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use thinkdbg::trace::RunId;

pub use naive::Naive;
pub use tiny::{write_tiny, Tiny};

/// The `thinkdbg` binary with its cache, log, store, config and Hugging Face cache inside `dir`, so a
/// test never touches the user's data, and without colour.
pub fn thinkdbg(dir: &Path) -> assert_cmd::Command {
    assert_cmd::Command::from_std(thinkdbg_std(dir))
}

/// `thinkdbg(dir)` as a `std::process::Command`, for a test that spawns it and talks to it
/// while it runs.
pub fn thinkdbg_std(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("thinkdbg"));
    cmd.env("THINKDBG_CACHE", dir.join("cache"))
        .env("THINKDBG_LOG_FILE", dir.join("test.log"))
        .env("THINKDBG_STORE", dir.join("store"))
        .env("THINKDBG_CONFIG", dir.join("config.toml"))
        .env("HF_HOME", dir.join("hf"))
        .env_remove("THINKDBG_MODEL")
        .env("NO_COLOR", "1");
    cmd
}

/// Runs `cmd`, asserts it succeeded (showing its stderr if not) and returns its stdout and
/// stderr.
pub fn output(cmd: &mut assert_cmd::Command) -> (String, String) {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    (String::from_utf8(out.stdout).unwrap(), err)
}

/// Runs `cmd`, asserts it succeeded (showing its stderr if not) and returns its stdout.
pub fn stdout(cmd: &mut assert_cmd::Command) -> String {
    output(cmd).0
}

/// Runs `cmd`, asserts it succeeded and returns its stdout's last line (where `record` and
/// `fork` print the new run's id).
pub fn last_line(cmd: &mut assert_cmd::Command) -> String {
    stdout(cmd).lines().last().unwrap().to_string()
}

/// What `thinkdbg record` printed: the new run's id (stdout's last line), all of stdout, and
/// stderr.
pub struct Recorded {
    pub id: String,
    pub stdout: String,
    pub stderr: String,
}

/// `thinkdbg record ARGS --model MODEL PROMPT` with its data in `dir`; asserts success.
pub fn record(dir: &Path, model: &Path, args: &[&str], prompt: &str) -> Recorded {
    let (stdout, stderr) =
        output(thinkdbg(dir).arg("record").args(args).arg("--model").arg(model).arg(prompt));
    let id = stdout.lines().last().unwrap().to_string();
    Recorded { id, stdout, stderr }
}

/// The run id in a run's name as printed (`r<decimal>`, by `record` and `fork`).
pub fn run_id(text: &str) -> RunId {
    RunId(text.trim_start_matches('r').parse().unwrap())
}

/// Held by the tests that keep every core busy for seconds (the real model decoding, the
/// llama.cpp servers, synthetic MoE decoding, a recording killed twenty times), so that no two
/// of them run at once. They were separate test binaries, which cargo runs one after another;
/// two at once on a small machine slow each other down several times over (thread pools
/// that spin, and more threads than cores). The other tests still run beside them. A heavy test
/// that fails does not fail the next one (the poisoned lock is taken anyway).
pub fn heavy() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The demo model, fetched into the cache on first use (as `.ci/run` does before the tests).
pub fn demo_model() -> PathBuf {
    thinkdbg::engine::source::demo_model(false).expect("the demo model could not be fetched")
}

/// A small file system mounted for one test, unmounted when dropped.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    /// `None` where this process may not mount (not root): the test says so and stops.
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let at = dir.join("small");
        std::fs::create_dir_all(&at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(at))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Load options for checks of exactness (against a naive f32 forward pass, against llama.cpp
/// run with an f32 cache, or between two paths of the engine): an f32 KV cache. The default
/// f16 cache rounds every key and value, which now and then turns a last-bit difference
/// upstream into an f16 step.
pub fn exact() -> thinkdbg::engine::LoadOptions {
    thinkdbg::engine::LoadOptions {
        kv_cache: Some(thinkdbg::engine::models::CacheType::F32),
        ..thinkdbg::engine::LoadOptions::default()
    }
}
