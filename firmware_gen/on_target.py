"""Measure a generated model on the target architecture itself: TFLM C++ in QEMU.

For each (CPU, kernel set): link the generated ``NAME_model_data.cc`` and ``NAME_op_resolver.h``
with the harness (``harness/``) and a cached TFLM library (``tflm_lib``) into one ELF, then

- arena: the smallest arena (16-byte steps) with which ``AllocateTensors()`` succeeds, by
  bisection; the ELF holds a 2 MiB buffer and takes the size to try on its command line, so every
  probe is one fresh QEMU run, not a relink. Then checked: the minimum runs ``Invoke()`` on every
  input, and 16 bytes less fails to allocate (``Invoke()`` allocates nothing in TFLM);
- instructions per ``Invoke()``: counted by the TCG plugin, cross-checked by the SysTick under
  ``-icount shift=0`` (QEMU counts instructions; it does not model cycles or memory wait states);
- flash: the ELF's sections, attributed to model / TFLM / harness / C library (``elf_size``);
- parity: the outputs against the TFLM Python interpreter (64-bit host, reference kernels) on the
  same inputs: bit-exact expected for reference kernels; for CMSIS-NN the elements more than one
  LSB apart are counted (its requantisation rounds differently in places).
"""

from __future__ import annotations

import math
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from firmware_gen.arena import ALIGN, Prober, bisect_min
from firmware_gen.cpus import KERNEL_SETS, Cpu, cpu
from firmware_gen.elf_size import flash_report
from firmware_gen.errors import FirmwareGenError
from firmware_gen.model import ModelInfo
from firmware_gen.qemu import HARNESS, QemuRun, run_elf
from firmware_gen.tflm_lib import TflmLibrary, build_library
from firmware_gen.toolchain import find_toolchain

ARENA_BUFFER = 2 * 1024 * 1024
ALLOC_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 1800.0
RANDOM_RECORDS = 3
DTYPES = {
    "INT8": np.int8,
    "UINT8": np.uint8,
    "INT16": np.int16,
    "INT32": np.int32,
    "FLOAT32": np.float32,
}
_UNDEFINED = re.compile(r"undefined reference to `([^']+)'")

Progress = Callable[[str], None]


def _dtype(t) -> type:
    if t.dtype not in DTYPES:
        raise FirmwareGenError(f"tensor {t.name!r}: dtype {t.dtype} is not supported on target")
    return DTYPES[t.dtype]


def encode_inputs(
    info: ModelInfo, inputs: np.ndarray | None, seed: int = 0
) -> tuple[bytes, int, str]:
    """(records as bytes, record count, label). ``None``: seeded random values per input tensor."""
    tensors = info.input_tensors
    if inputs is None:
        rng = np.random.default_rng(seed)
        parts = []
        for _ in range(RANDOM_RECORDS):
            for t in tensors:
                dt = _dtype(t)
                if np.issubdtype(dt, np.integer):
                    lim = np.iinfo(dt)
                    x = rng.integers(lim.min, int(lim.max) + 1, size=t.shape, dtype=dt)
                else:
                    x = rng.standard_normal(t.shape).astype(dt)
                parts.append(x.tobytes())
        return b"".join(parts), RANDOM_RECORDS, f"{RANDOM_RECORDS} random records (seed {seed})"
    if len(tensors) != 1:
        raise FirmwareGenError("given inputs need a single-input model (multi-input: omit them)")
    t = tensors[0]
    x = np.asarray(inputs)
    if x.dtype != _dtype(t):
        raise FirmwareGenError(f"inputs are {x.dtype}, the model input is {t.dtype.lower()}")
    per = tuple(t.shape[1:]) if len(t.shape) > 1 and t.shape[0] == 1 else tuple(t.shape)
    if x.shape == per or x.shape == tuple(t.shape):
        x = x.reshape((1, *per))
    if x.ndim < 1 or tuple(x.shape[1:]) != per or x.shape[0] == 0:
        raise FirmwareGenError(
            f"inputs of shape {tuple(x.shape)} do not match the model input {list(t.shape)} "
            f"(expected [N, {', '.join(map(str, per))}])"
        )
    return np.ascontiguousarray(x).tobytes(), int(x.shape[0]), f"{x.shape[0]} given records"


def decode_outputs(info: ModelInfo, data: bytes, records: int) -> list[np.ndarray]:
    """Output bytes of ``records`` records -> one [records, elements] array per output tensor."""
    sizes = [t.num_elements * np.dtype(_dtype(t)).itemsize for t in info.output_tensors]
    if len(data) != records * sum(sizes):
        raise FirmwareGenError(
            f"expected {records * sum(sizes)} output bytes for {records} records, got {len(data)}"
        )
    per_out: list[list[np.ndarray]] = [[] for _ in sizes]
    pos = 0
    for _ in range(records):
        for i, (t, size) in enumerate(zip(info.output_tensors, sizes, strict=True)):
            per_out[i].append(np.frombuffer(data[pos : pos + size], dtype=_dtype(t)))
            pos += size
    return [np.stack(o) for o in per_out]


def compare(host: list[np.ndarray], target: list[np.ndarray], kernels: str, label: str) -> dict:
    """Parity figures; integer outputs are compared in LSBs (quantisation steps)."""
    diffs = [
        np.abs(h.astype(np.float64) - t.astype(np.float64))
        for h, t in zip(host, target, strict=True)
    ]
    total = int(sum(d.size for d in diffs))
    differing = int(sum(int((d > 0).sum()) for d in diffs))
    beyond = int(sum(int((d > 1).sum()) for d in diffs))
    max_diff = float(max((d.max() for d in diffs if d.size), default=0.0))
    return {
        "inputs": label,
        "records": int(host[0].shape[0]) if host else 0,
        "elements": total,
        "bit_exact": differing == 0,
        "differing_elements": differing,
        "elements_beyond_1_lsb": beyond,
        "max_abs_diff": int(max_diff) if max_diff.is_integer() else max_diff,
        "expectation": "bit-exact" if kernels == "reference" else "report elements beyond 1 LSB",
        "ok": differing == 0 if kernels == "reference" else True,
        "reference": "TFLM Python interpreter (x86-64 host, reference kernels)",
    }


class Harness:
    """The harness ELF for one model on one library, and how to run it."""

    def __init__(self, src_dir: Path, ident: str, lib: TflmLibrary, work: Path):
        # absolute: the compilers run in ``work``, so a relative -I would point elsewhere
        self.src_dir, self.work = Path(src_dir).absolute(), Path(work).absolute()
        self.ident, self.lib = ident, lib
        self.elf = self.work / "harness.elf"
        self.map = self.work / "harness.map"
        self.tc = find_toolchain()

    def _run_compiler(self, cmd: list[str], what: str) -> subprocess.CompletedProcess:
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=self.work)
        if res.returncode != 0 and what != "link":
            lines = [
                ln for ln in res.stderr.splitlines() if "error" in ln
            ] or res.stderr.splitlines()
            raise FirmwareGenError(
                f"{what}: does not compile for {self.lib.cpu.name}: {lines[0] if lines else '?'}"
            )
        return res

    def build(self) -> subprocess.CompletedProcess:
        """Compile and link; returns the link result (the caller reads undefined symbols)."""
        lib, ident, tc = self.lib, self.ident, self.tc
        model_cc = f"{ident}_model_data.cc"
        defines = [
            f'-DFG_MODEL_HEADER="{ident}_model_data.h"',
            f'-DFG_RESOLVER_HEADER="{ident}_op_resolver.h"',
            f"-DFG_MODEL_DATA=g_{ident}_model_data",
            f"-DFG_NAMESPACE={ident}_model",
            f"-DFG_ARENA_MAX={ARENA_BUFFER}u",
        ]
        objs = []
        for compiler, flags, src, obj in (
            (tc.gcc, lib.c_flags, HARNESS / "startup.c", "startup.o"),
            (tc.gxx, (*lib.cxx_flags, *defines), HARNESS / "main.cc", "main.o"),
            (tc.gxx, lib.cxx_flags, self.src_dir / model_cc, f"{ident}_model_data.o"),
        ):
            cmd = [compiler, *flags, f"-I{self.src_dir}", "-c", str(src), "-o", obj]
            self._run_compiler(cmd, src.name)
            objs.append(obj)
        link = [
            tc.gxx,
            *lib.cpu.flags,
            "-T",
            str(HARNESS / lib.cpu.linker_script),
            f"-L{HARNESS}",
            "-nostartfiles",
            "--specs=rdimon.specs",
            "-Wl,--gc-sections",
            f"-Wl,-Map={self.map}",
            *objs,
            str(lib.archive),
            "-o",
            str(self.elf),
        ]
        return self._run_compiler(link, "link")

    def markers(self) -> tuple[int, int]:
        out = subprocess.run(
            [self.tc.nm, str(self.elf)], capture_output=True, text=True, check=True
        )
        syms = {
            p[2]: int(p[0], 16)
            for p in (ln.split() for ln in out.stdout.splitlines())
            if len(p) == 3
        }
        return syms["fg_invoke_begin"], syms["fg_invoke_end"]

    def flash(self) -> dict:
        return flash_report(self.tc.size, self.elf, self.map, f"{self.ident}_model_data.o")

    def alloc(self, size: int) -> QemuRun:
        return run_elf(
            self.elf, self.lib.cpu, ["alloc", str(size)], self.work, timeout=ALLOC_TIMEOUT_S
        )

    def run(self, size: int, counted: bool) -> QemuRun:
        return run_elf(
            self.elf,
            self.lib.cpu,
            ["run", str(size), "in.bin", "out.bin"],
            self.work,
            timeout=RUN_TIMEOUT_S,
            count_between=self.markers() if counted else None,
            icount=counted,
        )


def _link(
    src_dir: Path,
    ident: str,
    c: Cpu,
    kernels: str,
    root: Path,
    methods: list[str],
    library: str,
    work: Path,
    where: str,
    progress: Progress | None,
) -> Harness:
    """Build the ELF; a per-model library subset that misses a symbol falls back to the full one."""
    lib = build_library(
        root, c, kernels, ops_methods=methods if library == "model" else None, progress=progress
    )
    h = Harness(src_dir, ident, lib, work)
    res = h.build()
    if res.returncode != 0 and not lib.complete:
        if progress:
            progress(
                f"{c.name}/{kernels}: the per-model TFLM subset does not link; using the full one"
            )
        h = Harness(src_dir, ident, build_library(root, c, kernels, progress=progress), work)
        res = h.build()
    if res.returncode != 0:
        missing = sorted(set(_UNDEFINED.findall(res.stderr)))
        detail = (
            f"undefined {', '.join(missing[:3])}"
            + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            if missing
            else next(
                (ln for ln in res.stderr.splitlines() if "error" in ln), res.stderr.strip()[:200]
            )
        )
        raise FirmwareGenError(
            f"{where}: the harness does not link against {h.lib.describe()}: {detail}"
        )
    return h


def _bisect(h: Harness, where: str) -> dict:
    first = h.alloc(ARENA_BUFFER)
    if not first.alloc_ok:
        missing = first.missing_ops()
        if missing:
            raise FirmwareGenError(
                f"{where}: the op resolver lacks {', '.join(missing)} (TFLM on "
                f"{h.lib.cpu.name}: \"Didn't find op for builtin opcode '{missing[0]}'\"); "
                f"register it in {h.ident}_op_resolver.h"
            )
        raise FirmwareGenError(
            f"{where}: TFLM cannot allocate the model even with a {ARENA_BUFFER}-byte arena: "
            f"{first.problem()}"
        )
    hi, searched = bisect_min(
        lambda size: bool(h.alloc(size).alloc_ok), ARENA_BUFFER, guess=first.arena_used or 0
    )
    probes = 1 + searched
    below = h.alloc(hi - ALIGN) if hi > ALIGN else None
    return {
        "min_bytes": hi,
        "min_minus_16_fails": below is None or below.alloc_ok is False,
        "min_minus_16_result": "n/a"
        if below is None
        else ("fails" if not below.alloc_ok else "allocates"),
        "probes": probes + (below is not None),
        "arena_used_bytes_at_max": first.arena_used,
        "buffer_bytes": ARENA_BUFFER,
        "granularity_bytes": ALIGN,
    }


def _flash(h: Harness) -> dict:
    fl = h.flash()
    fl["static_ram_bytes"]["harness"] -= ARENA_BUFFER
    fl["static_ram_bytes"]["note"] = "besides the arena; harness without its arena buffer"
    return fl


def _instructions(run: QemuRun, c: Cpu) -> dict:
    counts = run.instructions
    ticks = [t for ok, t in run.invokes if ok]
    per_tick = 1e9 / c.systick_hz  # -icount shift=0: 1 ns of virtual time per instruction
    systick = round(ticks[0] * per_tick) if ticks else None
    return {
        "per_invoke": counts[0] if counts else None,
        "min": min(counts) if counts else None,
        "max": max(counts) if counts else None,
        "median": int(statistics.median(counts)) if counts else None,
        "invokes": len(counts),
        "method": "QEMU TCG plugin (harness/icount_plugin.c) between fg_invoke_begin/_end",
        "systick_cross_check": {
            "instructions": systick,
            "resolution": round(per_tick),
            "agrees_within_pct": (
                round(100 * abs(systick - counts[0]) / counts[0], 3) if systick and counts else None
            ),
            "method": f"SysTick at {c.systick_hz / 1e6:g} MHz under -icount shift=0",
        },
        "note": "instructions, not cycles: QEMU does not model pipelines or memory wait states",
    }


def measure_variant(
    src_dir: Path,
    ident: str,
    info: ModelInfo,
    c: Cpu,
    kernels: str,
    root: Path,
    methods: list[str],
    records: tuple[bytes, int, str],
    host_outputs: list[np.ndarray],
    *,
    library: str = "full",
    source: str = "model",
    progress: Progress | None = None,
) -> dict:
    """Every on-target figure for one (CPU, kernel set); see the module docstring."""
    t0 = time.time()
    where = f"{source} on {c.name}/{kernels}"
    with tempfile.TemporaryDirectory(prefix="firmware_gen_qemu_") as tmp:
        work = Path(tmp)
        h = _link(src_dir, ident, c, kernels, root, methods, library, work, where, progress)
        if progress:
            progress(f"{c.name}/{kernels}: bisecting the arena in QEMU {c.machine}")
        arena = _bisect(h, where)
        data, n, label = records
        (work / "in.bin").write_bytes(data)
        if progress:
            progress(
                f"{c.name}/{kernels}: {n} Invoke() at the minimum arena, counting instructions"
            )
        run = h.run(arena["min_bytes"], counted=True)
        if run.done != n or not all(ok for ok, _ in run.invokes):
            raise FirmwareGenError(
                f"{where}: Invoke() failed at the minimum arena of {arena['min_bytes']} bytes: "
                f"{run.problem()}"
            )
        target_out = decode_outputs(info, (work / "out.bin").read_bytes(), n)
        lib = h.lib
        return {
            "cpu": c.name,
            "cpu_key": c.key,
            "kernels": kernels,
            "qemu_machine": c.machine,
            "library": {
                "sources": len(lib.sources),
                "complete": lib.complete,
                "compiled_now": lib.compiled,
                "build_seconds": lib.seconds,
                "cache": lib.cache_dir.name,
                "flags": " ".join(f for f in lib.cxx_flags if not f.startswith("-isystem")),
            },
            "arena": arena,
            "instructions": _instructions(run, c),
            "flash": _flash(h),
            "parity": compare(host_outputs, target_out, kernels, label),
            "seconds": round(time.time() - t0, 1),
        }


def measure(
    src_dir: Path,
    ident: str,
    info: ModelInfo,
    cpus: list[str],
    kernel_sets: list[str],
    *,
    methods: list[str],
    tflm_root: Path,
    host_arena: int,
    inputs: np.ndarray | None = None,
    library: str = "full",
    source: str = "model",
    progress: Progress | None = None,
) -> dict:
    """``{"tflm_root", "inputs", "variants": [...]}`` for every (CPU, kernel set) asked for."""
    find_toolchain()
    for k in kernel_sets:
        if k not in KERNEL_SETS:
            raise FirmwareGenError(f"unknown kernel set {k!r}; choose {', '.join(KERNEL_SETS)}")
    records = encode_inputs(info, inputs)
    with tempfile.TemporaryDirectory(prefix="firmware_gen_host_") as tmp:
        inp, out = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        inp.write_bytes(records[0])
        with Prober(info.data) as p:
            p.run_file(max(host_arena, ALIGN), inp, out)
        host_outputs = decode_outputs(info, out.read_bytes(), records[1])
    variants = [
        measure_variant(
            src_dir,
            ident,
            info,
            cpu(c),
            k,
            tflm_root,
            methods,
            records,
            host_outputs,
            library=library,
            source=source,
            progress=progress,
        )
        for c in cpus
        for k in kernel_sets
    ]
    return {
        "tflm_root": str(tflm_root),
        "inputs": records[2],
        "records": records[1],
        "input_elements": int(sum(math.prod(t.shape) for t in info.input_tensors)),
        "variants": variants,
    }
