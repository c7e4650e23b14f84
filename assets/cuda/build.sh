#!/usr/bin/env bash
# Builds the CUDA binary of thinkdbg on a machine without a CUDA toolkit or driver (the way the
# H200 figures in README were made): CUDA 13.0's pip wheels give nvcc and the libraries, a
# stub libcuda.so (every driver function cudarc links, doing nothing) stands in for the driver
# at link time, and the real driver's libcuda.so.1 is used at run time.
#
#   bash assets/cuda/build.sh            # -> target-cuda/release/thinkdbg
#
# Environment: CU13 (where the wheels go, /opt/cu13), CUDA_COMPUTE_CAP (90: H100/H200),
# CPU_TARGET (x86-64-v3: the binary runs on any AVX2 machine, not only this one),
# CARGO_TARGET_DIR (target-cuda). About 30 minutes on 2 cores, mostly candle's CUDA kernels.
# At run time the binary needs libcublas/libcurand/libcudart 13 on the library path (a PyTorch
# cu13 install has them under site-packages/nvidia/cu13/lib; assets/bench/gpu_decode.sh finds
# them).
set -euo pipefail
CU13=${CU13:-/opt/cu13}
CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
CPU_TARGET=${CPU_TARGET:-x86-64-v3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target-cuda}
cd "$(dirname "$0")/../.."

if [ ! -x "$CU13/nvidia/cu13/bin/nvcc" ]; then
  python3 -m pip install --target "$CU13" nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 \
    nvidia-nvvm==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 \
    nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88
fi
CUDA="$CU13/nvidia/cu13"
LINK="$CU13/link"
mkdir -p "$LINK"
# Unversioned names for the linker.
for lib in cublas cublasLt curand nvrtc cudart; do
  real=$(ls "$CUDA/lib/lib$lib.so."* | grep -v -e builtins -e alt | head -1)
  ln -sf "$real" "$LINK/lib$lib.so"
done
# The driver stub: cudarc's driver functions, by name, from its sources in the cargo registry.
cargo fetch --locked >/dev/null
sys=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-*/src/driver/sys/mod.rs | tail -1)
grep -oP 'pub unsafe fn \Kcu\w+' "$sys" | sort -u | awk '{print "void "$1"(void){}"}' >"$LINK/cuda_stub.c"
cc -shared -fPIC -o "$LINK/libcuda.so" "$LINK/cuda_stub.c" -Wl,-soname,libcuda.so.1

PATH="$CUDA/bin:$PATH" CUDA_HOME="$CUDA" CUDA_PATH="$CUDA" CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP \
  LIBRARY_PATH="$LINK:$CUDA/lib" RUSTFLAGS="-C target-cpu=$CPU_TARGET -L native=$LINK" \
  cargo build --release --locked --features cuda --bin thinkdbg
echo "built $CARGO_TARGET_DIR/release/thinkdbg"
