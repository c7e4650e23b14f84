#!/usr/bin/env python3
"""Requantizes a GGUF with llama.cpp's own quantizer, through an F32 dequantization.

gguf-py dequantizes every tensor of `--model` to F32 (metadata and tokenizer copied as they
are), then llama-cpp-python's `llama_model_quantize` writes `--out` at `--type` (default
`Q4_K_M`, what R1 distills ship as). llama.cpp picks each tensor's type as it does for a
download: on a narrow model such as the demo (576 columns, not a multiple of 256) the rows
that cannot hold `Q4_K`/`Q6_K` blocks fall back to `Q5_0`/`Q8_0`.

    python3 assets/bench/requantize.py \\
        --model ~/.cache/thinkdbg/models/SmolLM2-135M-Instruct.Q4_1.gguf \\
        --out /tmp/smollm2-q4_k_m.gguf

`--type F32` writes the dequantization itself (an exact reference for the engine's F32 path).
Prints a JSON line with the count of tensors per type in the result.
"""

import argparse
import collections
import ctypes
import json
import os
import tempfile

import numpy as np

import gguf
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

# llama.cpp's `llama_ftype` values for the types this script is meant for.
FTYPES = {"Q4_K_M": 15, "Q4_K_S": 14, "Q5_K_M": 17, "Q6_K": 18, "Q8_0": 7, "Q4_0": 2}


def dequantize_to_f32(src, dst):
    reader = gguf.GGUFReader(src)
    arch = str(bytes(reader.fields["general.architecture"].parts[-1]), "utf-8")
    writer = gguf.GGUFWriter(dst, arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        if name == "general.file_type":
            writer.add_uint32(name, 0)  # all F32
            continue
        kind = field.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            sub = field.types[-1]
            if sub == gguf.GGUFValueType.STRING:
                values = [bytes(field.parts[i]) for i in field.data]
            else:
                values = [field.parts[i].tolist()[0] for i in field.data]
            writer.add_array(name, values)
        elif kind == gguf.GGUFValueType.STRING:
            writer.add_string(name, str(bytes(field.parts[-1]), "utf-8"))
        else:
            writer.add_key_value(name, field.parts[-1].tolist()[0], kind)
    for t in reader.tensors:
        data = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        # GGUF lists dims fastest first; numpy wants them slowest first.
        shape = tuple(int(d) for d in reversed(t.shape))
        writer.add_tensor(t.name, data.reshape(shape))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main():
    ap = argparse.ArgumentParser(description="requantize a GGUF with llama.cpp's quantizer")
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--type", default="Q4_K_M", choices=sorted(FTYPES) + ["F32"],
                    help="F32: the dequantization itself, no requantization")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    if args.type == "F32":
        dequantize_to_f32(args.model, args.out)
    else:
        requantize(args)
    types = collections.Counter(
        t.tensor_type.name for t in gguf.GGUFReader(args.out).tensors
    )
    print(json.dumps({"out": args.out, "type": args.type, "tensors": dict(types)}))


def requantize(args):
    with tempfile.TemporaryDirectory() as tmp:
        f32 = os.path.join(tmp, "f32.gguf")
        dequantize_to_f32(args.model, f32)
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = FTYPES[args.type]
        params.nthread = args.threads
        rc = llama_cpp.llama_model_quantize(
            f32.encode(), args.out.encode(), ctypes.byref(params)
        )
        if rc != 0:
            raise SystemExit(f"llama_model_quantize failed with {rc}")


if __name__ == "__main__":
    main()
