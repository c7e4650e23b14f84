//! A REAL llama.cpp server (`python3 -m llama_cpp.server` from llama-cpp-python[server],
//! installed by `.ci/run`) serving the demo model on a free loopback port, for the tests that
//! record from a server. The interpreter is `THINKDBG_PYTHON` (default `python3`).

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
        let python = std::env::var("THINKDBG_PYTHON").unwrap_or_else(|_| "python3".into());
        let log = dir.join("server.log");
        let child = Command::new(&python)
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
                panic!(
                    "llama_cpp.server exited ({status}); install llama-cpp-python[server]:\n{log}"
                );
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
