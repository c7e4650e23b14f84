#!/usr/bin/env python3
"""llama.cpp decode/prefill speed baseline (via llama-cpp-python).

Renders a one-turn chat prompt with the GGUF's ChatML template
(SmolLM2 style: default system message, then the user turn, then
``<|im_start|>assistant\\n``), prefills it in one batch, then decodes greedily
(argmax over the raw logits of the last position, no sampler) for exactly
``--tokens`` new tokens, ignoring EOS so every run does the same amount of
work.  Timings are taken around llama.cpp's ``Llama.eval`` calls only
(``llama_decode`` plus the logits read-back, which synchronises): the prefill
``eval`` of the whole prompt, and the sum of the per-token decode ``eval`` calls,
so Python-side argmax is excluded; the wall-clock decode rate including it is
reported too.  (``llama_perf_context`` reads back zeros with llama-cpp-python
0.3.36, so it is not used.)

Prints one JSON line per repetition:

    {"decode_tok_s": ..., "prefill_tok_s": ..., "decode_tok_s_wall": ..., ...}

Example:

    python3 assets/bench/llama_cpp_decode.py \\
        --model SmolLM2-135M-Instruct.Q4_1.gguf --threads 2 --tokens 128 \\
        --prompt "Explain how photosynthesis works in plants." --reps 3
"""

import argparse
import json
import time

import numpy as np

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
import llama_cpp
from llama_cpp import Llama

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def main():
    ap = argparse.ArgumentParser(description="llama.cpp greedy decode speed")
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--prompt", default="Explain how photosynthesis works in plants.")
    ap.add_argument("--reps", type=int, default=1, help="repetitions (one JSON line each)")
    ap.add_argument("--n-ctx", type=int, default=2048)
    args = ap.parse_args()

    llm = Llama(
        model_path=args.model,
        n_ctx=args.n_ctx,
        # llama-cpp-python keeps n_batch rows of scores without logits_all; the last
        # position's row must be among them for prompts past 512 tokens.
        n_batch=args.n_ctx,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        logits_all=False,
        verbose=False,
    )
    text = (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
        f"<|im_start|>user\n{args.prompt}<|im_end|>\n<|im_start|>assistant\n"
    )
    prompt_ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    for rep in range(args.reps):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt_ids)  # llama_decode + reading the logits (synchronises)
        t_prefill = time.perf_counter() - t0
        t_decode = 0.0
        t1 = time.perf_counter()
        for _ in range(args.tokens):
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            t = time.perf_counter()
            llm.eval([tok])
            t_decode += time.perf_counter() - t
        wall = time.perf_counter() - t1
        out = {
            "rep": rep,
            "threads": args.threads,
            "prompt_tokens": len(prompt_ids),
            "new_tokens": args.tokens,
            "prefill_tok_s": round(len(prompt_ids) / t_prefill, 2),
            "decode_tok_s": round(args.tokens / t_decode, 2),
            "decode_tok_s_wall": round(args.tokens / wall, 2),
            "t_prefill_ms": round(t_prefill * 1e3, 3),
            "t_decode_ms": round(t_decode * 1e3, 3),
            "llama_cpp_python": llama_cpp.__version__,
        }
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
