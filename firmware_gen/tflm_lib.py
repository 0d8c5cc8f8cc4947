"""TFLM compiled for a Cortex-M as a static library, cached so only the first use pays the build.

The source root is a setting (``--tflm-root``, ``$TFLM_ROOT``, default ``../shared/tflm``). Source
lists come from ``lists/srcs_ref.txt`` / ``lists/srcs_cmsisnn.txt`` in the root when present, else
from the same glob rules (they reproduce those lists exactly; checked by a test), so a plain
tflite-micro checkout with its third-party folders works too.

Cache: ``$XDG_CACHE_HOME/tfkws/`` (default ``~/.cache/tfkws``, override ``$FIRMWARE_GEN_CACHE``),
one folder per (CPU, kernel set) whose name holds a sha256 of every source and header in the tree,
the flags and the compiler version: change any of them and a new folder is built. Each object is
compiled to a temporary name and renamed into place, and so is each archive, so a killed build
leaves no corrupt file, only fewer objects to compile next time. ``ops=`` builds the subset a model
needs (runtime + the kernels of those ops), which the tests use to stay within a few minutes.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from firmware_gen.cpus import KERNEL_SETS, Cpu
from firmware_gen.errors import FirmwareGenError
from firmware_gen.toolchain import find_toolchain

INCLUDES = (
    ".",
    "third_party/gemmlowp",
    "third_party/flatbuffers/include",
    "third_party/kissfft",
    "third_party/ruy",
)
CMSIS_INCLUDES = (
    "third_party/cmsis/CMSIS/Core/Include",
    "third_party/cmsis_nn",
    "third_party/cmsis_nn/Include",
)
DEFINES = ("-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON", "-DTF_LITE_MCU_DEBUG_LOG")
CMSIS_DEFINES = ("-DCMSIS_NN", "-DARM_NN_ENABLE_F16=0", "-DARM_NN_ENABLE_F32=0")
COMMON_FLAGS = ("-ffunction-sections", "-fdata-sections", "-fno-unwind-tables")
CXX_FLAGS = ("-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics")
DEFAULT_OPT = "-O2"
RESOLVER_H = "tensorflow/lite/micro/micro_mutable_op_resolver.h"
KERNELS_DIR = "tensorflow/lite/micro/kernels/"
HASHED_SUFFIXES = (".c", ".cc", ".cpp", ".h", ".hpp", ".inc", ".txt")
# Source globs equal to TFLM's tools/make/sources.inc for the reference kernels (see module doc).
REF_GLOBS = (
    "tensorflow/lite/micro/*.cc",
    "tensorflow/lite/micro/arena_allocator/*.cc",
    "tensorflow/lite/micro/memory_planner/*.cc",
    "tensorflow/lite/micro/tflite_bridge/*.cc",
    "tensorflow/lite/micro/kernels/*.cc",
    "tensorflow/lite/core/**/*.cc",
    "tensorflow/lite/kernels/**/*.cc",
    "tensorflow/compiler/**/*.cc",
    "signal/**/*.cc",
)
ALWAYS_KERNEL_HELPERS = ("kernel_util.cc", "micro_tensor_utils.cc")


def cache_root() -> Path:
    env = os.environ.get("FIRMWARE_GEN_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tfkws"


def _glob(root: Path, patterns: tuple[str, ...]) -> set[str]:
    out: set[str] = set()
    for pat in patterns:
        out |= {
            p.relative_to(root).as_posix()
            for p in root.glob(pat)
            if p.is_file() and not p.name.endswith("_test.cc")
        }
    return out


def source_list(root: Path, kernels: str) -> list[str]:
    """Every source of the library for a kernel set, relative to ``root``, sorted."""
    if kernels not in KERNEL_SETS:
        raise FirmwareGenError(f"unknown kernel set {kernels!r}; choose {', '.join(KERNEL_SETS)}")
    listed = root / "lists" / ("srcs_ref.txt" if kernels == "reference" else "srcs_cmsisnn.txt")
    if listed.exists():
        return sorted(set(listed.read_text().split()))
    ref = _glob(root, REF_GLOBS)
    if kernels == "reference":
        return sorted(ref)
    cmsis = _glob(root, (KERNELS_DIR + "cmsis_nn/*.cc",))
    if not cmsis or not (root / "third_party/cmsis_nn/Source").is_dir():
        raise FirmwareGenError(
            f"{root}: no CMSIS-NN sources (third_party/cmsis_nn, kernels/cmsis_nn)"
        )
    replaced = {KERNELS_DIR + Path(c).name for c in cmsis}
    nn = _glob(root, ("third_party/cmsis_nn/Source/**/*.c",))
    return sorted((ref - replaced) | cmsis | nn)


@functools.cache
def _registrations(root: Path) -> dict[str, list[str]]:
    """Resolver ``Add*`` method -> the ``Register_*`` functions its body calls."""
    text = (root / RESOLVER_H).read_text()
    out: dict[str, list[str]] = {}
    parts = re.split(r"\n  TfLiteStatus (Add\w+)\(", text)
    for method, body in zip(parts[1::2], parts[2::2], strict=True):
        body = body.split("\n  TfLiteStatus ")[0]
        out[method] = sorted(set(re.findall(r"\b(Register_\w+)\(\)", body)))
    return out


def subset_for_ops(root: Path, kernels: str, methods: list[str]) -> list[str]:
    """Runtime + the kernel files defining the registrations these resolver methods call.

    Each kernel ``X.cc`` brings its ``X_common.cc``; ``kernel_util.cc`` and
    ``micro_tensor_utils.cc`` always come; for CMSIS-NN the whole (C) CMSIS-NN library comes.
    """
    srcs = source_list(root, kernels)
    regs = _registrations(root)
    wanted: set[str] = set()
    for m in methods:
        if m not in regs:
            raise FirmwareGenError(f"{root}: {RESOLVER_H} has no method {m}")
        wanted |= set(regs[m])
    kernel_files = [s for s in srcs if "/micro/kernels/" in s]
    chosen = {s for s in srcs if "/micro/kernels/" not in s and not s.startswith("signal/")}
    chosen -= {s for s in chosen if s.startswith("third_party/")}
    for s in kernel_files:
        text = (root / s).read_text(errors="replace")
        defined = set(re.findall(r"\b(Register_\w+)\(\)\s*\{", text))
        if defined & wanted:
            chosen.add(s)
    for s in list(chosen):
        if "/micro/kernels/" in s:
            common = KERNELS_DIR + Path(s).stem + "_common.cc"
            if common in srcs:
                chosen.add(common)
    chosen |= {KERNELS_DIR + h for h in ALWAYS_KERNEL_HELPERS if KERNELS_DIR + h in srcs}
    if kernels == "cmsis-nn":
        chosen |= {s for s in srcs if s.startswith("third_party/cmsis_nn/")}
    return sorted(chosen)


@functools.cache
def tree_digest(root: Path) -> str:
    """sha256 over every source, header and list file of the tree (path + content)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in HASHED_SUFFIXES:
            h.update(p.relative_to(root).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class TflmLibrary:
    """A built archive and everything needed to compile and link code against it."""

    archive: Path
    root: Path
    cpu: Cpu
    kernels: str
    c_flags: tuple[str, ...]  # arch + optimisation + defines + include paths (C)
    cxx_flags: tuple[str, ...]  # the same for C++
    sources: tuple[str, ...]
    complete: bool  # the full source list (not a per-model subset)
    compiled: int  # objects compiled by this call (0: everything came from the cache)
    seconds: float
    cache_dir: Path

    def describe(self) -> str:
        kind = "full" if self.complete else f"{len(self.sources)}-source subset"
        return f"TFLM {self.cpu.name}/{self.kernels} ({kind}, {self.cache_dir.name})"


def compile_flags(root: Path, cpu: Cpu, kernels: str, opt: str = DEFAULT_OPT) -> tuple[list, list]:
    """(C flags, C++ flags) for TFLM and code built against it."""
    base = [*cpu.flags, opt, *COMMON_FLAGS, *DEFINES]
    incs = list(INCLUDES)
    if kernels == "cmsis-nn":
        base += CMSIS_DEFINES
        incs += CMSIS_INCLUDES
    inc_flags = [f"-isystem{root / i}" for i in incs]
    return base + inc_flags, base + list(CXX_FLAGS) + inc_flags


def _cache_dir(
    root: Path,
    cpu: Cpu,
    kernels: str,
    opt: str,
    version: str,
    extra: tuple[Path, ...] = (),
    extra_flags: tuple[str, ...] = (),
) -> Path:
    c_flags, cxx_flags = compile_flags(Path("/ROOT"), cpu, kernels, opt)
    c_flags, cxx_flags = c_flags + list(extra_flags), cxx_flags + list(extra_flags)
    trees = [tree_digest(root), *(tree_digest(e) for e in extra)] if extra else tree_digest(root)
    key = hashlib.sha256(json.dumps([trees, c_flags, cxx_flags, version, kernels]).encode())
    key = key.hexdigest()
    return cache_root() / f"tflm-{cpu.key}-{kernels}{opt.replace('-', '')}-{key[:16]}"


def _first_error(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    return next((ln for ln in lines if "error" in ln), lines[-1] if lines else "?")


@contextlib.contextmanager
def _written_by_tool(final: Path) -> Iterator[str]:
    """A fresh temp path beside ``final`` for a tool to write; renamed to ``final`` only if the
    block succeeds, removed otherwise (a killed build never leaves a half-written file)."""
    fd, tmp = tempfile.mkstemp(prefix=final.name + ".", suffix=".tmp", dir=final.parent)
    os.close(fd)
    os.unlink(tmp)  # ar refuses to add to a file that is not an archive
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _compile_one(cc: str, flags: list[str], src: Path, obj: Path) -> None:
    obj.parent.mkdir(parents=True, exist_ok=True)
    with _written_by_tool(obj) as tmp:
        res = subprocess.run(
            [cc, *flags, "-c", str(src), "-o", tmp], capture_output=True, text=True
        )
        if res.returncode != 0:
            raise FirmwareGenError(f"{src}: does not compile: {_first_error(res.stderr)}")


def build_library(
    root: Path,
    cpu: Cpu,
    kernels: str,
    *,
    ops_methods: list[str] | None = None,
    sources: list[str] | None = None,
    extra_includes: tuple[Path, ...] = (),
    extra_flags: tuple[str, ...] = (),
    opt: str = DEFAULT_OPT,
    jobs: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> TflmLibrary:
    """Compile (what is not cached yet) and archive TFLM for ``cpu``/``kernels``.

    ``ops_methods``: resolver methods (``AddConv2D`` ...) to build only what they need; ``None``
    builds the whole library. ``sources``: an explicit source list instead (e.g. the micro
    frontend), compiled with the same flags into the same cache. ``extra_includes``: folders
    searched before the tree's own include paths (their contents are part of the cache key).
    ``extra_flags``: more compiler flags for every source (part of the cache key too).
    """
    tc = find_toolchain(need_qemu=False)
    t0 = time.time()
    root = Path(root).absolute()  # callers compile and link elsewhere with these flags
    extra_includes = tuple(Path(e).absolute() for e in extra_includes)
    c_flags, cxx_flags = compile_flags(root, cpu, kernels, opt)
    c_flags, cxx_flags = c_flags + list(extra_flags), cxx_flags + list(extra_flags)
    if extra_includes:
        first = [f"-I{e}" for e in extra_includes]
        c_flags, cxx_flags = first + c_flags, first + cxx_flags
    cache = _cache_dir(
        root, cpu, kernels, opt, tc.version, tuple(extra_includes), tuple(extra_flags)
    )
    full = source_list(root, kernels)
    if sources is not None:
        srcs = sorted(sources)
    elif ops_methods is not None:
        srcs = subset_for_ops(root, kernels, ops_methods)
    else:
        srcs = full
    name = (
        "libtflm.a"
        if srcs == full
        else f"libtflm-{hashlib.sha256(' '.join(srcs).encode()).hexdigest()[:12]}.a"
    )
    archive = cache / name
    objs = [cache / "obj" / (s + ".o") for s in srcs]
    todo = [(s, o) for s, o in zip(srcs, objs, strict=True) if not o.exists()]
    if todo or not archive.exists():
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "build.json").write_text(
            json.dumps(
                {
                    "root": str(root),
                    "cpu": cpu.name,
                    "kernels": kernels,
                    "compiler": tc.version,
                    "c_flags": c_flags,
                    "cxx_flags": cxx_flags,
                },
                indent=2,
            )
            + "\n"
        )
    if todo:
        if progress:
            progress(
                f"compiling {len(todo)} TFLM sources for {cpu.name}/{kernels} into {cache} "
                f"(first use only; the whole library takes a few minutes)"
            )
        with concurrent.futures.ThreadPoolExecutor(jobs or os.cpu_count() or 2) as pool:
            futures = [
                pool.submit(
                    _compile_one,
                    tc.gxx if s.endswith((".cc", ".cpp")) else tc.gcc,
                    cxx_flags if s.endswith((".cc", ".cpp")) else c_flags,
                    root / s,
                    o,
                )
                for s, o in todo
            ]
            try:
                for f in concurrent.futures.as_completed(futures):
                    f.result()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    if todo or not archive.exists():
        with _written_by_tool(archive) as tmp:
            res = subprocess.run(
                [tc.ar, "rcs", tmp, *map(str, objs)], capture_output=True, text=True
            )
            if res.returncode != 0:
                raise FirmwareGenError(f"{archive}: ar failed: {_first_error(res.stderr)}")
    return TflmLibrary(
        archive=archive,
        root=root,
        cpu=cpu,
        kernels=kernels,
        c_flags=tuple(c_flags),
        cxx_flags=tuple(cxx_flags),
        sources=tuple(srcs),
        complete=srcs == full,
        compiled=len(todo),
        seconds=round(time.time() - t0, 1),
        cache_dir=cache,
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m firmware_gen.tflm_lib [--cpu m4,m55] [--kernels reference,cmsis-nn]``:
    build the full libraries ahead of time (e.g. in a CI image)."""
    import argparse
    import sys

    from firmware_gen.cpus import CPUS, parse_list
    from firmware_gen.toolchain import tflm_root

    p = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    p.add_argument("--tflm-root", default=None)
    p.add_argument("--cpu", default="m4,m55")
    p.add_argument("--kernels", default="reference,cmsis-nn")
    p.add_argument("--jobs", type=int, default=None)
    a = p.parse_args(argv)
    try:
        root = tflm_root(a.tflm_root)
        for c in parse_list(a.cpu, list(CPUS), "--cpu"):
            for k in parse_list(a.kernels, KERNEL_SETS, "--kernels"):
                lib = build_library(root, CPUS[c], k, jobs=a.jobs, progress=print)
                print(f"{lib.describe()}: {lib.archive} ({lib.compiled} compiled, {lib.seconds} s)")
    except FirmwareGenError as e:
        print(f"firmware-gen: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
