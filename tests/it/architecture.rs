//! The layers of the crate (README, "Code layout"; `src/lib.rs`), checked on the source: no
//! module imports from a layer above it or sideways where the map says it must not, the TUI's
//! components never reach back into `App`, and no source file grows past 600 lines.
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The code of a file without comments (doc comments name other modules freely).
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Files under `src/<dir>` (or the file `src/<dir>.rs`) that mention any of `forbidden`.
fn offenders(dir: &str, forbidden: &[&str]) -> Vec<String> {
    let mut files = Vec::new();
    let folder = src().join(dir);
    if folder.is_dir() {
        sources(&folder, &mut files);
    } else {
        files.push(src().join(format!("{dir}.rs")));
    }
    let mut out = Vec::new();
    for f in files {
        let text = code(&f);
        for word in forbidden {
            if text.contains(word) {
                out.push(format!("{} uses {word}", f.strip_prefix(src()).unwrap().display()));
            }
        }
    }
    out
}

#[test]
fn every_module_imports_only_from_the_layers_below() {
    let front = ["crate::cli", "crate::tui"];
    let services = ["crate::runs", "crate::store"];
    let producers = ["crate::engine", "crate::remote", "crate::export"];
    let rules: Vec<(&str, Vec<&str>)> = vec![
        // Layer 1: the vocabularies depend on nothing of ours but each other.
        (
            "trace",
            [&front[..], &services, &producers, &["crate::analysis", "crate::compare"]].concat(),
        ),
        (
            "record",
            [&front[..], &services, &producers, &["crate::analysis", "crate::compare"]].concat(),
        ),
        ("sanitize", [&front[..], &services, &producers].concat()),
        // Layer 2: producers and pure functions, none importing another (but compare → analysis).
        (
            "engine",
            [
                &front[..],
                &services,
                &["crate::remote", "crate::export", "crate::analysis", "crate::compare"],
            ]
            .concat(),
        ),
        (
            "remote",
            [
                &front[..],
                &services,
                &["crate::engine", "crate::export", "crate::analysis", "crate::compare"],
            ]
            .concat(),
        ),
        ("analysis", [&front[..], &services, &producers, &["crate::compare"]].concat()),
        ("compare", [&front[..], &services, &producers].concat()),
        (
            "export",
            [
                &front[..],
                &services,
                &["crate::engine", "crate::remote", "crate::analysis", "crate::compare"],
            ]
            .concat(),
        ),
        // Layer 3: the store knows the vocabularies, and the JSONL format its backups are
        // written in (no other export, no producer).
        (
            "store",
            [
                &front[..],
                &["crate::runs", "crate::engine", "crate::remote"],
                &["crate::export::markdown", "crate::export::html", "crate::export::annotate"],
                &["crate::export::render", "crate::export::Kind"],
                &["crate::analysis", "crate::compare"],
            ]
            .concat(),
        ),
        // Layer 4: services for both front ends, which they never import.
        ("runs", front.to_vec()),
    ];
    let found: Vec<String> = rules.iter().flat_map(|(dir, bad)| offenders(dir, bad)).collect();
    assert!(found.is_empty(), "imports against the layers:\n{}", found.join("\n"));
}

#[test]
fn tui_components_never_import_the_app() {
    let found = offenders(
        "tui/components",
        &["super::app", "tui::app", "super::super::app", "tui::ui", "tui::dispatch"],
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// Untrusted text reaches the TUI's frame only through `tui::text` (which shows invisible
/// and zero-width characters) and its cells only through `tui::safe_backend`: no other file
/// of the tui calls `sanitize` (whose `for_terminal` leaves zero-width characters raw), and
/// the terminal is the guarded one.
#[test]
fn the_tui_shows_untrusted_text_through_one_module() {
    let mut files = Vec::new();
    sources(&src().join("tui"), &mut files);
    let own = ["text.rs", "safe_backend.rs"];
    let found: Vec<String> = files
        .iter()
        .filter(|f| !own.iter().any(|o| f.ends_with(Path::new("tui").join(o))))
        .filter(|f| {
            let text = code(f);
            ["sanitize", "for_terminal", "visible_token"].iter().any(|w| text.contains(w))
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(found.is_empty(), "use tui::text instead of sanitize in: {}", found.join(", "));
    let terminal = code(&src().join("tui/terminal.rs"));
    assert!(terminal.contains("Terminal<SafeBackend<CrosstermBackend<"), "{terminal}");
}

#[test]
fn no_source_file_is_over_600_lines() {
    let mut files = Vec::new();
    sources(&src(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > 600).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split by responsibility: {}", long.join(", "));
}

/// The CLI writes to stdout and stderr only through `cli/out.rs`, which sanitizes everything
/// (issue 16: a string from a file, a server or the user must not drive the terminal on any
/// surface, without each command having to remember it).
#[test]
fn the_cli_prints_only_through_its_sanitizing_output() {
    let mut files = Vec::new();
    sources(&src().join("cli"), &mut files);
    files.push(src().join("main.rs"));
    let printing = ["println!(", "print!(", "eprint!(", "io::stdout()", "io::stderr()", "dbg!("];
    let mut found = Vec::new();
    for f in files.iter().filter(|f| !f.ends_with("cli/out.rs")) {
        for line in code(f).lines() {
            // Asking whether a stream is a terminal writes nothing.
            let line = line.replace("io::stdout().is_terminal()", "");
            if printing.iter().any(|p| line.contains(p)) {
                found.push(format!("{}: {}", f.display(), line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "printing around cli/out.rs:\n{}", found.join("\n"));
}
