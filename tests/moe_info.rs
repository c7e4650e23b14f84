//! `model synth` and `model info` on a full-depth synthetic DeepSeek-R1 shape: the MoE
//! structure (experts, shared expert, gating rule, dense and MoE layers) is listed correctly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[test]
fn model_info_lists_the_moe_structure_of_an_r1_shaped_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r1.gguf");
    common::thinkdbg(dir.path())
        .args(["model", "synth", "--arch", "deepseek2", "--shape", "r1-narrow", "--out"])
        .arg(&out)
        .assert()
        .success();
    let info = common::thinkdbg(dir.path()).args(["model", "info"]).arg(&out).assert().success();
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
