#!/usr/bin/env python3
"""The llama.cpp reference trace that `tests/it/score.rs` scores.

A greedy chat completion made by llama.cpp (llama-cpp-python 0.3.36, CPU, 2 threads, f32 KV
cache, ``logits_all=True``) on a synthetic F32 model written by ``thinkdbg model synth``,
with ``logprobs=True, top_logprobs=5``, saved as a logging proxy stores an exchange:
``{"request": {...}, "response": {...}}`` (one line) in the OpenAI chat-completion format
(``logprobs.content[]`` with ``token``, ``logprob``, ``bytes``, ``top_logprobs``). The synth
arguments and the model file's SHA-256 are kept beside it (``thinkdbg`` key, which importers
ignore) so the test can write the same file again and check it.

The model has random weights and a byte-level vocabulary, so a greedy decode can emit a lone
byte of a multi-byte character; llama-cpp-python then gives that token an empty text (and
never fills ``bytes``). The first seed (from 1) and question whose decode has MAX_TOKENS
whole-character tokens is used, so the trace can be scored token for token by text (the way a llama.cpp or vLLM
trace of the same model is); ``bytes`` is filled in from each token's text, as a server does,
and the numpy floats are written as plain numbers.

Run from the repository root after ``cargo build``::

    python3 assets/score_reference.py --bin target/debug/thinkdbg

Output: ``tests/fixtures/score/llama_cpp_greedy.json``.
"""

import argparse
import hashlib
import json
import os
import subprocess
import tempfile

from llama_cpp import Llama

OUT = os.path.join("tests", "fixtures", "score", "llama_cpp_greedy.json")
# User questions tried in turn for each seed (see below).
QUESTIONS = [f"What is {a} times {b}?" for a in range(2, 10) for b in range(2, 10)]
MAX_TOKENS = 16
TOP = 5


def synth(binary, args, path):
    subprocess.run([binary, "model", "synth", *args, "--out", path], check=True,
                   capture_output=True)
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def complete(llm, path, question):
    messages = [{"role": "user", "content": question}]
    request = {"model": os.path.basename(path), "messages": messages, "temperature": 0.0,
               "max_tokens": MAX_TOKENS, "logprobs": True, "top_logprobs": TOP}
    llm.reset()
    response = llm.create_chat_completion(
        messages=messages, temperature=0.0, top_k=1, max_tokens=MAX_TOKENS, logprobs=True,
        top_logprobs=TOP, seed=0)
    return request, response


def whole_characters(response):
    """MAX_TOKENS tokens (no early end of turn), each a whole character or more."""
    content = response["choices"][0]["logprobs"]["content"]
    return len(content) == MAX_TOKENS and all(
        e["token"] and "\ufffd" not in e["token"] for e in content)


def plain(value):
    """numpy floats as floats, `bytes` filled in from the token text where it is known."""
    if isinstance(value, dict):
        out = {k: plain(v) for k, v in value.items()}
        if "token" in out and out.get("bytes") is None and out["token"]:
            out["bytes"] = list(out["token"].encode("utf-8"))
        return out
    if isinstance(value, list):
        return [plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="target/debug/thinkdbg")
    ap.add_argument("--arch", default="qwen2")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, 200):
            synth_args = ["--arch", args.arch, "--shape", "tiny", "--quant", "f32",
                          "--seed", str(seed)]
            path = os.path.join(tmp, f"{args.arch}-tiny-f32-{seed}.gguf")
            sha = synth(args.bin, synth_args, path)
            llm = Llama(model_path=path, n_ctx=256, n_threads=2, n_threads_batch=2,
                        logits_all=True, type_k=0, type_v=0, flash_attn=False, verbose=False)
            found = None
            for question in QUESTIONS:
                request, response = complete(llm, path, question)
                if whole_characters(response):
                    found = (request, response)
                    break
            del llm
            if found is None:
                os.remove(path)
                continue
            request, response = found
            os.makedirs(os.path.dirname(OUT), exist_ok=True)
            with open(OUT, "w") as f:
                json.dump({"request": request, "response": plain(response),
                           "thinkdbg": {"synth_args": synth_args, "sha256": sha}}, f)
                f.write("\n")
            print(f"seed {seed}: wrote {OUT}")
            return
    raise SystemExit("no seed gave a decode of whole characters")


if __name__ == "__main__":
    main()
