#!/usr/bin/env python3
"""Decode speed of thinkdbg against llama.cpp on the same GGUF, threads and prompt, side by side.

Runs `llama_cpp_decode.py` (llama-cpp-python) and `thinkdbg run --jsonl --ignore-eos` in
alternation, `--reps` times each, and prints the median decode tok/s of both and their ratio.
thinkdbg's decode rate comes from the `t_us` of its first and last steps (the first step ends
the prefill), with full recording (`--top-logprobs 20`, and every MoE layer's routing for MoE
models) and with recording off (`--top-logprobs 0 --routing off`).

    python3 assets/bench/decode_vs_llama_cpp.py --thinkdbg target/release/thinkdbg \\
        --model ~/.cache/thinkdbg/models/SmolLM2-135M-Instruct.Q4_1.gguf --threads 2

`--synth ARCH:SHAPE` (e.g. `qwen2:r1-distill-1.5b`, `qwen3moe:qwen3moe-mid`) first writes a
synthetic model with `thinkdbg model synth` into a temporary directory and measures that.
`--repeat N` repeats the prompt N times, so that decode runs deep in the context (attention
over a long cache: `--repeat 570` is about 4k tokens on the demo model). `--baseline BINARY`
adds a second thinkdbg build (an earlier commit, say) to the same alternation, for a
before/after ratio from one session.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def llama_cpp(args):
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "llama_cpp_decode.py"), "--model", args.model,
         "--threads", str(args.threads), "--tokens", str(args.tokens), "--prompt", args.prompt,
         "--n-ctx", str(args.n_ctx)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["decode_tok_s"]


def thinkdbg(args, top, binary=None):
    routing = ["--routing", "selected"] if top else ["--routing", "off", "--no-prompt-routing"]
    out = subprocess.run(
        [binary or args.thinkdbg, "--threads", str(args.threads), "run", "--jsonl",
         "--ignore-eos", "-n", str(args.tokens), "--top-logprobs", str(top), *routing,
         "--model", args.model, args.prompt],
        check=True, capture_output=True, text=True,
    ).stdout
    steps = [json.loads(line) for line in out.splitlines()]
    span_s = (steps[-1]["t_us"] - steps[0]["t_us"]) / 1e6
    return (len(steps) - 1) / span_s


def main():
    ap = argparse.ArgumentParser(description="thinkdbg vs llama.cpp decode speed")
    ap.add_argument("--thinkdbg", default="target/release/thinkdbg")
    ap.add_argument("--model", help="a GGUF file (or use --synth)")
    ap.add_argument("--synth", metavar="ARCH:SHAPE", help="measure a synthetic model instead")
    ap.add_argument("--synth-quant", default="q8_0")
    ap.add_argument("--synth-layers", type=int, help="fewer blocks than the shape has")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--prompt", default="Explain how photosynthesis works in plants.")
    ap.add_argument("--repeat", type=int, default=1,
                    help="the prompt repeated this many times (a long context: decode then "
                         "runs at the position the prompt ends; ~570 repeats of the default "
                         "prompt make ~4k tokens on the demo model)")
    ap.add_argument("--n-ctx", type=int, default=8192, help="llama.cpp's context size")
    ap.add_argument("--baseline", metavar="THINKDBG",
                    help="a second thinkdbg binary (e.g. an earlier build), measured in the "
                         "same alternation with full recording")
    args = ap.parse_args()
    args.prompt = " ".join([args.prompt] * args.repeat)
    if bool(args.model) == bool(args.synth):
        ap.error("give exactly one of --model and --synth")
    tmp = None
    if args.synth:
        arch, shape = args.synth.split(":", 1)
        tmp = tempfile.TemporaryDirectory()
        args.model = os.path.join(tmp.name, f"{arch}-{shape}.gguf")
        subprocess.run(
            [args.thinkdbg, "model", "synth", "--arch", arch, "--shape", shape,
             "--quant", args.synth_quant, "--out", args.model,
             *(["--layers", str(args.synth_layers)] if args.synth_layers else [])],
            check=True,
        )
    print(f"model {args.model}, {args.threads} threads, {args.tokens} tokens, {args.reps} reps",
          flush=True)
    print(f"prompt: {args.repeat} x {len(args.prompt) // args.repeat} characters", flush=True)
    runs = {"llama.cpp": [], "thinkdbg top-20": [], "thinkdbg top-0": []}
    if args.baseline:
        runs["baseline top-20"] = []
    for _ in range(args.reps):
        runs["llama.cpp"].append(llama_cpp(args))
        runs["thinkdbg top-20"].append(thinkdbg(args, 20))
        runs["thinkdbg top-0"].append(thinkdbg(args, 0))
        if args.baseline:
            runs["baseline top-20"].append(thinkdbg(args, 20, args.baseline))
    med = {k: statistics.median(v) for k, v in runs.items()}
    for k, v in runs.items():
        print(f"{k:<16} median {med[k]:7.1f} tok/s   runs {[round(x, 1) for x in v]}")
    if args.baseline:
        print(f"ratio thinkdbg / baseline (top-20): "
              f"{med['thinkdbg top-20'] / med['baseline top-20']:.2f}")
        print(f"ratio baseline (top-20) / llama.cpp: "
              f"{med['baseline top-20'] / med['llama.cpp']:.2f}")
    print(f"ratio thinkdbg (top-20) / llama.cpp: {med['thinkdbg top-20'] / med['llama.cpp']:.2f}")
    print(f"ratio thinkdbg (top-0) / llama.cpp: {med['thinkdbg top-0'] / med['llama.cpp']:.2f}")
    print(f"recording overhead (top-20 vs top-0): {100 * (1 - med['thinkdbg top-20'] / med['thinkdbg top-0']):.1f}%")


if __name__ == "__main__":
    main()
