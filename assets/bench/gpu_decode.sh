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
# 1. check: tiny synthetic models of every architecture, greedy, 32 tokens, on the GPU and on
#    the CPU (THINKDBG_DEVICE=cpu, same binary); prints how many tokens agree before the first
#    difference, the largest logprob difference over them, and for MoE models whether the
#    same experts were chosen.
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
  echo "== check: GPU against CPU, same binary, greedy, 32 tokens"
  for spec in llama:tiny qwen2:tiny qwen3moe:tiny deepseek2:tiny qwen2:r1-distill-1.5b; do
    for quant in q8_0 q4_k; do
      local arch=${spec%%:*} shape=${spec#*:}
      local gguf="$WORK/$arch-$shape-$quant.gguf"
      "$BIN" model synth --arch "$arch" --shape "$shape" --quant "$quant" --out "$gguf" 2>/dev/null \
        || { echo "synth $spec $quant failed"; continue; }
      for dev in cuda cpu; do
        THINKDBG_DEVICE=$dev "$BIN" --store "$WORK/store-check" run --model "$gguf" -n 32 --ignore-eos --routing selected --jsonl \
          "Explain how photosynthesis works." >"$WORK/check-$arch-$shape-$quant-$dev.jsonl" 2>"$WORK/err-$dev" \
          || { echo "$spec $quant on $dev failed:"; tail -5 "$WORK/err-$dev"; }
      done
      python3 - "$WORK/check-$arch-$shape-$quant-cuda.jsonl" "$WORK/check-$arch-$shape-$quant-cpu.jsonl" "$spec $quant" <<'PY'
import json, sys
def load(p):
    try:
        return [json.loads(l) for l in open(p) if l.startswith("{")]
    except OSError:
        return []
g, c = load(sys.argv[1]), load(sys.argv[2])
same, dlp, routes, route_same = 0, 0.0, 0, 0
for a, b in zip(g, c):
    dlp = max(dlp, abs(a["logprob"] - b["logprob"]))
    for la, lb in zip(a.get("routing") or [], b.get("routing") or []):
        routes += 1
        route_same += sorted(la.get("experts", [])) == sorted(lb.get("experts", []))
    if a["token_id"] != b["token_id"]:
        break
    same += 1
moe = f", experts equal in {route_same}/{routes} layer-steps" if routes else ""
print(f"  {sys.argv[3]:<28} gpu {len(g):>2} / cpu {len(c):>2} tokens, {same} equal before the first difference, "
      f"max |dlogprob| {dlp:.2e}{moe}")
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
