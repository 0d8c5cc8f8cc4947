"""Find the tools on-target measurement needs, or say in one line what to install.

Debian/Ubuntu packages: ``gcc-arm-none-eabi`` (compiler, binutils), ``libnewlib-arm-none-eabi``
(C library with semihosting, ``rdimon.specs``), ``libstdc++-arm-none-eabi-newlib`` (C++ runtime)
and ``qemu-system-arm`` (the emulator). A host C compiler builds the QEMU instruction-count plugin.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import subprocess
from pathlib import Path

from firmware_gen.errors import FirmwareGenError

APT_PACKAGES = (
    "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm"
)
INSTALL_HINT = f"apt-get install --no-install-recommends {APT_PACKAGES}"
REPO_ROOT = Path(__file__).resolve().parents[1]
TFLM_MARKER = "tensorflow/lite/micro/micro_mutable_op_resolver.h"


@dataclasses.dataclass(frozen=True)
class Toolchain:
    gcc: str
    gxx: str
    ar: str
    size: str
    nm: str
    qemu: str | None
    host_cc: str | None
    version: str  # first line of ``arm-none-eabi-gcc --version`` (part of the cache key)


def _first_line(cmd: list[str]) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True)
    return (out.stdout or out.stderr).strip().splitlines()[0] if out.returncode == 0 else ""


@functools.cache
def _find(need_qemu: bool) -> Toolchain:
    tools = {t: shutil.which(f"arm-none-eabi-{t}") for t in ("gcc", "g++", "ar", "size", "nm")}
    missing = [f"arm-none-eabi-{t}" for t, p in tools.items() if p is None]
    qemu = shutil.which("qemu-system-arm")
    if need_qemu and qemu is None:
        missing.append("qemu-system-arm")
    if not missing:
        # newlib's semihosting specs and libstdc++ come in their own packages
        probe = [
            tools["gcc"],
            "-mcpu=cortex-m4",
            "-mthumb",
            "-mfloat-abi=hard",
            "-mfpu=fpv4-sp-d16",
        ]
        for lib, pkg in (("rdimon.specs", "newlib"), ("libstdc++.a", "libstdc++")):
            found = _first_line([*probe, f"-print-file-name={lib}"])
            if not os.path.isabs(found):
                missing.append(f"{lib} ({pkg} for arm-none-eabi)")
    if missing:
        raise FirmwareGenError(
            f"on-target measurement needs {', '.join(missing)}: install with `{INSTALL_HINT}`"
        )
    host_cc = next(
        (c for c in (os.environ.get("CC"), "cc", "gcc", "clang") if c and shutil.which(c)), None
    )
    return Toolchain(
        gcc=tools["gcc"],
        gxx=tools["g++"],
        ar=tools["ar"],
        size=tools["size"],
        nm=tools["nm"],
        qemu=qemu,
        host_cc=host_cc,
        version=_first_line([tools["gcc"], "--version"]),
    )


def find_toolchain(need_qemu: bool = True) -> Toolchain:
    """The arm-none-eabi tools (and QEMU); ``FirmwareGenError`` naming what is missing."""
    return _find(need_qemu)


def available(need_qemu: bool = True) -> str | None:
    """``None`` when everything is installed, else the one-line reason (for skips and demos)."""
    try:
        find_toolchain(need_qemu)
    except FirmwareGenError as e:
        return str(e)
    return None


def default_tflm_root() -> Path | None:
    """``$TFLM_ROOT``, else ``../shared/tflm`` beside the repository when it exists."""
    env = os.environ.get("TFLM_ROOT")
    if env:
        return Path(env)
    shared = REPO_ROOT.parent / "shared" / "tflm"
    return shared if (shared / TFLM_MARKER).exists() else None


def tflm_root(explicit: str | os.PathLike | None = None) -> Path:
    """The TFLM source tree to build from: ``explicit``, ``$TFLM_ROOT`` or ``../shared/tflm``."""
    root = Path(explicit) if explicit else default_tflm_root()
    if root is None:
        raise FirmwareGenError(
            "no TFLM source tree: pass --tflm-root or set TFLM_ROOT (a tensorflow/tflite-micro "
            "checkout with its third_party dependencies)"
        )
    if not (root / TFLM_MARKER).exists():
        raise FirmwareGenError(f"{root}: not a TFLM source tree (no {TFLM_MARKER})")
    return root.resolve()
