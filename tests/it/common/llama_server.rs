//! A REAL llama.cpp server (`python3 -m llama_cpp.server` from llama-cpp-python[server])
//! serving the demo model on a free loopback port, for the tests that record from a server.
//!
//! The tests provision the server themselves, as they fetch the demo model: the interpreter is
//! `THINKDBG_PYTHON` (default `python3`); when it cannot import `llama_cpp.server`, the package
//! is installed once with pip into the cache (`THINKDBG_CACHE/python/…`, put on `PYTHONPATH`).
//! pip builds llama.cpp from source for the native CPU, which takes minutes the first time.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server process, killed and reaped when dropped (also when a test fails).
pub struct Server {
    child: Child,
    pub url: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the server with its log in `dir` and waits until it answers `/v1/models`.
    pub fn start(dir: &Path) -> Server {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (python, path) = provisioned();
        let log = dir.join("server.log");
        let mut cmd = Command::new(&python);
        if let Some(p) = path {
            cmd.env("PYTHONPATH", p);
        }
        let child = cmd
            .args(["-m", "llama_cpp.server", "--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--model")
            .arg(super::demo_model())
            .args(["--n_ctx", "2048", "--n_threads", "2"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start '{python} -m llama_cpp.server': {e}"));
        let mut server = Server { child, url: format!("http://127.0.0.1:{port}"), log };
        let t0 = Instant::now();
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(&server.log).unwrap_or_default();
                panic!("llama_cpp.server exited ({status}):\n{log}");
            }
            if ureq::get(&format!("{}/v1/models", server.url)).call().is_ok() {
                return server;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(180),
                "llama_cpp.server did not start in 180 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The llama-cpp-python release the tests use (its llama.cpp is the numeric reference).
const PACKAGE: &str = "llama-cpp-python[server]==0.3.36";

/// The interpreter and, when the package had to be installed here, its `PYTHONPATH`.
pub fn provisioned() -> (String, Option<PathBuf>) {
    static ONCE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let python = std::env::var("THINKDBG_PYTHON").unwrap_or_else(|_| "python3".into());
    let path = ONCE.get_or_init(|| install_if_missing(&python)).clone();
    (python, path)
}

fn imports_server(python: &str, path: Option<&Path>) -> bool {
    let mut cmd = Command::new(python);
    if let Some(p) = path {
        cmd.env("PYTHONPATH", p);
    }
    cmd.args(["-c", "import llama_cpp.server.app"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs the package with pip under the cache unless `python` already has it. The install
/// goes to a fresh folder that is renamed into place when complete, so an interrupted install
/// is never taken for a finished one.
fn install_if_missing(python: &str) -> Option<PathBuf> {
    if imports_server(python, None) {
        return None;
    }
    let cache = thinkdbg::engine::source::cache_dir().unwrap();
    let target = cache.join("python").join("llama-cpp-python-0.3.36");
    if imports_server(python, Some(&target)) {
        return Some(target);
    }
    // A copy that does not import (a different Python, say) is replaced.
    let _ = std::fs::remove_dir_all(&target);
    let partial = cache.join("python").join(format!("partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).unwrap();
    eprintln!("installing {PACKAGE} into '{}' (builds llama.cpp; minutes)", target.display());
    // AMX stays off: some VMs trap its tile instructions (see tests/fixtures/smollm2/README.md).
    let flags = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16";
    let out = Command::new(python)
        .args(["-m", "pip", "install", "--quiet", "--no-input", "--target"])
        .arg(&partial)
        .arg(PACKAGE)
        .env("CMAKE_ARGS", "-DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF")
        .env("CFLAGS", flags)
        .env("CXXFLAGS", flags)
        .output()
        .unwrap_or_else(|e| panic!("cannot run '{python} -m pip': {e}"));
    assert!(
        out.status.success(),
        "pip install {PACKAGE} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if std::fs::rename(&partial, &target).is_err() {
        // Another process finished first; its copy is as good.
        let _ = std::fs::remove_dir_all(&partial);
    }
    assert!(
        imports_server(python, Some(&target)),
        "'{}' cannot import llama_cpp.server",
        target.display()
    );
    Some(target)
}
