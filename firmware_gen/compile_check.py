"""``--compile``: compile the generated sources with the host C++ compiler and, when installed,
``arm-none-eabi-g++ -mcpu=cortex-m4`` (Debian package ``gcc-arm-none-eabi``), and report the
objects' section sizes. The op-resolver header needs TFLM's headers: it is compiled only when a
TFLM source tree is given (``--tflm-root`` or ``$TFLM_ROOT``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from firmware_gen.elf_size import section_list
from firmware_gen.errors import FirmwareGenError
from firmware_gen.tflm_lib import DEFINES, INCLUDES

HOST_FLAGS = ["-std=c++17", "-Os", "-Wall", "-Wextra", "-Werror", "-fno-exceptions", "-fno-rtti"]
ARM_FLAGS = [
    "-mcpu=cortex-m4",
    "-mthumb",
    "-mfloat-abi=hard",
    "-mfpu=fpv4-sp-d16",
    "-std=c++17",
    "-Os",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-fno-exceptions",
    "-fno-rtti",
    "-ffunction-sections",
    "-fdata-sections",
]
TFLM_INCLUDES = list(INCLUDES)
TFLM_DEFINES = list(DEFINES)


def host_compiler() -> str | None:
    for cc in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if cc and shutil.which(cc):
            return cc
    return None


def _sections(size_tool: str, obj: Path) -> dict[str, int]:
    """Bytes of an object file per section kind: -ffunction-sections names each symbol's
    section, so ``.text.*`` and the like are summed (debug, notes and groups left out)."""
    sections: dict[str, int] = {}
    for full, size in section_list(size_tool, obj):
        name = "." + full.split(".")[1]
        if size and name not in (".debug", ".comment", ".note", ".ARM", ".group"):
            sections[name] = sections.get(name, 0) + size
    return dict(sorted(sections.items()))


def compile_sources(src_dir: Path, ident: str, tflm_root: str | Path | None = None) -> dict:
    """Compile ``NAME_model_data.cc`` (and the resolver when TFLM headers exist); report sizes."""
    src_dir = Path(src_dir)
    tflm = Path(tflm_root) if tflm_root else None
    resolver_h = "tensorflow/lite/micro/micro_mutable_op_resolver.h"
    if tflm is not None and not (tflm / resolver_h).exists():
        raise FirmwareGenError(f"{tflm}: not a TFLM source tree (no micro_mutable_op_resolver.h)")
    host = host_compiler()
    if host is None:
        raise FirmwareGenError("--compile: no host C++ compiler found (c++, g++ or clang++)")
    compilers = [("host", host, HOST_FLAGS, "size")]
    arm = shutil.which("arm-none-eabi-g++")
    if arm:
        compilers.append(
            ("arm-none-eabi cortex-m4", "arm-none-eabi-g++", ARM_FLAGS, "arm-none-eabi-size")
        )
    report: dict = {
        "compilers": {},
        "op_resolver": "compiled"
        if tflm
        else "skipped: no TFLM source tree (--tflm-root or $TFLM_ROOT)",
    }
    if not arm:
        report["arm"] = "skipped: arm-none-eabi-g++ not installed (Debian: gcc-arm-none-eabi)"
    with tempfile.TemporaryDirectory(prefix="firmware_gen_cc_") as tmp:
        units = {f"{ident}_model_data.cc": src_dir / f"{ident}_model_data.cc"}
        if tflm:
            tu = Path(tmp) / f"{ident}_op_resolver_check.cc"
            tu.write_text(
                f'#include "{ident}_op_resolver.h"\n'
                f"TfLiteStatus {ident}_register_check() {{\n"
                f"  static {ident}_model::OpResolver resolver;\n"
                f"  return {ident}_model::RegisterOps(resolver);\n}}\n"
            )
            units[f"{ident}_op_resolver.h"] = tu
        for label, cxx, flags, size_tool in compilers:
            entry = {"compiler": cxx, "flags": " ".join(flags), "objects": {}}
            version = subprocess.run([cxx, "-dumpversion"], capture_output=True, text=True)
            entry["version"] = version.stdout.strip()
            for unit, src in units.items():
                obj = Path(tmp) / (src.name + f".{len(entry['objects'])}.{label[:4]}.o")
                cmd = [cxx, *flags, f"-I{src_dir}"]
                if tflm:
                    cmd += [*TFLM_DEFINES, *[f"-isystem{tflm / i}" for i in TFLM_INCLUDES]]
                cmd += ["-c", str(src), "-o", str(obj)]
                res = subprocess.run(cmd, capture_output=True, text=True)
                if res.returncode != 0:
                    lines = res.stderr.strip().splitlines()
                    first = next((ln for ln in lines if "error" in ln), lines[-1] if lines else "?")
                    raise FirmwareGenError(
                        f"--compile: {cxx} failed on {unit}: "
                        f"{first.replace(str(src_dir) + '/', '')}"
                    )
                entry["objects"][unit] = _sections(size_tool, obj)
            report["compilers"][label] = entry
    return report
