#!/usr/bin/env python3
"""llama.cpp prompt-processing speed on given token ids (via llama-cpp-python).

The baseline of ``thinkdbg bench score``: the same GGUF and the same token ids (the scored
trace: chat prompt plus 4k output tokens, written by thinkdbg as a JSON list) are evaluated
from an empty cache with ``n_batch = --batch`` (the chunk size thinkdbg scores with), timed
around ``Llama.eval`` (``llama_decode`` plus the logits read-back, which synchronises).
``logits_all=False``: llama.cpp computes the last position's logits only, i.e. its plain
prompt processing, the rate its ``pp`` benchmark reports.

Prints one JSON line with the median over ``--reps``:

    {"prefill_tok_s": ..., "tokens": ..., "threads": ..., "batch": ..., "reps": [...]}

Example:

    python3 assets/bench/llama_cpp_prefill.py --model SmolLM2-135M-Instruct.Q4_1.gguf \\
        --ids ids.json --threads 2 --batch 256 --reps 3
"""

import argparse
import json
import statistics
import time

import os
import sys

# llama-cpp-python where it is installed, else where `.ci/run` and the tests put it
# (`pip --target $THINKDBG_CACHE/python/llama-cpp-python-0.3.36`).
try:
    import llama_cpp  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.join(
        os.environ.get("THINKDBG_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "thinkdbg")),
        "python", "llama-cpp-python-0.3.36"))
from llama_cpp import Llama


def main():
    ap = argparse.ArgumentParser(description="llama.cpp prompt-processing speed")
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True, help="a JSON list of token ids")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    with open(args.ids) as f:
        ids = [int(t) for t in json.load(f)]
    llm = Llama(
        model_path=args.model,
        n_ctx=len(ids) + 16,
        n_batch=args.batch,
        n_ubatch=args.batch,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        logits_all=False,
        verbose=False,
    )
    rates = []
    for _ in range(args.reps):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        rates.append(len(ids) / (time.perf_counter() - t0))
    print(json.dumps({
        "prefill_tok_s": statistics.median(rates),
        "tokens": len(ids),
        "threads": args.threads,
        "batch": args.batch,
        "reps": rates,
    }))


if __name__ == "__main__":
    main()
