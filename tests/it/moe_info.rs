//! `model synth` and `model info` on a full-depth synthetic DeepSeek-R1 shape: the MoE
//! structure (experts, shared expert, gating rule, dense and MoE layers) is listed correctly.

use crate::common::{record, stdout, thinkdbg};

#[test]
fn model_info_lists_the_moe_structure_of_an_r1_shaped_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r1.gguf");
    thinkdbg(dir.path())
        .args(["model", "synth", "--arch", "deepseek2", "--shape", "r1-narrow", "--out"])
        .arg(&out)
        .assert()
        .success();
    let info = thinkdbg(dir.path()).args(["model", "info"]).arg(&out).assert().success();
    let text = String::from_utf8(info.get_output().stdout.clone()).unwrap();
    for want in [
        "architecture  deepseek2 (supported)",
        "experts       256 routed, 8 per token",
        "shared        1",
        "gating        sigmoid, top-8 of 256, 4 of 8 groups (top-2 sum), renormalised, scale 2.5",
        "moe layers    58 of 61: 3-60",
        "dense layers  0, 1, 2",
    ] {
        assert!(text.contains(want), "missing '{want}' in:\n{text}");
    }
}

/// `--routing off|selected|full` on `run --jsonl`, and `record` keeping the prompt's routing
/// in the store, from where the JSONL export carries it (`--no-prompt-routing` drops it).
#[test]
fn routing_detail_and_prompt_routing_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("moe.gguf");
    thinkdbg(dir.path())
        .args(["model", "synth", "--arch", "qwen3moe", "--shape", "tiny", "--out"])
        .arg(&model)
        .assert()
        .success();
    let run = |detail: &str| {
        let out = stdout(
            thinkdbg(dir.path())
                .args(["run", "--jsonl", "-n", "3", "--ignore-eos", "--routing", detail])
                .arg("--model")
                .arg(&model)
                .arg("hello"),
        );
        out.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let full = run("full");
    assert_eq!(full.len(), 3);
    for s in &full {
        let layers = s["routing"].as_array().unwrap();
        assert!(!layers.is_empty());
        for l in layers {
            let router = l["router"].as_array().unwrap();
            let sum: f64 = router.iter().map(|p| p.as_f64().unwrap()).sum();
            assert!((sum - 1.0).abs() < 0.01, "{sum}");
        }
    }
    let selected = run("selected");
    assert!(selected.iter().all(|s| s["routing"][0].get("router").is_none()));
    assert!(selected.iter().all(|s| s["routing"][0]["experts"].is_array()));
    let off = run("off");
    assert!(off.iter().all(|s| s.get("routing").is_none()), "{off:?}");
    thinkdbg(dir.path())
        .args(["run", "--routing", "most", "--model"])
        .arg(&model)
        .arg("hi")
        .assert()
        .failure()
        .stderr(predicates::str::contains("unknown routing detail 'most'"));

    let with = record(dir.path(), &model, &["-n", "2", "--ignore-eos"], "hello").id;
    let without =
        record(dir.path(), &model, &["-n", "2", "--ignore-eos", "--no-prompt-routing"], "hello").id;
    let export = |id: &str| stdout(thinkdbg(dir.path()).args(["export", id, "--format", "jsonl"]));
    let text = export(&with);
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let run_line = lines.iter().find(|l| l["type"] == "run").unwrap();
    let prompt_len = run_line["prompt_tokens"].as_array().unwrap().len();
    let pr: Vec<_> = lines.iter().filter(|l| l["type"] == "prompt_routing").collect();
    assert_eq!(pr.len(), prompt_len, "one prompt_routing line per prompt token");
    for (i, l) in pr.iter().enumerate() {
        assert_eq!(l["position"], i);
        assert!(!l["routing"].as_array().unwrap().is_empty());
    }
    assert!(!export(&without).contains("\"type\":\"prompt_routing\""));
}
