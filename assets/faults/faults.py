#!/usr/bin/env python3
"""Fault-injection harness for the thinkdbg binary (Python 3 standard library only).

    python3 assets/faults/faults.py [--bin target/debug/thinkdbg] [--scratch DIR]
                                    [--timeout 20] [--only GROUP,...] [--out FILE]

Every case runs the binary in a fresh directory under the scratch dir with THINKDBG_STORE,
THINKDBG_CACHE, THINKDBG_LOG_FILE, THINKDBG_CONFIG and HF_HOME pointing inside it, NO_COLOR=1,
--offline where a model could be fetched, and a timeout (a timeout is a "hang").

Outcomes (one per case):
  ok            the command did what it should (success where success is right, and the result
                checked where a check exists)
  clear error   exit != 0, 1..3 non-empty stderr lines, the last (and only that one) starting
                with "error:" (a progress line such as "… loaded in 4 ms" may come before it)
                (the harness cannot judge whether it "names the problem"; it only requires more
                than a bare "error:")
  unclear error exit != 0 (no signal, no panic) but stderr is not a clear error
  wrong result  exit 0 where an error was due (bad data accepted), a partial import, a wrong
                run status, output silently lost, ...
  panic         exit 101 or "panicked" in stderr
  abort         killed by a signal (or exit 134)
  hang          timeout
and two marks counted on top of the outcome:
  data lost     runs or steps missing after a case that should keep them
  bytes leaked  ESC, BEL, other C0 controls (not TAB/LF/CR), DEL, C1 (U+0080-U+009F, or raw
                invalid bytes 0x80-0x9F), bidi controls U+202A-202E/U+2066-2069 in stdout+stderr
"""

import argparse
import gzip
import http.server
import io
import json
import os
import re
import resource
import shlex
import shutil
import signal
import socket
import socketserver
import stat
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

HOSTILE = "\x1b[31mRED\x1b]0;pwned\x07\x1b[2J\u009b31m\u202eRTL\u2066iso\x7fDEL\x08BS\x00NUL"

# --------------------------------------------------------------------------------------------
# running and classifying

OUTCOMES = ["ok", "clear error", "unclear error", "wrong result", "panic", "abort", "hang"]
MARKS = ["data lost", "bytes leaked"]


class R:
    def __init__(self, rc, out, err, hang, dur):
        self.rc, self.out, self.err, self.hang, self.dur = rc, out, err, hang, dur

    def first_err(self):
        for ln in self.err.decode("utf-8", "replace").splitlines():
            if ln.strip():
                return ln.strip()
        return ""


def forbidden(data):
    """Forbidden characters in bytes as a sorted list of descriptions."""
    s = data.decode("utf-8", "surrogateescape")
    bad = set()
    for ch in s:
        o = ord(ch)
        if o in (9, 10, 13):
            continue
        if o < 0x20 or o == 0x7F or 0x80 <= o <= 0x9F or 0x202A <= o <= 0x202E or 0x2066 <= o <= 0x2069:
            bad.add("U+%04X" % o)
        elif 0xDC80 <= o <= 0xDC9F:
            bad.add("raw byte 0x%02X" % (o - 0xDC00))
    return sorted(bad)


class H:
    """The harness: binary, scratch dir, results."""

    def __init__(self, binary, scratch, timeout):
        self.bin, self.scratch, self.timeout = binary, scratch, timeout
        self.results = []
        self.n = 0
        self.group = "?"

    def ctx(self, name):
        self.n += 1
        d = os.path.join(self.scratch, "c%04d-%s" % (self.n, re.sub(r"[^a-zA-Z0-9_.-]", "_", name)[:40]))
        os.makedirs(d)
        return Ctx(self, d)

    def record(self, name, cmd, r, outcome, lost=False, leak=None, note=""):
        leaks = leak if leak is not None else (forbidden(r.out + r.err) if r else [])
        self.results.append(dict(group=self.group, name=name, cmd=cmd, outcome=outcome,
                                 lost=lost, leak=leaks, note=note,
                                 err=r.first_err() if r else "", rc=r.rc if r else None,
                                 dur=r.dur if r else 0))
        mark = outcome + (" +DATA LOST" if lost else "") + (" +LEAK %s" % ",".join(leaks) if leaks else "")
        print("  %-14s %-44s %s %s" % (self.group, name[:44], mark, ("(" + note + ")") if note else ""), flush=True)


class Ctx:
    def __init__(self, h, d):
        self.h, self.d = h, d
        self.store = os.path.join(d, "store")
        self.env = dict(os.environ)
        for k in list(self.env):
            if k.startswith("THINKDBG_") or k in ("HF_HUB_OFFLINE",):
                del self.env[k]
        self.env.update(THINKDBG_STORE=self.store, THINKDBG_CACHE=os.path.join(d, "cache"),
                        THINKDBG_LOG_FILE=os.path.join(d, "thinkdbg.log"),
                        THINKDBG_CONFIG=os.path.join(d, "config.toml"),
                        HF_HOME=os.path.join(d, "hf"), NO_COLOR="1", HF_HUB_OFFLINE="1",
                        XDG_CONFIG_HOME=os.path.join(d, "xdg-config"),
                        XDG_DATA_HOME=os.path.join(d, "xdg-data"),
                        XDG_CACHE_HOME=os.path.join(d, "xdg-cache"), TERM="xterm")
        self.envdiff = {}

    def p(self, *parts):
        return os.path.join(self.d, *parts)

    def seed_store(self, template):
        shutil.copytree(template, self.store, symlinks=True)

    def cmdline(self, args, extra_env=None, redir=""):
        env = dict(extra_env or {})
        pre = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in env.items())
        s = "THINKDBG_STORE=%s " % shlex.quote(self.store)
        return (s + (pre + " " if pre else "") + "thinkdbg " + " ".join(shlex.quote(a) for a in args) + redir).strip()

    def run(self, args, stdin=None, extra_env=None, timeout=None, stdout=None, preexec=None,
            exe=None):
        env = dict(self.env)
        env.update(extra_env or {})
        t0 = time.monotonic()
        out_target = stdout if stdout is not None else subprocess.PIPE
        p = subprocess.Popen([exe or self.h.bin] + list(args), stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                             stdout=out_target, stderr=subprocess.PIPE, env=env, cwd=self.d,
                             start_new_session=True, preexec_fn=preexec)
        hang = False
        try:
            out, err = p.communicate(stdin, timeout=timeout or self.h.timeout)
        except subprocess.TimeoutExpired:
            hang = True
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = p.communicate()
        return R(p.returncode, out or b"", err or b"", hang, time.monotonic() - t0)


def is_clear(r):
    lines = [l for l in r.err.decode("utf-8", "replace").splitlines() if l.strip()]
    # the error line may follow up to two progress/warning lines (`run` prints "… loaded in N ms"
    # first); it must be the last line and the only one starting with "error:"
    errs = [l for l in lines if l.startswith("error:")]
    return (r.rc not in (0, None) and 1 <= len(lines) <= 3 and len(errs) == 1
            and lines[-1].startswith("error:") and len(lines[-1]) > len("error:") + 8)


def classify(r, expect, check=None):
    """expect: 'ok' (must succeed), 'error' (must fail), 'either'. check(r) -> None or a
    complaint string, applied to successful runs."""
    if r.hang:
        return "hang", "timeout after %.0fs" % r.dur
    if r.rc is not None and r.rc < 0:
        return "abort", "signal %s" % signal.Signals(-r.rc).name
    if r.rc == 134:
        return "abort", "exit 134"
    if r.rc == 101 or b"panicked" in r.err:
        return "panic", ""
    if r.rc == 0:
        if expect == "error":
            return "wrong result", "exit 0 on bad input"
        if check:
            c = check(r)
            if c:
                return "wrong result", c
        return "ok", ""
    if expect == "ok":
        return "wrong result", "failed where it should succeed (exit %d)" % r.rc
    if is_clear(r):
        return "clear error", ""
    return "unclear error", "exit %d, %d stderr lines" % (r.rc, len([l for l in r.err.splitlines() if l.strip()]))


def case(h, c, name, args, expect, check=None, stdin=None, extra_env=None, stdout=None,
         redir="", timeout=None, preexec=None, lost=False, note=""):
    r = c.run(args, stdin=stdin, extra_env=extra_env, stdout=stdout, timeout=timeout, preexec=preexec)
    outcome, why = classify(r, expect, check)
    h.record(name, c.cmdline(args, extra_env, redir), r, outcome, lost=lost,
             note="; ".join(x for x in (why, note) if x))
    return r


def ls_json(c):
    r = c.run(["ls", "--json"])
    if r.rc != 0:
        return None
    runs = []
    for ln in r.out.decode("utf-8", "replace").splitlines():
        try:
            runs.append(json.loads(ln))
        except ValueError:
            pass
    return runs


# --------------------------------------------------------------------------------------------
# GGUF reading and writing

GT_U8, GT_I8, GT_U16, GT_I16, GT_U32, GT_I32, GT_F32, GT_BOOL, GT_STR, GT_ARR, GT_U64, GT_I64, GT_F64 = range(13)
SCALAR = {GT_U8: "<B", GT_I8: "<b", GT_U16: "<H", GT_I16: "<h", GT_U32: "<I", GT_I32: "<i",
          GT_F32: "<f", GT_BOOL: "<?", GT_U64: "<Q", GT_I64: "<q", GT_F64: "<d"}


class Gguf:
    """A parsed GGUF file, with the byte offsets of the fields the mutations patch."""

    def __init__(self, data):
        self.data = data
        self.off = {}
        pos = 4

        def rd(fmt):
            nonlocal pos
            v = struct.unpack_from(fmt, data, pos)
            pos += struct.calcsize(fmt)
            return v[0]

        def rstr(tag=None):
            nonlocal pos
            if tag:
                self.off[tag] = pos
            n = rd("<Q")
            s = data[pos:pos + n]
            pos += n
            return s

        def rval(t, tag):
            nonlocal pos
            if t == GT_STR:
                return rstr(tag + ":strlen")
            if t == GT_ARR:
                self.off[tag + ":arrtype"] = pos
                et = rd("<I")
                self.off[tag + ":arrlen"] = pos
                n = rd("<Q")
                return [rval(et, tag + ":%d" % i if i < 2 else tag + ":x") for i in range(n)]
            self.off[tag + ":val"] = pos
            return rd(SCALAR[t])

        assert data[:4] == b"GGUF"
        self.version = rd("<I")
        self.off["n_tensors"] = pos
        nt = rd("<Q")
        self.off["n_kv"] = pos
        nkv = rd("<Q")
        self.kv = []
        for i in range(nkv):
            kpos = pos
            k = rstr().decode()
            self.off["kv:" + k] = kpos
            self.off["type:" + k] = pos
            t = rd("<I")
            v = rval(t, k)
            self.kv.append((k, t, v))
        self.off["tensors"] = pos
        self.tensors = []
        for i in range(nt):
            self.off["t%d" % i] = pos
            name = rstr().decode()
            self.off["t%d:ndims" % i] = pos
            nd = rd("<I")
            self.off["t%d:dims" % i] = pos
            dims = [rd("<Q") for _ in range(nd)]
            self.off["t%d:type" % i] = pos
            ty = rd("<I")
            self.off["t%d:offset" % i] = pos
            o = rd("<Q")
            self.tensors.append((name, dims, ty, o))
        self.off["tensors_end"] = pos
        align = dict((k, v) for k, _, v in self.kv).get("general.alignment", 32)
        self.data_start = (pos + align - 1) // align * align
        self.align = align

    def kvd(self):
        return dict((k, v) for k, _, v in self.kv)


def wval(t, v):
    if t == GT_STR:
        b = v if isinstance(v, bytes) else v.encode()
        return struct.pack("<Q", len(b)) + b
    if t == GT_ARR:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(wval(et, x) for x in items)
    return struct.pack(SCALAR[t], v)


def write_gguf(g, kv_override=None, kv_extra=None, version=None, drop=()):
    """Re-serialises a parsed GGUF with some metadata replaced or added (same tensors)."""
    kv_override = kv_override or {}
    kvs = []
    for k, t, v in g.kv:
        if k in drop:
            continue
        if k in kv_override:
            t, v = kv_override[k]
        elif t == GT_ARR:
            # the element type of an array is not kept by the parse; recover it from the bytes
            et = struct.unpack_from("<I", g.data, g.off[k + ":arrtype"])[0]
            v = (et, v)
        kvs.append((k, t, v))
    for k, (t, v) in (kv_extra or {}).items():
        kvs.append((k, t, v))
    out = bytearray(b"GGUF")
    out += struct.pack("<IQQ", version or g.version, len(g.tensors), len(kvs))
    for k, t, v in kvs:
        out += wval(GT_STR, k) + struct.pack("<I", t) + wval(t, v)
    out += g.data[g.off["tensors"]:g.off["tensors_end"]]
    while len(out) % g.align:
        out += b"\0"
    out += g.data[g.data_start:]
    return bytes(out)


def patch(data, off, fmt, val):
    b = bytearray(data)
    struct.pack_into(fmt, b, off, val)
    return bytes(b)


# --------------------------------------------------------------------------------------------
# groups


def group_gguf(h, base):
    h.group = "gguf"
    src = open(base, "rb").read()
    g = Gguf(src)
    kv = g.kvd()
    arch = kv["general.architecture"].decode()
    files = []  # (name, bytes or special, expect_info)

    for off in sorted(set([0, 3, 4, 7, 8, 15, 16, 23, 24, 40, g.off["kv:general.architecture"] + 10,
                           g.off["kv:tokenizer.ggml.tokens"] + 60, (g.off["tensors"] + g.off["tensors_end"]) // 2,
                           g.off["tensors_end"] - 3, g.data_start, g.data_start + 1,
                           (g.data_start + len(src)) // 2, len(src) - 1])):
        files.append(("truncated at %d of %d" % (off, len(src)), src[:off], "error"))
    files.append(("bad magic", b"GGUX" + src[4:], "error"))
    files.append(("big-endian magic", b"FUGG" + src[4:], "error"))
    for v in (0, 1, 4, 0xFFFFFFFF):
        files.append(("version %d" % v, patch(src, 4, "<I", v), "error"))
    files.append(("n_tensors 2^63", patch(src, g.off["n_tensors"], "<Q", 1 << 63), "error"))
    files.append(("n_tensors 2^32", patch(src, g.off["n_tensors"], "<Q", 1 << 32), "error"))
    files.append(("n_tensors 0", patch(src, g.off["n_tensors"], "<Q", 0), "either"))
    files.append(("n_kv 2^62", patch(src, g.off["n_kv"], "<Q", 1 << 62), "error"))
    files.append(("n_kv +1", patch(src, g.off["n_kv"], "<Q", len(g.kv) + 1), "error"))
    files.append(("key length 2^63", patch(src, g.off["kv:general.architecture"], "<Q", 1 << 63), "error"))
    files.append(("key length 0xFFFFFFFF", patch(src, g.off["kv:general.architecture"], "<Q", 0xFFFFFFFF), "error"))
    files.append(("arch value length 2^62", patch(src, g.off["general.architecture:strlen"], "<Q", 1 << 62), "error"))
    files.append(("arch value length +1000", patch(src, g.off["general.architecture:strlen"], "<Q", 1000), "error"))
    files.append(("kv type 99", patch(src, g.off["type:general.architecture"], "<I", 99), "error"))
    files.append(("tokens array length 2^62", patch(src, g.off["tokenizer.ggml.tokens:arrlen"], "<Q", 1 << 62), "error"))
    files.append(("tokens array element type 99", patch(src, g.off["tokenizer.ggml.tokens:arrtype"], "<I", 99), "error"))
    files.append(("tokens array of arrays", patch(src, g.off["tokenizer.ggml.tokens:arrtype"], "<I", GT_ARR), "error"))
    files.append(("token string length 2^63", patch(src, g.off["tokenizer.ggml.tokens:0:strlen"], "<Q", 1 << 63), "error"))
    # hyper-parameters (re-serialised; 'either' for model info: it describes, run must refuse)
    hp = [("block_count 0xFFFFFFFF", arch + ".block_count", GT_U32, 0xFFFFFFFF),
          ("block_count 0", arch + ".block_count", GT_U32, 0),
          ("block_count 2^63 (u64)", arch + ".block_count", GT_U64, 1 << 63),
          ("context_length 2^63", arch + ".context_length", GT_U64, 1 << 63),
          ("context_length 0", arch + ".context_length", GT_U32, 0),
          ("context_length 1", arch + ".context_length", GT_U32, 1),
          ("embedding_length 2^40", arch + ".embedding_length", GT_U64, 1 << 40),
          ("embedding_length 0", arch + ".embedding_length", GT_U32, 0),
          ("head_count 0", arch + ".attention.head_count", GT_U32, 0),
          ("head_count_kv 3 (not a divisor)", arch + ".attention.head_count_kv", GT_U32, 3),
          ("head_count_kv 0", arch + ".attention.head_count_kv", GT_U32, 0),
          ("feed_forward_length 2^33", arch + ".feed_forward_length", GT_U64, 1 << 33),
          ("rms_epsilon as string", arch + ".attention.layer_norm_rms_epsilon", GT_STR, "x"),
          ("rope.freq_base NaN", arch + ".rope.freq_base", GT_F32, float("nan")),
          ("block_count as string", arch + ".block_count", GT_STR, "two"),
          ("eos_token_id 2^31", "tokenizer.ggml.eos_token_id", GT_U32, 1 << 31),
          ("bos_token_id 0xFFFFFFFF", "tokenizer.ggml.bos_token_id", GT_U32, 0xFFFFFFFF),
          ("tokenizer.ggml.pre unknown", "tokenizer.ggml.pre", GT_STR, "no-such-pre"),
          ("tokenizer.ggml.model unknown", "tokenizer.ggml.model", GT_STR, "nope"),
          ("alignment 0", "general.alignment", GT_U32, 0),
          ("alignment 3", "general.alignment", GT_U32, 3),
          ("architecture unknown", "general.architecture", GT_STR, "gpt-j"),
          ("architecture hostile", "general.architecture", GT_STR, HOSTILE)]
    for name, key, t, v in hp:
        if key in kv:
            data = write_gguf(g, kv_override={key: (t, v)})
        else:
            data = write_gguf(g, kv_extra={key: (t, v)})
        files.append((name, data, "either"))
    files.append(("tokens empty", write_gguf(g, kv_override={"tokenizer.ggml.tokens": (GT_ARR, (GT_STR, []))}), "either"))
    files.append(("tokens hostile strings", write_gguf(g, kv_override={"tokenizer.ggml.tokens": (GT_ARR, (GT_STR, [HOSTILE + str(i) for i in range(len(kv["tokenizer.ggml.tokens"]))]))}), "either"))
    files.append(("merges garbage", write_gguf(g, kv_override={"tokenizer.ggml.merges": (GT_ARR, (GT_STR, ["a", "", "x y z"]))}), "either"))
    files.append(("chat template invalid jinja", write_gguf(g, kv_override={"tokenizer.chat_template": (GT_STR, "{% for %}{{")}), "either"))
    files.append(("chat template loops forever", write_gguf(g, kv_override={"tokenizer.chat_template": (GT_STR, "{% for i in range(999999999) %}{{ i }}{% endfor %}")}), "either"))
    files.append(("chat template hostile output", write_gguf(g, kv_override={"tokenizer.chat_template": (GT_STR, HOSTILE + "{{ messages[0]['content'] }}")}), "either"))
    files.append(("general.name hostile", write_gguf(g, kv_extra={"general.name": (GT_STR, HOSTILE)}) if "general.name" not in kv else write_gguf(g, kv_override={"general.name": (GT_STR, HOSTILE)}), "either"))
    files.append(("metadata key hostile", write_gguf(g, kv_extra={"x." + HOSTILE: (GT_STR, HOSTILE)}), "either"))
    files.append(("metadata string invalid UTF-8", write_gguf(g, kv_extra={"general.description": (GT_STR, b"\xff\xfe\x9b31m")}), "either"))
    files.append(("duplicate key", write_gguf(g, kv_extra={arch + ".block_count": (GT_U32, 9999)}), "either"))
    files.append(("missing block_count", write_gguf(g, drop=(arch + ".block_count",)), "either"))
    files.append(("missing tokens", write_gguf(g, drop=("tokenizer.ggml.tokens",)), "either"))
    # tensor infos
    files.append(("tensor n_dims 0xFFFFFFFF", patch(src, g.off["t0:ndims"], "<I", 0xFFFFFFFF), "error"))
    files.append(("tensor n_dims 5", patch(src, g.off["t0:ndims"], "<I", 5), "error"))
    files.append(("tensor dim 2^62", patch(src, g.off["t0:dims"], "<Q", 1 << 62), "error"))
    files.append(("tensor dim 0", patch(src, g.off["t0:dims"], "<Q", 0), "either"))
    files.append(("tensor dims overflow product", patch(patch(src, g.off["t0:dims"], "<Q", 1 << 40), g.off["t0:dims"] + 8, "<Q", 1 << 40), "error"))
    files.append(("tensor type 999", patch(src, g.off["t0:type"], "<I", 999), "either"))
    files.append(("tensor type IQ2_XXS (16)", patch(src, g.off["t0:type"], "<I", 16), "either"))
    files.append(("tensor type Q4_0 (size mismatch)", patch(src, g.off["t0:type"], "<I", 2), "either"))
    files.append(("tensor offset past the end", patch(src, g.off["t0:offset"], "<Q", len(src) * 4), "either"))
    files.append(("tensor offset 2^63", patch(src, g.off["t0:offset"], "<Q", 1 << 63), "either"))
    files.append(("tensor offset misaligned", patch(src, g.off["t0:offset"], "<Q", g.tensors[0][3] + 1), "either"))
    last = len(g.tensors) - 1
    files.append(("last tensor offset overlaps end", patch(src, g.off["t%d:offset" % last], "<Q", len(src) - g.data_start - 4), "either"))
    files.append(("tensor name hostile length", patch(src, g.off["t0"], "<Q", 1 << 40), "error"))
    files.append(("whole file zeros", b"\0" * len(src), "error"))
    files.append(("empty file", b"", "error"))

    def model_cases(name, path, info_expect):
        c = h.ctx("gguf-" + name)
        case(h, c, "model info: " + name, ["model", "info", path], info_expect)
        c2 = h.ctx("gguf-run-" + name)
        # run must refuse a damaged file; a file that only changes cosmetic metadata may run
        case(h, c2, "run -n 2: " + name, ["--offline", "run", "-m", path, "-n", "2", "hi"], "either" if info_expect != "error" else "error")

    gdir = os.path.join(h.scratch, "gguf")
    os.makedirs(gdir, exist_ok=True)
    for i, (name, data, expect) in enumerate(files):
        path = os.path.join(gdir, "m%03d.gguf" % i)
        with open(path, "wb") as f:
            f.write(data)
        model_cases(name, path, expect)
    # valid file, sanity
    c = h.ctx("gguf-valid")
    case(h, c, "model info: valid tiny", ["model", "info", base], "ok", check=lambda r: None if b"qwen2" in r.out else "no architecture in output")
    case(h, c, "model info --tensors: valid tiny", ["model", "info", "--tensors", base], "ok")
    case(h, c, "run -n 2: valid tiny", ["--offline", "run", "-m", base, "-n", "2", "hi"], "ok")
    # special files
    fifo = os.path.join(gdir, "fifo.gguf")
    os.mkfifo(fifo)
    for name, path in (("FIFO with no writer", fifo), ("/dev/urandom", "/dev/urandom"), ("/dev/zero", "/dev/zero"),
                       ("a directory", gdir), ("missing file", os.path.join(gdir, "nope.gguf")),
                       ("/dev/null", "/dev/null")):
        model_cases(name, path, "error")
    loop = os.path.join(gdir, "loop.gguf")
    os.symlink(loop, loop)
    model_cases("symlink loop", loop, "error")
    hostile_path = os.path.join(gdir, "x\x1b[31m\u202e.gguf")
    model_cases("missing file with escapes in its name", hostile_path, "error")


# --- JSONL -----------------------------------------------------------------------------------


def jl(lines):
    return ("\n".join(json.dumps(o, ensure_ascii=False, separators=(",", ":")) for o in lines) + "\n").encode()


def group_import(h, template, export_bytes, big_path):
    h.group = "import"
    lines = [json.loads(l) for l in export_bytes.decode().splitlines()]
    text_lines = export_bytes.decode().splitlines(keepends=True)
    idx = {t: [i for i, o in enumerate(lines) if o["type"] == t] for t in ("header", "session", "run", "step", "flag", "note")}
    run_ids = [lines[i]["id"] for i in idx["run"]]
    first_step = idx["step"][0]
    muts = []  # (name, bytes, expect)

    def mod(name, fn, expect="error"):
        ls = json.loads(json.dumps(lines))
        r = fn(ls)
        muts.append((name, jl(r if r is not None else ls), expect))

    for cut in (5, 60, len(text_lines[0]) + 30, sum(len(l) for l in text_lines[:idx["run"][0]]) + 200,
                sum(len(l) for l in text_lines[:first_step + 3]) + 50, len(export_bytes) - 2):
        muts.append(("truncated at byte %d" % cut, export_bytes[:cut], "error"))
    muts.append(("truncated at a line boundary mid-steps", "".join(text_lines[:first_step + 40]).encode(), "either"))
    muts.append(("empty file", b"", "either"))
    muts.append(("header only", text_lines[0].encode(), "either"))
    muts.append(("no header", "".join(text_lines[1:]).encode(), "error"))
    muts.append(("bad JSON on line 5", "".join(text_lines[:4] + ['{"type":"step",\n'] + text_lines[5:]).encode(), "error"))
    muts.append(("not an object on line 3", "".join(text_lines[:2] + ["[1,2,3]\n"] + text_lines[3:]).encode(), "error"))
    muts.append(("BOM before header", b"\xef\xbb\xbf" + export_bytes, "either"))
    muts.append(("CRLF line endings", export_bytes.replace(b"\n", b"\r\n"), "either"))
    muts.append(("blank lines between", export_bytes.replace(b"\n", b"\n\n"), "either"))
    muts.append(("invalid UTF-8 in a step", "".join(text_lines[:first_step + 2]).encode() + text_lines[first_step + 2].encode().replace(b'"text":"', b'"text":"\xff\xfe', 1) + "".join(text_lines[first_step + 3:]).encode(), "error"))
    muts.append(("raw ESC inside a JSON string", "".join(text_lines[:first_step]).encode() + text_lines[first_step].encode().replace(b'"text":"', b'"text":"\x1b[31m\x07', 1) + "".join(text_lines[first_step + 1:]).encode(), "error"))
    mod("header version 2", lambda ls: ls[0].update(version=2))
    mod("header format other", lambda ls: ls[0].update(format="other"))
    mod("header twice", lambda ls: [ls[0]] + ls)
    mod("unknown line type", lambda ls: ls[:2] + [{"type": "bogus"}] + ls[2:])
    mod("unknown extra field", lambda ls: ls[idx["step"][0]].update(zzz=1), "either")
    mod("step index as string", lambda ls: ls[first_step].update(index="0"))
    mod("logprob as string", lambda ls: ls[first_step].update(logprob="-0.1"))
    mod("token_id negative", lambda ls: ls[first_step].update(token_id=-5))
    mod("token_id 2^40", lambda ls: ls[first_step].update(token_id=1 << 40))
    mod("top not an array", lambda ls: ls[first_step].update(top={"a": 1}))
    mod("text is a number", lambda ls: ls[first_step].update(text=5))
    mod("phase unknown", lambda ls: ls[first_step].update(phase="dream"))
    mod("run id as string", lambda ls: ls[idx["run"][0]].update(id="x"))
    mod("run status unknown", lambda ls: ls[idx["run"][0]].update(status="zombie"))
    mod("run status recording", lambda ls: ls[idx["run"][0]].update(status="recording"), "either")
    mod("session created_at -1", lambda ls: ls[idx["session"][0]].update(created_at=-1), "either")
    mod("session created_at 2^70", lambda ls: ls[idx["session"][0]].update(created_at=1 << 70))
    mod("messages wrong type", lambda ls: ls[idx["run"][0]].update(messages="hi"))
    mod("sampler temperature -1", lambda ls: ls[idx["run"][0]].update(sampler=dict(ls[idx["run"][0]]["sampler"], temperature=-1.0)), "either")
    mod("step before its run", lambda ls: ls[:idx["run"][0]] + [ls[first_step]] + ls[idx["run"][0]:first_step] + ls[first_step + 1:])
    mod("step for an unknown run", lambda ls: ls[first_step].update(run=999999))
    mod("steps out of order", lambda ls: ls[:first_step] + [ls[first_step + 1], ls[first_step]] + ls[first_step + 2:])
    mod("duplicate step", lambda ls: ls[:first_step + 1] + [ls[first_step]] + ls[first_step + 1:])
    mod("step index gap", lambda ls: ls[:first_step + 1] + ls[first_step + 2:])
    mod("run line duplicated", lambda ls: ls[:idx["run"][0] + 1] + [ls[idx["run"][0]]] + ls[idx["run"][0] + 1:])
    mod("run in unknown session", lambda ls: ls[idx["run"][0]].update(session=424242))
    if idx["flag"]:
        f0 = idx["flag"][0]
        mod("flag span past the run", lambda ls: ls[f0].update(start=10, end=10 ** 6))
        mod("flag end < start", lambda ls: ls[f0].update(start=20, end=10))
        mod("flag start 2^64", lambda ls: ls[f0].update(start=1 << 64, end=1 << 64))
        mod("flag for unknown run", lambda ls: ls[f0].update(run=999999))
        mod("flag kind unknown", lambda ls: ls[f0].update(kind="nope"), "either")
        mod("flag severity unknown", lambda ls: ls[f0].update(severity="apocalyptic"))
    mod("note span past the run", lambda ls: ls + [{"type": "note", "run": run_ids[0], "start": 5, "end": 10 ** 7, "text": "x"}])
    mod("note ok", lambda ls: ls + [{"type": "note", "run": run_ids[0], "start": 5, "end": 8, "text": "fine"}], "ok")
    mod("dangling parent (dropped by design)", lambda ls: ls[idx["run"][0]].update(parent=[987654, 3]), "either")
    mod("self parent", lambda ls: ls[idx["run"][0]].update(parent=[run_ids[0], 3]))
    if len(run_ids) > 1:
        mod("parent cycle", lambda ls: (ls[idx["run"][0]].update(parent=[run_ids[1], 1]), ls[idx["run"][1]].update(parent=[run_ids[0], 1])) and None)
        mod("parent fork step past parent's steps", lambda ls: ls[idx["run"][1]].update(parent=[run_ids[0], 10 ** 6]))
        mod("parent valid", lambda ls: ls[idx["run"][1]].update(parent=[run_ids[0], 3]), "ok")
    mod("logprob > 0", lambda ls: ls[first_step].update(logprob=0.5))
    mod("alternative logprob > 0", lambda ls: ls[first_step]["top"][0].update(logprob=3.0))
    mod("entropy negative", lambda ls: ls[first_step].update(entropy=-1.0))
    mod("100k alternatives", lambda ls: ls[first_step].update(top=[{"id": i, "text": "t", "logprob": -20.0} for i in range(100000)]))
    mod("101 alternatives", lambda ls: ls[first_step].update(top=[{"id": i, "text": "t", "logprob": -20.0} for i in range(101)]), "either")
    mod("huge step text (16 MiB)", lambda ls: ls[first_step].update(text="a" * (16 << 20)), "either")
    mod("huge title (1 MiB)", lambda ls: ls[idx["session"][0]].update(title="t" * (1 << 20)), "either")
    mod("t_us 2^64", lambda ls: ls[first_step].update(t_us=1 << 64))
    mod("routing garbage on a dense run", lambda ls: ls[first_step].update(routing=[{"layer": 9999, "experts": [1, 1], "weights": [2.0]}]))
    gzpath = os.path.join(h.scratch, "import-gz")
    muts.append(("gzip (valid)", gzip.compress(export_bytes), "ok"))
    muts.append(("gzip truncated", gzip.compress(export_bytes)[:3000], "error"))
    muts.append(("gzip bomb-ish (zeros)", gzip.compress(b"\0" * (32 << 20)), "error"))
    muts.append(("random bytes", os.urandom(4096), "error"))
    muts.append(("huge single line without newline (64 MiB)", b'{"type":"header","format":"thinkdbg-jsonl","version":1}\n{"type":"session","id":1,"title":"' + b"x" * (64 << 20), "error"))

    base_runs = None
    for i, (name, data, expect) in enumerate(muts):
        c = h.ctx("import-%d" % i)
        c.seed_store(template)
        if base_runs is None:
            base_runs = ls_json(c)
        ext = ".jsonl.gz" if name.startswith("gzip") else ".jsonl"
        path = c.p("in" + ext)
        with open(path, "wb") as f:
            f.write(data)
        r = c.run(["import", path])
        outcome, why = classify(r, expect)
        after = ls_json(c)
        lost = after is None or not all(any(a["run"] == b["run"] and a["steps"] == b["steps"] for a in after) for b in base_runs)
        if after is not None and r.rc != 0 and len(after) != len(base_runs) and outcome not in ("hang",):
            outcome, why = "wrong result", "failed import left %d new run(s) (not all or nothing)" % (len(after) - len(base_runs))
        if after is not None and r.rc == 0 and expect != "error":
            new = [a for a in after if a["run"] not in [b["run"] for b in base_runs]]
            if any(a["status"] == "recording" for a in new):
                why += "; imported run left 'recording'"
        h.record("import: " + name, c.cmdline(["import", path]), r, outcome, lost=lost, note=why)
        if r.rc == 0 and after is not None:
            # what was accepted must also be readable: show, export, stats, diff on the new runs
            new = [a["run"] for a in after if a["run"] not in [b["run"] for b in base_runs]]
            for rid in new[:2]:
                for args in (["show", rid, "--steps"], ["export", rid, "--format", "html"], ["stats", rid], ["diff", rid, new[-1]]):
                    r2 = c.run(args)
                    o2, w2 = classify(r2, "ok")
                    if o2 != "ok" or forbidden(r2.out + r2.err):
                        h.record("after import '%s': %s" % (name, " ".join(args[:1] + args[2:])), c.cmdline(args), r2, o2, note=w2)

    # directory, missing, FIFO fed by a writer, /dev/urandom
    c = h.ctx("import-special")
    c.seed_store(template)
    for name, path in (("a directory", c.d), ("missing file", c.p("nope.jsonl")), ("/dev/urandom", "/dev/urandom"), ("/dev/null", "/dev/null")):
        case(h, c, "import: " + name, ["import", path], "either" if path == "/dev/null" else "error")
    fifo = c.p("fifo.jsonl")
    os.mkfifo(fifo)

    def feed():
        try:
            with open(fifo, "wb") as f:
                f.write(export_bytes)
        except OSError:
            pass
    t = threading.Thread(target=feed, daemon=True)
    t.start()
    case(h, c, "import: FIFO fed by a writer", ["import", fifo], "ok")

    # disk full while importing (RLIMIT_FSIZE with SIGXFSZ ignored: writes fail with EFBIG)
    for limit in (550_000, 600_000, 700_000, 1_000_000):
        c = h.ctx("import-diskfull-%d" % limit)
        c.seed_store(template)
        before = ls_json(c)

        def pre(limit=limit):
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        r = c.run(["import", big_path], preexec=pre)
        outcome, why = classify(r, "either")
        after = ls_json(c)
        lost = after is None or not all(any(a["run"] == b["run"] and a["steps"] == b["steps"] for a in after) for b in before)
        if after is None:
            why += "; store unopenable after the failed import: " + c.run(["ls"]).first_err()
        elif r.rc != 0 and len(after) != len(before):
            outcome, why = "wrong result", "failed import left %d new run(s)" % (len(after) - len(before))
        elif r.rc == 0 and len(after) == len(before):
            outcome, why = "wrong result", "exit 0 but nothing imported"
        h.record("import under a %d-byte file size limit (disk full)" % limit,
                 "ulimit -f %d; " % (limit // 1024) + c.cmdline(["import", big_path]), r, outcome, lost=lost, note=why)

    # killed import
    for delay in (0.05, 0.15, 0.3, 0.6, 1.0, 2.0):
        c = h.ctx("import-kill-%s" % delay)
        c.seed_store(template)
        before = ls_json(c)
        env = dict(c.env)
        p = subprocess.Popen([h.bin, "import", big_path], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(delay)
        finished = p.poll() is not None
        if not finished:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        r = c.run(["ls", "--json"])
        outcome, why = classify(r, "ok")
        after = ls_json(c) or []
        lost = r.rc != 0 or not all(any(a["run"] == b["run"] and a["steps"] == b["steps"] for a in after) for b in before)
        new = [a for a in after if a["run"] not in [b["run"] for b in before]]
        partial = [a for a in new if a["status"] != "complete"]
        if partial:
            outcome, why = "wrong result", "partial run(s) after the kill: " + ", ".join("%s %s %d steps" % (a["run"], a["status"], a["steps"]) for a in partial)
        note = ("import had finished before the kill; " if finished else "killed after %.2fs; " % delay) + "%d new run(s)" % len(new)
        h.record("import killed (SIGKILL) after %.2fs, then ls" % delay, "thinkdbg import BIG & sleep %s; kill -9 $!; thinkdbg ls --json" % delay, r, outcome, lost=lost, note="; ".join(x for x in (why, note) if x))


# --- store damage -----------------------------------------------------------------------------


def export_all(c, store, run_ids):
    got = {}
    for rid in run_ids:
        r = c.run(["--store", store, "export", rid])
        got[rid] = r.out if r.rc == 0 else None
    return got


def steps_of(b):
    return [l for l in b.splitlines() if b'"type":"step"' in l] if b else None


def group_store(h, template, run_ids, ref):
    h.group = "store"
    db_size = os.path.getsize(os.path.join(template, "db"))
    snaps = [f for f in os.listdir(template) if f.startswith("snap.")]

    def flip(path, off):
        with open(path, "r+b") as f:
            f.seek(off)
            b = f.read(1)
            f.seek(off)
            f.write(bytes([(b[0] if b else 0) ^ 0xFF]))

    def trunc(path, n):
        with open(path, "r+b") as f:
            f.truncate(n)

    damages = []
    for off in (0, 7, 100, 4096, 20000, 100000, db_size // 2, db_size - 1):
        if off < db_size:
            damages.append(("db byte flipped at %d" % off, lambda s, off=off: flip(os.path.join(s, "db"), off)))
    damages.append(("db bytes 8192..8292 zeroed", lambda s: _zero(os.path.join(s, "db"), 8192, 100)))
    for n in (0, 4096, db_size // 2, db_size - 100):
        damages.append(("db truncated to %d" % n, lambda s, n=n: trunc(os.path.join(s, "db"), n)))
    damages.append(("db removed", lambda s: os.remove(os.path.join(s, "db"))))
    for sn in snaps[:1]:
        damages.append(("snapshot byte flipped", lambda s, sn=sn: flip(os.path.join(s, sn), 10)))
        damages.append(("snapshot truncated to 0", lambda s, sn=sn: trunc(os.path.join(s, sn), 0)))
        damages.append(("snapshot removed", lambda s, sn=sn: os.remove(os.path.join(s, sn))))
        damages.append(("snapshot removed + db byte flipped at %d" % (db_size // 2), lambda s, sn=sn: (os.remove(os.path.join(s, sn)), flip(os.path.join(s, "db"), db_size // 2))))
    damages.append(("conf removed", lambda s: os.remove(os.path.join(s, "conf"))))
    damages.append(("conf garbage", lambda s: open(os.path.join(s, "conf"), "wb").write(b"\x1b[31mgarbage\xff\n")))
    damages.append(("backup dir removed (db fine)", lambda s: shutil.rmtree(os.path.join(s, "backup"))))
    damages.append(("a backup file corrupted (db fine)", lambda s: _corrupt_first_backup(s)))
    damages.append(("backup dir removed + db flipped at %d" % (db_size // 2), lambda s: (shutil.rmtree(os.path.join(s, "backup")), flip(os.path.join(s, "db"), db_size // 2))))
    damages.append(("db flipped at %d + a backup corrupted" % (db_size // 2), lambda s: (_corrupt_first_backup(s), flip(os.path.join(s, "db"), db_size // 2))))

    for name, dmg in damages:
        c = h.ctx("store-" + name)
        c.seed_store(template)
        dmg(c.store)
        # ls: a working listing (perhaps with a warning), or one clear error line
        r = c.run(["ls"])
        outcome, why = classify(r, "either")
        if r.rc == 0 and not all(rid.encode() in r.out for rid in run_ids):
            why = "ls lists only %d of %d runs" % (sum(rid.encode() in r.out for rid in run_ids), len(run_ids))
            if b"salvage" not in r.err:
                outcome = "wrong result"
                why += " and does not name store salvage"
        if r.rc == 0:
            # the damaged store opened: what it reads must be what was written (no silent change)
            here = export_all(c, c.store, run_ids)
            silent = [rid for rid in run_ids if here.get(rid) and steps_of(here[rid]) != steps_of(ref[rid])]
            if silent:
                outcome, why = "wrong result", "damaged store reads different steps for %s without an error" % silent
        h.record("ls after: " + name, c.cmdline(["ls"]), r, outcome, note=why)
        r = c.run(["store", "check"])
        outcome, why = classify(r, "either")
        if r.rc == 0 and name.startswith(("db ", "snapshot", "conf")) and b"damaged" not in r.out + r.err:
            why = "exit 0 after damage (%s)" % (r.out.decode("utf-8", "replace").splitlines() or [""])[-1][:80]
        h.record("store check after: " + name, c.cmdline(["store", "check"]), r, outcome if outcome != "unclear error" or r.rc != 1 else "ok", note=why or ("exit 1, report on stdout" if r.rc == 1 else ""))
        new = c.p("salvaged")
        r = c.run(["store", "salvage", "--to", new])
        outcome, why = classify(r, "either")
        got = export_all(c, new, run_ids) if os.path.isdir(new) else {}
        missing = [rid for rid in run_ids if not got.get(rid)]
        changed = [rid for rid in run_ids if got.get(rid) and steps_of(got[rid]) != steps_of(ref[rid])]
        lost = bool(missing or changed)
        if lost:
            why = "; ".join(x for x in (why, "missing %s" % missing if missing else "", "steps differ %s" % changed if changed else "") if x)
            no_backup = "backup" in name
            if no_backup:
                why += " (backups gone too: loss expected)"
        elif r.rc != 0 and outcome in ("clear error", "unclear error"):
            outcome, why = "ok", "exit %d but every run recovered" % r.rc
        h.record("salvage after: " + name, c.cmdline(["store", "salvage", "--to", new]), r, outcome, lost=lost, note=why)

    # store path problems
    c = h.ctx("store-is-file")
    with open(c.store, "w") as f:
        f.write("not a dir")
    case(h, c, "ls: store path is a regular file", ["ls"], "error")
    c = h.ctx("store-under-file")
    with open(c.p("f"), "w") as f:
        f.write("x")
    c.store = c.p("f", "store")
    c.env["THINKDBG_STORE"] = c.store
    case(h, c, "ls: store path under a regular file", ["ls"], "error")
    case(h, c, "import: store path under a regular file", ["import", os.path.join(REPO, "sessions", "sky-blue.jsonl")], "error")
    # store in use by another process: a `record` against a server that never answers holds it
    c = h.ctx("store-in-use")
    c.seed_store(template)
    srv = Server("silent")
    p = subprocess.Popen([h.bin, "record", "--endpoint", srv.url, "--remote-model", "m", "--idle-timeout", "30", "hi"],
                         env=c.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    time.sleep(1.5)
    for args in (["ls"], ["ls", "--json"], ["import", os.path.join(REPO, "sessions", "sky-blue.jsonl")], ["store", "check"]):
        r = c.run(args)
        outcome, why = classify(r, "either")
        if r.rc == 0 and args[0] != "store":
            why = "succeeded while another process holds the store"
        elif outcome == "clear error" and b"in use" not in r.err:
            why = "error does not say the store is in use"
        h.record(" ".join(args[:2]) + ": store in use by a recording process", c.cmdline(args), r, outcome, note=why)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    srv.close()
    r = c.run(["ls", "--json"])
    after = ls_json(c) or []
    lost = not all(rid in [a["run"] for a in after] for rid in run_ids)
    rec = [a for a in after if a["run"] not in run_ids]
    outcome, why = classify(r, "ok")
    why = "recorder killed; its run: %s" % (", ".join("%s %s" % (a["run"], a["status"]) for a in rec) or "none")
    if any(a["status"] == "recording" for a in rec):
        outcome = "wrong result"
    h.record("ls after the holder was killed", c.cmdline(["ls", "--json"]), r, outcome, lost=lost, note=why)


def _zero(path, off, n):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(b"\0" * n)


def _corrupt_first_backup(store):
    d = os.path.join(store, "backup")
    f = sorted(os.listdir(d))[0]
    p = os.path.join(d, f)
    data = bytearray(open(p, "rb").read())
    for i in range(100, min(len(data), 400)):
        data[i] ^= 0x5A
    open(p, "wb").write(bytes(data))


# --- escapes ---------------------------------------------------------------------------------


def hostile_export(export_bytes):
    """Every string field of a valid export (ids and enums aside) replaced by hostile text."""
    out = []
    keep = {"type", "format", "phase", "status", "stop", "logprob_kind", "kind", "severity", "origin", "role", "source", "arch", "fingerprint", "quant"}

    def walk(v, key=None):
        if isinstance(v, dict):
            return {k: walk(x, k) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x, key) for x in v]
        if isinstance(v, str) and key not in keep:
            return HOSTILE + v
        return v
    for l in export_bytes.decode().splitlines():
        o = json.loads(l)
        o = walk(o)
        if o["type"] == "flag":
            o["detail"] = HOSTILE + o["detail"]
        out.append(o)
    # a note and a user flag with hostile text
    run = next(o for o in out if o["type"] == "run")
    out.append({"type": "note", "run": run["id"], "start": 2, "end": 6, "text": HOSTILE + "note"})
    out.append({"type": "flag", "run": run["id"], "start": 1, "end": 3, "kind": {"user": HOSTILE + "label"}, "severity": "warn", "detail": HOSTILE, "origin": "user"})
    return jl(out)


def group_escapes(h, template, export_bytes):
    h.group = "escapes"
    c = h.ctx("escapes")
    c.seed_store(template)
    path = c.p("hostile.jsonl")
    data = hostile_export(export_bytes)
    with open(path, "wb") as f:
        f.write(data)
    r = c.run(["import", path])
    if r.rc != 0:
        # the user flag line may not be accepted as written: retry without it
        data = b"\n".join(l for l in data.splitlines() if b'"origin":"user"' not in l) + b"\n"
        print("    user flag line refused: " + r.first_err())
        with open(path, "wb") as f:
            f.write(data)
        r2 = c.run(["import", path])
        h.record("import hostile export (with a user flag)", c.cmdline(["import", path]), r, classify(r, "ok")[0], note="first stderr: " + r.first_err())
        r = r2
    outcome, why = classify(r, "ok")
    h.record("import hostile export", c.cmdline(["import", path]), r, outcome, note=why)
    ids = [l.strip() for l in r.out.decode().splitlines() if l.strip().startswith("r")]
    if not ids:
        return
    a = ids[0]
    b = ids[1] if len(ids) > 1 else ids[0]
    base_runs = [x["run"] for x in (ls_json(c) or []) if x["run"] not in ids]
    other = base_runs[0] if base_runs else a
    cmds = [["show", a], ["show", a, "--steps"], ["flags", a], ["flags", a, "--json"], ["stats", a], ["stats", a, "--json"],
            ["ls"], ["ls", "--json"], ["diff", a, b], ["diff", a, b, "--stat"], ["diff", a, other], ["export", a],
            ["export", a, "--format", "md"], ["export", a, "--format", "html"], ["store", "check"]]
    # the hostile text must reach the output as visible text, else the check proves nothing
    seen = lambda r: None if b"RED" in r.out and b"pwned" in r.out else "hostile text not in the output"
    for args in cmds:
        case(h, c, " ".join(args[:1] + [x for x in args[2:]]) + " (hostile run)", args, "ok",
             check=seen if args[0] in ("show", "export", "flags") and "--json" not in args else None)
    tui_leak_case(h, c, "TUI sessions+trace screens on the hostile run", b"2\x1b[C\x1b[C")
    # TUI? covered in group 'terminal'. Error messages carrying hostile text:
    c2 = h.ctx("escapes-errors")
    c2.seed_store(template)
    bad = c2.p("bad.jsonl")
    with open(bad, "wb") as f:
        f.write(b'{"type":"header","format":"thinkdbg-jsonl","version":1}\n{"type":"\x1b[31m\x07\xc2\x9b\xe2\x80\xae' + b'"}\n')
    errs = [["show", "r\x1b[2J\x07"], ["show", "r9\u202e"], ["rm", "s\x1b]0;x\x07"], ["export", "r\x9b31m"],
            ["import", c2.p("no\x1b[31mfile\u202e.jsonl")], ["import", bad],
            ["model", "info", c2.p("x\x1b[2J.gguf")], ["--offline", "run", "-m", "hf:\x1b[31m/\x07/x.gguf", "hi"],
            ["--offline", "run", "-m", c2.p("\u202enope.gguf"), "hi"], 
            ["diff", "r\x1b[1m", "r\x07"], ["flags", "r1", "--kind", "\x1b[31mx\u2066"], ["fork", "r\x1b", "--at", "1"],
            ["record", "--endpoint", "http://\x1b[31m\x07host/", "--remote-model", "m\u202e", "hi"]]
    for args in errs:
        case(h, c2, "error message: " + " ".join(args)[:40].encode("unicode_escape").decode(), args, "error")
    c3 = h.ctx("escapes-config")
    with open(c3.env["THINKDBG_CONFIG"], "wb") as f:
        f.write(b'[analysis.low_confidence]\n"\\u001b[31mkey\\u202e\\u0007" = 1\n')
    c3.seed_store(template)
    rid = (ls_json(c3) or [{"run": "r1"}])[0]["run"]
    case(h, c3, "error message: config with a hostile unknown key", ["flags", rid, "--recompute"], "error")
    with open(c3.env["THINKDBG_CONFIG"], "wb") as f:
        f.write(b'[analysis]\nx = "\x1b[31m\n')
    case(h, c3, "error message: config with a broken hostile string", ["stats", rid], "error")
    c4 = h.ctx("escapes-theme")
    case(h, c4, "error message: --theme hostile, TUI", ["--theme", "\x1b[31mt\x07\u202e", "--store", c4.store], "error")
    # GGUF with hostile metadata through model info is in the gguf group; run one here too
    return a


def tui_leak_case(h, c, name, keys):
    """Runs the TUI under a pty (script) on c's store, sends keys then q, and looks in what it
    drew for the hostile payload's own sequences (the TUI's escapes are legitimate there)."""
    script = shutil.which("script")
    if not script:
        return
    cmdl = "%s --store %s" % (shlex.quote(h.bin), shlex.quote(c.store))
    env = dict(c.env)
    t0 = time.monotonic()
    p = subprocess.Popen([script, "-qec", "stty cols 120 rows 40; " + cmdl, "/dev/null"], env=env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    time.sleep(2.5)
    try:
        for k in (keys, b"q", b"q"):
            p.stdin.write(k)
            p.stdin.flush()
            time.sleep(0.7)
    except BrokenPipeError:
        pass
    hang = False
    try:
        out, err = p.communicate(timeout=8)
    except subprocess.TimeoutExpired:
        hang = True
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
    leaks = [d for d, pat in (("OSC title (ESC ] 0;pwned)", b"\x1b]0;pwned"), ("U+202E", "\u202e".encode()),
                              ("U+2066", "\u2066".encode()), ("C1 U+009B", "\u009b".encode()), ("BEL", b"\x07"),
                              ("ESC[31mRED", b"\x1b[31mRED"), ("DEL", b"\x7f")) if pat in out]
    r = R(p.returncode, b"", b"", hang, time.monotonic() - t0)
    outcome = "hang" if hang else "panic" if (p.returncode == 101 or b"panicked" in out) else "abort" if p.returncode < 0 else "ok" if p.returncode == 0 else "unclear error"
    note = "drew %d bytes" % len(out) + ("" if b"RED" in out else "; hostile text not seen on screen")
    h.record(name, "script -qec %s /dev/null  (keys %r, q)" % (shlex.quote(cmdl), keys), r, outcome, leak=leaks, note=note)


# --- output failures, log file, terminal ---------------------------------------------------------


def group_output(h, template, model):
    h.group = "output"
    c = h.ctx("output")
    c.seed_store(template)
    rid = (ls_json(c) or [{"run": "r1"}])[0]["run"]
    for args in (["ls"], ["ls", "--json"], ["show", rid], ["show", rid, "--steps"], ["model", "info", model],
                 ["export", rid], ["export", rid, "--format", "md"], ["export", rid, "--format", "html"],
                 ["flags", rid], ["stats", rid, "--json"], ["diff", rid, rid], ["store", "check"],
                 ["--offline", "run", "-m", model, "-n", "4", "hi"], ["--offline", "run", "--jsonl", "-m", model, "-n", "4", "hi"]):
        with open("/dev/full", "wb") as full:
            r = c.run(args, stdout=full)
        outcome, why = classify(r, "error")
        if r.rc == 0:
            why = "exit 0 while every write to stdout failed (output silently lost)"
        h.record(" ".join(args[:3]) + " > /dev/full", c.cmdline(args, redir=" > /dev/full"), r, outcome, note=why)
    # export -o into places that cannot be written
    with open(c.p("afile"), "w") as f:
        f.write("x")
    for name, target in (("under a regular file", c.p("afile", "out.jsonl")), ("a directory", c.d), ("/dev/full", "/dev/full")):
        case(h, c, "export -o " + name, ["export", rid, "-o", target], "error")
    # stdout a closed pipe (reader gone): should exit quietly, not panic
    for args in (["ls"], ["export", rid], ["show", rid, "--steps"]):
        env = dict(c.env)
        p1 = subprocess.Popen([h.bin] + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        p1.stdout.close()
        try:
            err = p1.stderr.read()
            p1.wait(timeout=h.timeout)
            r = R(p1.returncode, b"", err, False, 0)
        except subprocess.TimeoutExpired:
            os.killpg(p1.pid, signal.SIGKILL)
            p1.wait()
            r = R(p1.returncode, b"", b"", True, h.timeout)
        outcome, why = classify(r, "either")
        h.record(" ".join(args[:2]) + " | (reader closed)", c.cmdline(args, redir=" | true"), r, outcome, note=why)

    h.group = "log file"
    c = h.ctx("log")
    c.seed_store(template)
    with open(c.p("regular"), "w") as f:
        f.write("x")
    badlog = c.p("regular", "thinkdbg.log")
    for name, args, env in (("--log-file under a regular file: ls", ["--log-file", badlog, "ls"], None),
                            ("THINKDBG_LOG_FILE under a regular file: ls", ["ls"], {"THINKDBG_LOG_FILE": badlog}),
                            ("THINKDBG_LOG_FILE a directory: ls", ["ls"], {"THINKDBG_LOG_FILE": c.d}),
                            ("THINKDBG_LOG_FILE /dev/full, THINKDBG_LOG=debug: run", ["--offline", "run", "-m", model, "-n", "2", "hi"], {"THINKDBG_LOG_FILE": "/dev/full", "THINKDBG_LOG": "debug"}),
                            ("--log-file under a regular file: run", ["--log-file", badlog, "--offline", "run", "-m", model, "-n", "2", "hi"], None)):
        r = c.run(args, extra_env=env)
        outcome, why = classify(r, "either")
        if r.rc == 0:
            if b"log" in r.err.lower():
                why = "warned and went on"
            else:
                outcome, why = "wrong result", "unwritable log file ignored silently"
        h.record(name, c.cmdline(args, env), r, outcome, note=why)

    h.group = "terminal"
    c = h.ctx("term")
    c.seed_store(template)
    script = shutil.which("script")
    # no subcommand with no terminal at all
    r = c.run([], stdin=b"q")
    outcome, why = classify(r, "either")
    h.record("TUI with stdin/stdout not a terminal", c.cmdline([], redir=" < /dev/null | cat"), r, outcome, note=why, leak=forbidden(r.err))
    if script:
        for term, keys in (("dumb", b"q"), ("dumb", b"\x1bq"), ("xterm", b"q"), ("", b"q"), ("vt100", b"q")):
            env = dict(c.env)
            env["TERM"] = term
            cmdl = "%s --store %s" % (shlex.quote(h.bin), shlex.quote(c.store))
            t0 = time.monotonic()
            p = subprocess.Popen([script, "-qec", "stty cols 100 rows 30; " + cmdl, "/dev/null"], env=env, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
            time.sleep(2.5)
            try:
                p.stdin.write(keys)
                p.stdin.flush()
                time.sleep(0.5)
                p.stdin.write(b"q")
                p.stdin.flush()
            except BrokenPipeError:
                pass
            hang = False
            try:
                out, err = p.communicate(timeout=8)
            except subprocess.TimeoutExpired:
                hang = True
                os.killpg(p.pid, signal.SIGKILL)
                out, err = p.communicate()
            r = R(p.returncode, out, err, hang, time.monotonic() - t0)
            # the TUI's own escapes are fine; the output is the terminal, so only classify exit
            # and look for a clear message when it refuses
            text = out.decode("utf-8", "replace")
            lines = [l for l in re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]|\x1b[()][0-9A-B]|\x1b[=>]|\r", "", text).splitlines() if l.strip()]
            if hang:
                outcome, why = "hang", "did not quit on 'q'"
            elif r.rc == 101 or "panicked" in text:
                outcome, why = "panic", ""
            elif r.rc < 0:
                outcome, why = "abort", ""
            elif r.rc == 0:
                outcome, why = "ok", "UI ran and quit"
            elif lines and lines[0].startswith("error:") and len(lines) <= 3:
                outcome, why = "clear error", ""
            else:
                outcome, why = "unclear error", "exit %d: %s" % (r.rc, (lines or [""])[0][:80])
            first = next((l for l in lines if l.startswith("error:")), "")
            res = R(r.rc, b"", first.encode(), hang, r.dur)
            h.record("TUI under a pty, TERM=%r, keys %r" % (term, keys), "TERM=%s script -qec %s /dev/null" % (term or "''", shlex.quote(cmdl)), res, outcome, note=why, leak=[])


# --- remote -----------------------------------------------------------------------------------


def ev(content=None, reasoning=None, lp=None, top=None, finish=None):
    delta = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    ch = {"index": 0, "delta": delta, "finish_reason": finish}
    tok = content if content is not None else reasoning
    if lp is not None:
        ch["logprobs"] = {"content": [{"token": tok, "logprob": lp, "bytes": None,
                                       "top_logprobs": top if top is not None else [{"token": tok, "logprob": lp}, {"token": "x", "logprob": -3.0}]}]}
    return ("data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk", "model": "fake", "choices": [ch]}) + "\n\n").encode()


class Server:
    """A tiny HTTP server whose behaviour is picked by the path's first segment."""

    def __init__(self, mode=None):
        self.requests = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                self.send_error(404)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                m = self.path.strip("/").split("/")[0]
                server.requests[m] = server.requests.get(m, 0) + 1
                try:
                    server.respond(self, m, body, server.requests[m])
                except (BrokenPipeError, ConnectionResetError):
                    pass

        class TS(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.httpd = TS(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.base = "http://127.0.0.1:%d" % self.port
        self.url = self.base + "/" + (mode or "ok") + "/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def start_sse(self, hd):
        hd.send_response(200)
        hd.send_header("Content-Type", "text/event-stream")
        hd.send_header("Connection", "close")
        hd.end_headers()

    def respond(self, hd, m, body, nth):
        w = hd.wfile
        toks = ["Hello", ",", " world", "!", " Bye"]
        if m == "ok":
            self.start_sse(hd)
            for t in toks:
                w.write(ev(t, lp=-0.25))
            w.write(ev("", finish="stop") + b"data: [DONE]\n\n")
        elif m == "think":
            self.start_sse(hd)
            for t in ["Let", " me", " see"]:
                w.write(ev(reasoning=t, lp=-0.5))
            for t in toks:
                w.write(ev(t, lp=-0.25))
            w.write(b"data: [DONE]\n\n")
        elif m == "midclose":
            self.start_sse(hd)
            for t in toks[:3]:
                w.write(ev(t, lp=-0.25))
            w.write(ev(toks[3], lp=-0.25)[:25])
            w.flush()
            hd.close_connection = True
            hd.connection.shutdown(socket.SHUT_RDWR)
        elif m == "reset":
            self.start_sse(hd)
            for t in toks[:3]:
                w.write(ev(t, lp=-0.25))
            w.flush()
            hd.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            hd.connection.close()
        elif m in ("silent", "noheaders"):
            time.sleep(40)
        elif m == "stall-after-headers":
            self.start_sse(hd)
            w.flush()
            time.sleep(40)
        elif m == "stall-after-2":
            self.start_sse(hd)
            for t in toks[:2]:
                w.write(ev(t, lp=-0.25))
            w.flush()
            time.sleep(40)
        elif m == "e500":
            msg = b'{"error":{"message":"model exploded \\u001b[31m\\u0007"}}'
            hd.send_response(500)
            hd.send_header("Content-Type", "application/json")
            hd.send_header("Content-Length", str(len(msg)))
            hd.end_headers()
            w.write(msg)
        elif m == "e429" or (m == "e429once" and nth == 1):
            msg = b'{"error":{"message":"slow down"}}'
            hd.send_response(429)
            hd.send_header("Content-Type", "application/json")
            hd.send_header("Content-Length", str(len(msg)))
            hd.end_headers()
            w.write(msg)
        elif m == "e429once":
            self.respond(hd, "ok", body, 1)
        elif m == "e404html":
            msg = b"<html>\x1b[31mnot here\x07</html>" * 200
            hd.send_response(404)
            hd.send_header("Content-Type", "text/html")
            hd.send_header("Content-Length", str(len(msg)))
            hd.end_headers()
            w.write(msg)
        elif m == "hugeline":
            self.start_sse(hd)
            w.write(ev("a", lp=-0.1))
            w.write(b"data: " + b"x" * (64 << 20))
            w.write(b"\n\n")
        elif m == "hugeline-nonl":
            self.start_sse(hd)
            chunk = b"y" * (1 << 20)
            for _ in range(64):
                w.write(chunk)
        elif m == "hugetop":
            self.start_sse(hd)
            top = [{"token": "t%d" % i, "logprob": -1.0 - i * 1e-5} for i in range(200000)]
            w.write(ev("Hi", lp=-0.1, top=top))
            w.write(ev("!", lp=-0.1))
            w.write(b"data: [DONE]\n\n")
        elif m == "badjson":
            self.start_sse(hd)
            w.write(ev("Hi", lp=-0.1))
            w.write(b'data: {"choices": [oops\n\n')
            w.write(b"data: [DONE]\n\n")
        elif m == "badjson-first":
            self.start_sse(hd)
            w.write(b'data: {"choices": [\x1b[31m\x07\n\n')
        elif m == "escapes":
            self.start_sse(hd)
            for t in ["\x1b[31mred", "\x07bell", "\u009b31m", "\u202eevil", "\x7f", "ok"]:
                w.write(ev(t, lp=-0.3, top=[{"token": t, "logprob": -0.3}, {"token": "\x1b]0;x\x07", "logprob": -2.0}]))
            w.write(ev(reasoning="\x1b[2J\u2066", lp=-0.2))
            w.write(b"data: [DONE]\n\n")
        elif m == "lp-positive":
            self.start_sse(hd)
            w.write(ev("Hi", lp=5.0))
            w.write(ev("!", lp=-0.1))
            w.write(b"data: [DONE]\n\n")
        elif m == "nologprobs":
            self.start_sse(hd)
            for t in toks:
                w.write(ev(t))
            w.write(b"data: [DONE]\n\n")
        elif m == "json-not-sse":
            msg = json.dumps({"choices": [{"message": {"content": "hi"}}]}).encode()
            hd.send_response(200)
            hd.send_header("Content-Type", "application/json")
            hd.send_header("Content-Length", str(len(msg)))
            hd.end_headers()
            w.write(msg)
        elif m == "empty":
            self.start_sse(hd)
        elif m == "garbage-status":
            hd.wfile.write(b"HTTP/1.1 abc\r\n\r\n")
        elif m == "not-http":
            hd.wfile.write(b"\x1b[31mSSH-2.0-OpenSSH\r\n")
        elif m == "infinite":
            self.start_sse(hd)
            for i in range(10 ** 9):
                try:
                    w.write(ev("x", lp=-0.1))
                except OSError:
                    return


def group_remote(h, template):
    h.group = "remote"
    srv = Server()
    # (mode, extra args, expect, expected run status (None: no run), expected steps (None: any), timeout)
    cases = [("ok", [], "ok", "complete", 5),
             ("think", [], "ok", "complete", 8),
             ("midclose", [], "error", "interrupted", 3),
             ("reset", [], "error", "interrupted", 3),
             ("noheaders", ["--idle-timeout", "3"], "error", "failed", 0),
             ("stall-after-headers", ["--idle-timeout", "3"], "error", "failed", 0),
             ("stall-after-2", ["--idle-timeout", "3"], "error", "interrupted", 2),
             ("e500", [], "error", "failed", 0),
             ("e429", ["--retries", "2"], "error", "failed", 0),
             ("e429once", ["--retries", "2"], "ok", "complete", 5),
             ("e404html", [], "error", "failed", 0),
             ("hugeline", [], "error", None, None),
             ("hugeline-nonl", ["--idle-timeout", "5"], "error", None, None),
             ("hugetop", [], "either", None, None),
             ("badjson", [], "error", None, None),
             ("badjson-first", [], "error", "failed", 0),
             ("escapes", [], "ok", "complete", None),
             ("lp-positive", [], "either", None, None),
             ("nologprobs", [], "either", None, None),
             ("json-not-sse", [], "error", "failed", 0),
             ("empty", [], "error", "failed", 0),
             ("garbage-status", [], "error", "failed", 0),
             ("not-http", [], "error", "failed", 0),
             ("infinite", ["-n", "50"], "either", None, None)]
    escaped_run = None
    for mode, extra, expect, status, steps in cases:
        c = h.ctx("remote-" + mode)
        c.seed_store(template)
        before = {a["run"] for a in ls_json(c) or []}
        url = srv.base + "/" + mode + "/v1"
        args = ["record", "--endpoint", url, "--remote-model", "m"] + extra + ["hi"]
        r = c.run(args, timeout=10 if mode == "infinite" else None)
        outcome, why = classify(r, expect)
        after = ls_json(c) or []
        new = [a for a in after if a["run"] not in before]
        got = ", ".join("%s %s %d steps" % (a["run"], a["status"], a["steps"]) for a in new) or "no run"
        notes = [why, "run: " + got, "requests: %d" % srv.requests.get(mode, 0)]
        if outcome in ("ok", "clear error", "unclear error"):
            if status is not None and (not new or new[0]["status"] != status or (steps is not None and new[0]["steps"] != steps)):
                outcome = "wrong result"
                notes.append("expected %s with %s steps" % (status, steps))
            if new and new[0]["status"] == "recording":
                outcome = "wrong result"
                notes.append("run left 'recording'")
            if mode == "noheaders" and srv.requests.get(mode, 0) != 1:
                outcome = "wrong result"
                notes.append("a server that never answered was retried")
            if mode == "e429" and srv.requests.get(mode, 0) != 3:
                notes.append("429 not retried twice")
        lost = not before.issubset({a["run"] for a in after})
        h.record("record from server: " + mode, c.cmdline(args), r, outcome, lost=lost, note="; ".join(x for x in notes if x))
        if mode == "escapes" and new:
            escaped_run = (c, new[0]["run"])
        if new and new[0]["steps"] > 0 and new[0]["steps"] < 100000:
            # what record stored must survive export and import (the format's own promise)
            rid = new[0]["run"]
            ex = c.run(["export", rid])
            path = c.p("re.jsonl")
            with open(path, "wb") as f:
                f.write(ex.out)
            c2 = h.ctx("remote-reimport-" + mode)
            r2 = c2.run(["import", path])
            o2, w2 = classify(r2, "ok")
            h.record("export + import again of the run from: " + mode, c.cmdline(["export", rid], redir=" > re.jsonl") + "; thinkdbg --store NEW import re.jsonl", r2, o2, note=w2)
    if escaped_run:
        c, rid = escaped_run
        for args in (["show", rid], ["show", rid, "--steps"], ["ls"], ["export", rid, "--format", "md"], ["flags", rid], ["stats", rid]):
            case(h, c, " ".join(args[:1] + args[2:]) + " (escapes from a server)", args, "ok")
    # connection refused, and an API key that must not leak
    c = h.ctx("remote-refused")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    case(h, c, "record from server: connection refused", ["record", "--endpoint", "http://127.0.0.1:%d/v1" % port, "--remote-model", "m", "--retries", "1", "hi"], "error")
    case(h, c, "record from server: unresolvable host", ["record", "--endpoint", "http://no-such-host.invalid/v1", "--remote-model", "m", "--retries", "0", "hi"], "error")
    case(h, c, "record from server: URL not http", ["record", "--endpoint", "ftp://127.0.0.1/v1", "--remote-model", "m", "hi"], "error")
    c = h.ctx("remote-key")
    args = ["record", "--endpoint", srv.base + "/e500/v1", "--remote-model", "m", "--api-key-env", "FAULTS_KEY", "hi"]
    r = c.run(args, extra_env={"FAULTS_KEY": "sk-TOPSECRET-123"})
    outcome, why = classify(r, "error")
    logtxt = b""
    try:
        logtxt = open(c.env["THINKDBG_LOG_FILE"], "rb").read()
    except OSError:
        pass
    dump = b"".join(open(os.path.join(dp, f), "rb").read() for dp, _, fs in os.walk(c.store) for f in fs if os.path.isfile(os.path.join(dp, f)))
    if b"sk-TOPSECRET-123" in r.out + r.err + logtxt + dump:
        outcome, why = "wrong result", "API key found in output, log or store"
    h.record("record from server: API key never stored or printed", c.cmdline(args, {"FAULTS_KEY": "sk-…"}), r, outcome, note=why)
    case(h, c, "record from server: --api-key-env unset", ["record", "--endpoint", srv.base + "/ok/v1", "--remote-model", "m", "--api-key-env", "FAULTS_UNSET_KEY", "hi"], "error")
    srv.close()


# --------------------------------------------------------------------------------------------
# setup and report


def build_fixtures(h):
    fx = os.path.join(h.scratch, "fixtures")
    os.makedirs(fx)
    c = Ctx(h, fx)
    model = os.path.join(fx, "tiny.gguf")
    r = c.run(["model", "synth", "--arch", "qwen2", "--shape", "tiny", "--quant", "f32", "--out", model])
    assert r.rc == 0, r.err
    for f in sorted(os.listdir(os.path.join(REPO, "sessions"))):
        if f.endswith(".jsonl"):
            r = c.run(["import", os.path.join(REPO, "sessions", f)])
            assert r.rc == 0, r.err
    runs = ls_json(c)
    run_ids = [a["run"] for a in runs]
    ref = export_all(c, c.store, run_ids)
    # a session export with two runs, as the import group's base
    sess = runs[0]["session"]
    r = c.run(["export", sess])
    assert r.rc == 0, r.err
    export_bytes = r.out
    # a big run for the disk-full and kill cases: 40,000 steps with two alternatives
    lines = [json.loads(l) for l in export_bytes.decode().splitlines()]
    run0 = next(o for o in lines if o["type"] == "run")
    step0 = next(o for o in lines if o["type"] == "step")
    big = [lines[0], next(o for o in lines if o["type"] == "session"), dict(run0, parent=None)]
    for i in range(40000):
        s = dict(step0, index=i, top=step0["top"][:2], t_us=i)
        s["run"] = run0["id"]
        big.append(s)
    big_path = os.path.join(fx, "big.jsonl")
    with open(big_path, "wb") as f:
        f.write(jl(big))
    template = os.path.join(fx, "template-store")
    # the template store: the sample sessions, closed cleanly
    shutil.copytree(c.store, template)
    return model, template, run_ids, ref, export_bytes, big_path


def report(h, elapsed):
    groups = []
    for r in h.results:
        if r["group"] not in groups:
            groups.append(r["group"])
    cols = ["tried"] + OUTCOMES + MARKS
    out = io.StringIO()
    out.write("# thinkdbg fault table\n\n")
    out.write("binary `%s`, %d cases, %.0f s, %s\n\n" % (h.bin, len(h.results), elapsed, time.strftime("%Y-%m-%d %H:%M")))
    out.write("| group | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols) + "\n")
    tot = {k: 0 for k in cols}
    for g in groups + ["**all**"]:
        rs = [r for r in h.results if r["group"] == g or g == "**all**"]
        row = {"tried": len(rs)}
        for o in OUTCOMES:
            row[o] = sum(r["outcome"] == o for r in rs)
        row["data lost"] = sum(bool(r["lost"]) for r in rs)
        row["bytes leaked"] = sum(bool(r["leak"]) for r in rs)
        out.write("| %s | " % g + " | ".join(str(row[k]) for k in cols) + " |\n")
    out.write("\n## Cases that are not ok / clear error (or carry a mark)\n\n")
    for g in groups:
        bad = [r for r in h.results if r["group"] == g and (r["outcome"] not in ("ok", "clear error") or r["lost"] or r["leak"])]
        if not bad:
            continue
        out.write("### %s\n\n" % g)
        for r in bad:
            marks = [r["outcome"]] + (["data lost"] if r["lost"] else []) + (["bytes leaked: " + ", ".join(r["leak"])] if r["leak"] else [])
            out.write("- **%s** — %s (exit %s)%s\n" % (r["name"].encode("unicode_escape").decode("ascii", "replace"), "; ".join(marks), r["rc"],
                                                      (": " + r["note"]) if r["note"] else ""))
            out.write("  - `%s`\n" % r["cmd"].encode("unicode_escape").decode("ascii").replace("`", "'"))
            if r["err"]:
                out.write("  - stderr: `%s`\n" % r["err"][:200].encode("unicode_escape").decode("ascii").replace("`", "'"))
        out.write("\n")
    out.write("## Every case\n\n| group | case | outcome | exit | s |\n|---|---|---|---|---|\n")
    for r in h.results:
        m = r["outcome"] + (" +data lost" if r["lost"] else "") + (" +leak" if r["leak"] else "")
        out.write("| %s | %s | %s | %s | %.1f |\n" % (r["group"], r["name"].encode("unicode_escape").decode("ascii").replace("|", "\\|"), m, r["rc"], r["dur"]))
    return out.getvalue()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(REPO, "target", "debug", "thinkdbg"))
    ap.add_argument("--scratch", default=None, help="scratch dir (default: a new dir under /tmp)")
    ap.add_argument("--timeout", type=float, default=20)
    ap.add_argument("--only", default="", help="comma-separated groups: gguf,import,store,escapes,output,remote")
    ap.add_argument("--out", default=os.path.join(HERE, "last-run.md"))
    a = ap.parse_args()
    scratch = a.scratch or "/tmp/thinkdbg-faults-%d" % os.getpid()
    if os.path.exists(scratch):
        shutil.rmtree(scratch)
    os.makedirs(scratch)
    assert forbidden(HOSTILE.encode()) and not forbidden("ok ␛ ⟨U+202E⟩\tx\n".encode())
    h = H(os.path.abspath(a.bin), scratch, a.timeout)
    t0 = time.monotonic()
    model, template, run_ids, ref, export_bytes, big_path = build_fixtures(h)
    only = set(x for x in a.only.split(",") if x)
    for name, fn in (("gguf", lambda: group_gguf(h, model)),
                     ("import", lambda: group_import(h, template, export_bytes, big_path)),
                     ("store", lambda: group_store(h, template, run_ids, ref)),
                     ("escapes", lambda: group_escapes(h, template, export_bytes)),
                     ("output", lambda: group_output(h, template, model)),
                     ("remote", lambda: group_remote(h, template))):
        if not only or name in only:
            print("== " + name, flush=True)
            fn()
    text = report(h, time.monotonic() - t0)
    print(text)
    with open(a.out, "w") as f:
        f.write(text)
    print("written to", a.out, "; scratch dir", scratch, file=sys.stderr)


if __name__ == "__main__":
    main()
