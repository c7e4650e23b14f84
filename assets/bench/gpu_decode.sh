#!/usr/bin/env bash
# The CUDA build on a GPU machine, in one go (issue 9): first a correctness check, then decode
# speed at real shapes.
#
# Build on a CPU machine (README "Building for a GPU": the pip nvcc 13.0 recipe,
# CUDA_COMPUTE_CAP=90 for an H100/H200), copy the binary over, then on the GPU machine:
#
#   THINKDBG=./thinkdbg-cuda bash assets/bench/gpu_decode.sh
#
# The CUDA libraries (cuBLAS, cuRAND, NVRTC, the runtime) are looked up in Python's `nvidia`
# packages when LD_LIBRARY_PATH does not already find them.
#
# 1. check: small synthetic models of every architecture, greedy, 32 tokens, on the GPU and on
#    the CPU (THINKDBG_DEVICE=cpu, same binary), MoE models also with the fused expert kernel
#    off (THINKDBG_MOE_FUSED=0); prints how many tokens agree before the first difference, the
#    largest logprob difference over them, and for MoE models how often the same experts were
#    chosen, the largest router-probability difference, and the CPU router's margin where the
#    choice first differs (a tiny margin is rounding, a large one a fault).
# 2. bench: `thinkdbg model synth` writes random weights at real shapes (an R1-Distill-Qwen-7B
#    qwen2 and a Qwen3-30B-A3B qwen3moe, both Q4_K, plus the narrow R1-shaped deepseek2) and
#    `thinkdbg bench decode` runs each; printed: decode tok/s per recording mode, the weight
#    bytes a step reads and the fraction of the H200's ~4.8 TB/s memory bandwidth that is.
# Reports land in $OUT (or ./gpu-bench). PARTS=check or PARTS=bench runs one part.
set -uo pipefail
BIN=${THINKDBG:-target/release/thinkdbg}
OUTDIR=${OUT:-./gpu-bench}
WORK=${WORK:-/tmp/thinkdbg-gpu}
TOKENS=${TOKENS:-128}
PEAK_GB_S=${PEAK_GB_S:-4800}
PARTS=${PARTS:-check bench}
mkdir -p "$OUTDIR" "$WORK"
export THINKDBG_HOME="$WORK/home"

if ! ldd "$BIN" | grep -q "libcublas.*=> /"; then
  libs=$(python3 - <<'PY'
import glob, os
try:
    import nvidia
    roots = list(nvidia.__path__)
except ImportError:
    roots = []
dirs = set()
for r in roots:
    for f in glob.glob(os.path.join(r, "**", "lib", "lib*.so*"), recursive=True):
        dirs.add(os.path.dirname(f))
print(":".join(sorted(dirs)))
PY
)
  export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
if ldd "$BIN" | grep "not found"; then
  echo "missing libraries for $BIN (LD_LIBRARY_PATH=$LD_LIBRARY_PATH)" >&2
  exit 1
fi
"$BIN" --version

elapsed() { echo "  [$(( SECONDS - $1 )) s]"; }

check() {
  local t0=$SECONDS
  echo "== check: GPU against CPU, same binary, greedy, 32 tokens (cuda-split: MoE experts one by one, THINKDBG_MOE_FUSED=0)"
  for case in llama:tiny:q8_0 qwen2:tiny:q8_0 qwen2:r1-distill-1.5b:q4_k qwen3moe:tiny:f32 qwen3moe:tiny:q8_0 \
      qwen3moe:qwen3moe-mid:q8_0 qwen3moe:qwen3moe-mid:q4_k deepseek2:tiny:f32 deepseek2:tiny:q8_0; do
    IFS=: read -r arch shape quant <<<"$case"
    local gguf="$WORK/$arch-$shape-$quant.gguf" devs="cuda cpu"
    "$BIN" model synth --arch "$arch" --shape "$shape" --quant "$quant" --out "$gguf" 2>/dev/null \
      || { echo "synth $case failed"; continue; }
    [ "$arch" = qwen3moe ] || [ "$arch" = deepseek2 ] && devs="cuda cuda-split cpu"
    for dev in $devs; do
      local fused=1
      [ "$dev" = cuda-split ] && fused=0
      THINKDBG_DEVICE=${dev%-split} THINKDBG_MOE_FUSED=$fused "$BIN" --store "$WORK/store-check" run --model "$gguf" \
        -n 32 --ignore-eos --routing full --jsonl "Explain how photosynthesis works." \
        >"$WORK/check-$case-$dev.jsonl" 2>"$WORK/err-$dev" || { echo "$case on $dev failed:"; tail -5 "$WORK/err-$dev"; }
    done
    for dev in $devs; do
      [ "$dev" = cpu ] && continue
      python3 - "$WORK/check-$case-$dev.jsonl" "$WORK/check-$case-cpu.jsonl" "$case $dev" <<'PY'
import json, sys
def load(p):
    try:
        return [json.loads(l) for l in open(p) if l.startswith("{")]
    except OSError:
        return []
g, c = load(sys.argv[1]), load(sys.argv[2])
same, dlp, routes, route_same, dprob, margin = 0, 0.0, 0, 0, 0.0, None
for a, b in zip(g, c):
    dlp = max(dlp, abs(a["logprob"] - b["logprob"]))
    for la, lb in zip(a.get("routing") or [], b.get("routing") or []):
        routes += 1
        equal = sorted(la["experts"]) == sorted(lb["experts"])
        route_same += equal
        ra, rb = la.get("router") or [], lb.get("router") or []
        dprob = max([dprob] + [abs(x - y) for x, y in zip(ra, rb)])
        if not equal and margin is None and rb:
            # The CPU router's gap between the k-th and (k+1)-th expert where the choice differs.
            k = len(lb["experts"])
            top = sorted(rb, reverse=True)
            margin = top[k - 1] - top[k]
    if a["token_id"] != b["token_id"]:
        break
    same += 1
moe = ""
if routes:
    moe = f"; experts equal in {route_same}/{routes} layer-steps, router max |dp| {dprob:.1e}"
    if margin is not None:
        moe += f", first differing choice had a CPU k/k+1 margin of {margin:.1e}"
print(f"  {sys.argv[3]:<38} {len(g):>2}/{len(c):>2} tokens, {same:>2} equal before the first difference, "
      f"max |dlogprob| {dlp:.1e}{moe}")
PY
    done
  done
  elapsed $t0
}

# name arch shape
bench_one() {
  local name=$1 arch=$2 shape=$3 t0=$SECONDS
  local gguf="$WORK/$name.gguf"
  "$BIN" model synth --arch "$arch" --shape "$shape" --quant q4_k --out "$gguf" || return
  echo "  synth $(du -h "$gguf" | cut -f1)$(elapsed $t0)"
  "$BIN" bench decode --model "$gguf" --tokens "$TOKENS" --reps 3 --json "$OUTDIR/$name.json" || return
  python3 - "$OUTDIR/$name.json" "$PEAK_GB_S" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); peak = float(sys.argv[2])
bytes_tok = r["weight_bytes_per_token"]
for row in r["rows"]:
    gb_s = bytes_tok * row["decode_tok_s"] / 1e9
    print(f"  {sys.argv[3]:<16} {r.get('device', '?'):<5} {row['mode']:<8} {row['decode_tok_s']:8.1f} tok/s "
          f"(prefill {row['prefill_tok_s']:8.1f})  {bytes_tok / 1e9:6.2f} GB/token  {gb_s:8.1f} GB/s  "
          f"{100 * gb_s / peak:5.1f}% of {peak:.0f} GB/s")
PY
  rm -f "$gguf"
  elapsed $t0
}

bench() {
  echo "== bench: decode at real shapes, Q4_K, $TOKENS tokens x 3 runs per mode"
  bench_one r1-distill-7b qwen2 r1-distill-7b
  bench_one qwen3-30b-a3b qwen3moe qwen3-30b-a3b
  bench_one r1-narrow deepseek2 r1-narrow
}

for part in $PARTS; do "$part"; done
