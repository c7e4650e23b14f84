#!/usr/bin/env python3
"""Decode speed of thinkdbg against llama.cpp on the same GGUF, threads and prompt, side by side.

Runs `llama_cpp_decode.py` (llama-cpp-python) and `thinkdbg run --jsonl --ignore-eos` in
alternation, `--reps` times each, and prints the median decode tok/s of both and their ratio.
thinkdbg's decode rate comes from the `t_us` of its first and last steps (the first step ends
the prefill), with full recording (`--top-logprobs 20`) and with the alternatives off
(`--top-logprobs 0`).

    python3 assets/bench/decode_vs_llama_cpp.py --thinkdbg target/release/thinkdbg \\
        --model ~/.cache/thinkdbg/models/SmolLM2-135M-Instruct.Q4_1.gguf --threads 2
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def llama_cpp(args):
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "llama_cpp_decode.py"), "--model", args.model,
         "--threads", str(args.threads), "--tokens", str(args.tokens), "--prompt", args.prompt],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["decode_tok_s"]


def thinkdbg(args, top):
    out = subprocess.run(
        [args.thinkdbg, "--threads", str(args.threads), "run", "--jsonl", "--ignore-eos",
         "-n", str(args.tokens), "--top-logprobs", str(top), "--model", args.model, args.prompt],
        check=True, capture_output=True, text=True,
    ).stdout
    steps = [json.loads(line) for line in out.splitlines()]
    span_s = (steps[-1]["t_us"] - steps[0]["t_us"]) / 1e6
    return (len(steps) - 1) / span_s


def main():
    ap = argparse.ArgumentParser(description="thinkdbg vs llama.cpp decode speed")
    ap.add_argument("--thinkdbg", default="target/release/thinkdbg")
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--prompt", default="Explain how photosynthesis works in plants.")
    args = ap.parse_args()
    runs = {"llama.cpp": [], "thinkdbg top-20": [], "thinkdbg top-0": []}
    for _ in range(args.reps):
        runs["llama.cpp"].append(llama_cpp(args))
        runs["thinkdbg top-20"].append(thinkdbg(args, 20))
        runs["thinkdbg top-0"].append(thinkdbg(args, 0))
    med = {k: statistics.median(v) for k, v in runs.items()}
    for k, v in runs.items():
        print(f"{k:<16} median {med[k]:7.1f} tok/s   runs {[round(x, 1) for x in v]}")
    print(f"ratio thinkdbg (top-20) / llama.cpp: {med['thinkdbg top-20'] / med['llama.cpp']:.2f}")
    print(f"recording overhead (top-20 vs top-0): {100 * (1 - med['thinkdbg top-20'] / med['thinkdbg top-0']):.1f}%")


if __name__ == "__main__":
    main()
