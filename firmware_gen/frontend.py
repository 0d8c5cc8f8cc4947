"""TFLM's micro frontend (the C feature extractor) run on the target in QEMU.

The ``audio_microfrontend`` TensorFlow op that tfkws trains with wraps the C library in
``tensorflow/lite/experimental/microfrontend/lib``; the device runs the same library, compiled for
its CPU from the TFLM tree. This builds it (cached like TFLM, ``tflm_lib``), links
``harness/frontend_main.c``, feeds int16 clips through semihosting and returns the uint16
features, so a caller can compare them with what training saw (``tfkws.verification``).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from firmware_gen.cpus import CPUS, Cpu
from firmware_gen.errors import FirmwareGenError
from firmware_gen.qemu import HARNESS, run_elf
from firmware_gen.tflm_lib import TflmLibrary, build_library
from firmware_gen.toolchain import find_toolchain

LIB_DIR = "tensorflow/lite/experimental/microfrontend/lib/"
# The processing library only: no *_io.c (C code generators), no command-line mains.
SOURCES = tuple(
    LIB_DIR + f
    for f in (
        "fft.cc",
        "fft_util.cc",
        "filterbank.c",
        "filterbank_util.c",
        "frontend.c",
        "frontend_util.c",
        "kiss_fft_int16.cc",
        "log_lut.c",
        "log_scale.c",
        "log_scale_util.c",
        "noise_reduction.c",
        "noise_reduction_util.c",
        "pcan_gain_control.c",
        "pcan_gain_control_util.c",
        "window.c",
        "window_util.c",
    )
)
SETTINGS = (
    "sample_rate",
    "window_size_ms",
    "window_stride_ms",
    "num_channels",
    "upper_band_limit",
    "lower_band_limit",
    "smoothing_bits",
    "even_smoothing",
    "odd_smoothing",
    "min_signal_remaining",
    "enable_pcan",
    "pcan_strength",
    "pcan_offset",
    "gain_bits",
    "enable_log",
    "scale_shift",
)
TIMEOUT_S = 600.0
# No fused multiply-add contraction in the frontend, on the device and on the host. The setup code
# computes the window, filterbank weights and (C++) kissfft twiddles with float/double math and
# rounds them to integers; GCC's default for GNU C/C++ (-ffp-contract=fast) fuses a*b+c into one
# vfma/vfms on Cortex-M4/M55 (a single rounding), which moved filterbank weights by 1 LSB and the
# features by 1 against x86-64 (no FMA). TFLM's own Makefile builds C with -std=c11, which in GCC
# means no contraction, so a TFLM build of these C files never fused. For C++ it also covers the
# kissfft twiddles (fused in double on M55 only, M4 has no double FPU; measured: the same tables
# for FFT sizes 256..2048 either way) and hosts whose compiler fuses by default (aarch64).
FP_FLAGS = ("-ffp-contract=off",)
# kiss_fft_int16.cc #includes these kissfft implementation files (kissfft v130, as TFLM's build
# downloads it); a tree holding only kissfft's headers cannot build the frontend's FFT.
KISSFFT_FILES = ("kiss_fft.c", "_kiss_fft_guts.h", "tools/kiss_fftr.c")


def kissfft_root(root: Path, explicit: str | os.PathLike | None = None) -> Path:
    """Where kissfft's sources are: ``explicit``, ``$KISSFFT_ROOT`` or the tree's own copy."""
    where = Path(explicit or os.environ.get("KISSFFT_ROOT") or root / "third_party" / "kissfft")
    missing = [f for f in KISSFFT_FILES if not (where / f).exists()]
    if missing:
        raise FirmwareGenError(
            f"{where}: the micro frontend's FFT needs kissfft's {', '.join(KISSFFT_FILES)} "
            f"(missing: {', '.join(missing)}); add them from kissfft v130 with TFLM's "
            "kissfft.patch, or set KISSFFT_ROOT to a folder holding them"
        )
    return where.resolve()


@dataclasses.dataclass(frozen=True)
class FrontendRun:
    features: np.ndarray  # uint16 [clips, frames, channels], the raw frontend output
    instructions: list[int]  # per clip, FrontendProcessSamples only (state setup excluded)
    flash_bytes: int  # .text + .rodata + .data of the frontend library in the ELF
    cpu: str


def config_text(settings: dict) -> str:
    """The harness's config file from a feature config (tfkws metadata ``feature_config``)."""
    missing = [k for k in SETTINGS if k not in settings]
    if missing:
        raise FirmwareGenError(f"frontend settings missing: {', '.join(missing)}")
    lines = []
    for k in SETTINGS:
        v = settings[k]
        lines.append(f"{k} {int(v) if isinstance(v, bool) else repr(float(v))}")
    return "\n".join(lines) + "\n"


def frontend_library(root: Path, cpu: Cpu, kissfft: Path) -> TflmLibrary:
    """The micro frontend library for ``cpu`` (cached like TFLM), built with ``FP_FLAGS``."""
    for s in SOURCES:
        if not (root / s).exists():
            raise FirmwareGenError(f"{root}: no micro frontend source {s}")
    # TFLM's kissfft files include each other as "third_party/kissfft/...": search the folder
    # holding that third_party/ too (before the TFLM tree, whose copy may be headers only).
    extra = (kissfft, kissfft.parents[1]) if kissfft.parent.name == "third_party" else (kissfft,)
    return build_library(
        root, cpu, "reference", sources=list(SOURCES), extra_includes=extra, extra_flags=FP_FLAGS
    )


def _build(root: Path, cpu: Cpu, work: Path, kissfft: Path) -> Path:
    lib = frontend_library(root, cpu, kissfft)
    tc = find_toolchain()
    elf = work / "frontend.elf"
    cmds = [
        [tc.gcc, *lib.c_flags, "-c", str(HARNESS / "startup.c"), "-o", "startup.o"],
        [tc.gcc, *lib.c_flags, "-c", str(HARNESS / "frontend_main.c"), "-o", "frontend_main.o"],
        [
            tc.gxx,
            *cpu.flags,
            "-T",
            str(HARNESS / cpu.linker_script),
            f"-L{HARNESS}",
            "-nostartfiles",
            "--specs=rdimon.specs",
            "-Wl,--gc-sections",
            "-Wl,-Map=frontend.map",
            "startup.o",
            "frontend_main.o",
            str(lib.archive),
            "-o",
            str(elf),
        ],
    ]
    for cmd in cmds:
        res = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        if res.returncode != 0:
            first = next((ln for ln in res.stderr.splitlines() if "error" in ln), res.stderr[:200])
            raise FirmwareGenError(f"micro frontend harness for {cpu.name}: {first}")
    return elf


def _flash(work: Path) -> int:
    from firmware_gen.elf_size import attribute, section_sizes

    sizes = section_sizes(find_toolchain().size, work / "frontend.elf")
    parts = attribute((work / "frontend.map").read_text(errors="replace"), "-", sizes)
    # the frontend archive is named libtflm-<hash>.a, so its share is reported as "tflm"
    return sum(parts.get(s, {}).get("tflm", 0) for s in (".text", ".rodata", ".data"))


def run_frontend_host(
    clips: np.ndarray, settings: dict, root: Path, kissfft: str | os.PathLike | None = None
) -> np.ndarray:
    """The same sources and harness built natively with the host compiler and run on the host.

    Device output equal to this means the target build (compiler, libm, 32-bit) changes nothing,
    so any difference from another frontend comes from the source versions. Both builds use
    ``FP_FLAGS``: with fused multiply-adds the device's setup tables differ by an LSB.
    """
    import shutil

    kiss = kissfft_root(root, kissfft)
    cc, cxx = shutil.which("cc") or shutil.which("gcc"), shutil.which("c++") or shutil.which("g++")
    if cc is None or cxx is None:
        raise FirmwareGenError("the host frontend build needs a host C and C++ compiler")
    extra = [kiss, kiss.parents[1]] if kiss.parent.name == "third_party" else [kiss]
    incs = [f"-I{i}" for i in extra] + [f"-I{root}", f"-I{root / 'third_party' / 'kissfft'}"]
    x = np.ascontiguousarray(np.asarray(clips, dtype=np.int16))
    with tempfile.TemporaryDirectory(prefix="firmware_gen_frontend_host_") as tmp:
        work = Path(tmp)
        objs = []
        for src in [*SOURCES, "MAIN"]:
            path = HARNESS / "frontend_main.c" if src == "MAIN" else root / src
            obj = work / (path.name + ".o")
            tool = cxx if path.suffix == ".cc" else cc
            res = subprocess.run(
                [tool, "-O2", *FP_FLAGS, *incs, "-c", str(path), "-o", str(obj)],
                capture_output=True,
                text=True,
            )
            if res.returncode != 0:
                raise FirmwareGenError(
                    f"{path.name}: host build failed: {res.stderr.strip()[:200]}"
                )
            objs.append(str(obj))
        exe = work / "frontend_host"
        subprocess.run([cxx, *objs, "-o", str(exe)], check=True, capture_output=True)
        (work / "frontend.cfg").write_text(config_text(settings))
        (work / "audio.bin").write_bytes(x.tobytes())
        res = subprocess.run(
            [str(exe), "frontend.cfg", "audio.bin", "features.bin", str(x.shape[1])],
            cwd=work,
            capture_output=True,
            text=True,
        )
        summary = [ln for ln in res.stdout.splitlines() if ln.startswith("FG_FRONTEND")]
        if res.returncode != 0 or not summary:
            raise FirmwareGenError(f"host frontend run failed: {res.stdout.strip()[-200:]}")
        _, n, frames, channels = summary[-1].split()
        data = np.frombuffer((work / "features.bin").read_bytes(), dtype=np.uint16)
        return data.reshape(int(n), int(frames), int(channels))


def run_frontend(
    clips: np.ndarray,
    settings: dict,
    root: Path,
    cpu: str = "m4",
    count: bool = True,
    kissfft: str | os.PathLike | None = None,
) -> FrontendRun:
    """int16 clips ``[N, samples]`` -> the device's uint16 features ``[N, frames, channels]``."""
    kiss = kissfft_root(root, kissfft)
    x = np.asarray(clips)
    if x.dtype != np.int16 or x.ndim != 2 or x.shape[0] == 0:
        raise FirmwareGenError(
            f"frontend input must be int16 [clips, samples], got {x.dtype} {x.shape}"
        )
    c = CPUS[cpu]
    with tempfile.TemporaryDirectory(prefix="firmware_gen_frontend_") as tmp:
        work = Path(tmp)
        elf = _build(root, c, work, kiss)
        (work / "frontend.cfg").write_text(config_text(settings))
        (work / "audio.bin").write_bytes(np.ascontiguousarray(x).tobytes())
        markers = None
        if count:
            out = subprocess.run([find_toolchain().nm, str(elf)], capture_output=True, text=True)
            syms = {
                p[2]: int(p[0], 16)
                for p in (ln.split() for ln in out.stdout.splitlines())
                if len(p) == 3
            }
            markers = (syms["fg_invoke_begin"], syms["fg_invoke_end"])
        run = run_elf(
            elf,
            c,
            ["frontend.cfg", "audio.bin", "features.bin", str(x.shape[1])],
            work,
            timeout=TIMEOUT_S,
            count_between=markers,
        )
        summary = [ln for ln in run.stdout.splitlines() if ln.startswith("FG_FRONTEND")]
        if run.done != x.shape[0] or not summary:
            raise FirmwareGenError(f"micro frontend on {c.name} failed: {run.problem()}")
        _, n, frames, channels = summary[-1].split()
        data = np.frombuffer((work / "features.bin").read_bytes(), dtype=np.uint16)
        feats = data.reshape(int(n), int(frames), int(channels))
        return FrontendRun(feats, run.instructions, _flash(work), c.name)
