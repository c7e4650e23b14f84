#!/usr/bin/env bash
# Decode speed of a CUDA build of thinkdbg on synthetic models, for a GPU session (issue 9).
#
# Build on the CPU machine (README "Building for a GPU": the pip nvcc 13.0 recipe, CUDA_COMPUTE_CAP=90
# for an H200), copy the binary over, then on the GPU machine:
#
#   THINKDBG=./thinkdbg-cuda LD_LIBRARY_PATH=$(python3 -c 'import nvidia,os;print(os.path.join(nvidia.__path__[0],"cu13/lib"))') \
#       bash assets/bench/gpu_decode.sh
#
# It writes the synthetic GGUFs (`thinkdbg model synth`, random weights at real shapes: an
# R1-Distill-Qwen-7B-shaped qwen2 and a Qwen3-30B-A3B-shaped qwen3moe, both Q4_K), runs
# `thinkdbg bench decode` on each, and prints decode tok/s, the weight bytes a step reads, and
# the fraction of the H200's ~4.8 TB/s memory bandwidth that implies. JSON reports land in $OUT
# (or ./gpu-bench).
set -euo pipefail
BIN=${THINKDBG:-target/release/thinkdbg}
OUTDIR=${OUT:-./gpu-bench}
TOKENS=${TOKENS:-128}
PEAK_GB_S=${PEAK_GB_S:-4800}
mkdir -p "$OUTDIR"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

# name arch shape
run_one() {
  local name=$1 arch=$2 shape=$3
  local gguf="$OUTDIR/$name.gguf"
  if [ ! -s "$gguf" ]; then
    "$BIN" model synth --arch "$arch" --shape "$shape" --quant q4_k --out "$gguf"
  fi
  "$BIN" bench decode --model "$gguf" --tokens "$TOKENS" --reps 3 --json "$OUTDIR/$name.json"
  python3 - "$OUTDIR/$name.json" "$PEAK_GB_S" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); peak = float(sys.argv[2])
bytes_tok = r["weight_bytes_per_token"]
for row in r["rows"]:
    gb_s = bytes_tok * row["decode_tok_s"] / 1e9
    print(f"{sys.argv[3]:<16} {row['mode']:<8} {row['decode_tok_s']:8.1f} tok/s  "
          f"{bytes_tok / 1e9:6.2f} GB/token  {gb_s:8.1f} GB/s  {100 * gb_s / peak:5.1f}% of {peak:.0f} GB/s")
PY
}

run_one r1-distill-7b qwen2 r1-distill-7b
run_one qwen3-30b-a3b qwen3moe qwen3-30b-a3b
run_one r1-narrow deepseek2 r1-narrow
