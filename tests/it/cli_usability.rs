//! The command line as a person meets it: help that lists a subcommand's own options apart
//! from the global ones and says where the config files are, the default token cap, session
//! titles, `ls` columns that never shift, and `show` of raw runs and forks.

use unicode_width::UnicodeWidthStr;

use crate::common::{last_line, record, stdout, thinkdbg, write_tiny, Tiny};

/// The lines of a help text's section `heading` (up to the next blank line).
fn section<'a>(help: &'a str, heading: &str) -> Vec<&'a str> {
    help.lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect()
}

#[test]
fn subcommand_help_lists_its_own_options_and_the_global_ones_apart() {
    let dir = tempfile::tempdir().unwrap();
    let help = stdout(thinkdbg(dir.path()).args(["ls", "--help"]));
    let own = section(&help, "Options:");
    assert!(own.iter().any(|l| l.contains("--json")), "{help}");
    assert!(!own.iter().any(|l| l.contains("--store") || l.contains("--log-file")), "{help}");
    let global = section(&help, "Global options:");
    assert!(global.iter().any(|l| l.contains("--store")), "{help}");
    assert_eq!(help.matches("--store").count(), 1, "{help}");
    // Help names the user's config directory, not a file in the source tree.
    let top = stdout(thinkdbg(dir.path()).arg("--help"));
    let config = dir.path().join("config.toml");
    assert!(top.contains(&config.display().to_string()), "{top}");
    assert!(top.contains("keymap.toml") && !top.contains("assets/"), "{top}");
    // `-n` says what happens without it.
    let run = stdout(thinkdbg(dir.path()).args(["run", "--help"]));
    let run = run.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(run.contains("until the end of the turn or until the context is full"), "{run}");
}

#[test]
fn without_n_a_run_has_no_cap_unless_the_config_sets_one() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny { context: 64, ..Tiny::llama() });
    let json = |id: &str| stdout(thinkdbg(dir.path()).args(["export", id, "--format", "jsonl"]));
    let steps = |id: &str| json(id).lines().filter(|l| l.contains("\"type\":\"step\"")).count();
    let run = record(dir.path(), &model, &["--ignore-eos"], "hi").id;
    let show = stdout(thinkdbg(dir.path()).args(["show", &run]));
    assert!(show.contains("max-tokens none"), "{show}");
    assert!(json(&run).contains("context_full"), "{}", json(&run));
    std::fs::write(dir.path().join("config.toml"), "[generate]\nmax_tokens = 5\n").unwrap();
    let capped = record(dir.path(), &model, &["--ignore-eos"], "hi").id;
    assert_eq!(steps(&capped), 5);
    // `-n` overrides the config.
    let n = record(dir.path(), &model, &["--ignore-eos", "-n", "3"], "hi").id;
    assert_eq!(steps(&n), 3);
    std::fs::write(dir.path().join("config.toml"), "[generate]\nmax_tokens = 'x'\n").unwrap();
    let out = thinkdbg(dir.path()).args(["run", "--model"]).arg(&model).arg("hi").output();
    let err = String::from_utf8_lossy(&out.unwrap().stderr).to_string();
    assert!(err.contains("'generate.max_tokens'"), "{err}");
}

#[test]
fn raw_runs_get_the_user_message_as_title_and_show_their_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::llama());
    let raw = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n\
Why is the sky blue?<|im_end|>\n<|im_start|>assistant\n";
    let id = record(dir.path(), &model, &["--raw", "-n", "2"], raw).id;
    let ls = stdout(thinkdbg(dir.path()).arg("ls"));
    let title = ls.lines().next().unwrap();
    assert!(title.ends_with("  Why is the sky blue?"), "{ls}");
    let show = stdout(thinkdbg(dir.path()).args(["show", &id]));
    assert!(show.contains("[raw prompt] <|im_start|>system"), "{show}");
    assert!(show.contains("Why is the sky blue?"), "{show}");
    let md = stdout(thinkdbg(dir.path()).args(["export", &id, "--format", "md"]));
    assert!(md.contains("**raw prompt**\n\n> &lt;\\|im\\_start\\|&gt;system"), "{md}");
}

#[test]
fn ls_columns_stay_put_with_long_and_wide_labels() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::llama());
    let first = record(dir.path(), &model, &["-n", "1", "--label", "R1"], "q").id;
    let session = stdout(thinkdbg(dir.path()).args(["ls", "--json"]));
    let session: serde_json::Value = serde_json::from_str(session.lines().next().unwrap()).unwrap();
    let s = session["session"].as_str().unwrap().to_string();
    for label in ["a-label-far-longer-than-its-column-ever-is", "深度求索推理模型第二次运行"]
    {
        record(dir.path(), &model, &["-n", "1", "--session", &s, "--label", label], "q");
    }
    let ls = stdout(thinkdbg(dir.path()).arg("ls"));
    let rows: Vec<&str> = ls.lines().filter(|l| l.starts_with("  r")).collect();
    assert_eq!(rows.len(), 3, "{ls}");
    assert!(rows[0].starts_with(&format!("  {first}")), "{ls}");
    // The token count ends in the same terminal column on every row.
    let col = |row: &str| row[..row.find(" tok").unwrap()].width();
    assert!(rows.iter().all(|r| col(r) == col(rows[0])), "{ls}");
    assert!(rows[1].contains('…') && rows[2].contains('…'), "{ls}");
}

#[test]
fn show_names_the_parent_and_marks_the_forced_token() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_tiny(dir.path(), &Tiny::qwen2());
    let args = ["-n", "6", "--ignore-eos", "--top-logprobs", "8"];
    let parent = record(dir.path(), &model, &args, "fork me").id;
    let child = last_line(
        thinkdbg(dir.path())
            .args(["fork", &parent, "--at", "2", "--alt", "6", "--model"])
            .arg(&model),
    );
    let show = stdout(thinkdbg(dir.path()).args(["show", &child, "--steps"]));
    assert!(show.contains(&format!("parent {parent}, forked at step 2")), "{show}");
    let forced: Vec<&str> = show.lines().filter(|l| l.contains("forced")).collect();
    assert_eq!(forced.len(), 1, "{show}");
    assert!(
        forced[0].trim_start().starts_with("2 ") && forced[0].ends_with("forced (rank 6)"),
        "{show}"
    );
}
