"""Regenerate the package's TFLM tables from a TFLM source tree (developer tool, not for users).

``tflm_ops.json``: builtin operator -> ``MicroMutableOpResolver::Add*`` method, parsed from
``micro_mutable_op_resolver.h``, so the op-resolver header and the "TFLM lacks this op" check follow
the TFLM version the firmware builds against.

``code_size_cm4.json``: flash cost of the TFLM runtime on a Cortex-M4, measured by linking: the
reference-kernel library is compiled once with ``arm-none-eabi-g++ -Os``; a minimal program
(MicroInterpreter + a resolver with no ops) is linked with ``--gc-sections`` for the base size, then
once per op with only that op added; the per-op figure is the growth of ``.text + .data`` over the
base.

The library comes from ``firmware_gen.tflm_lib`` (built with ``-Os`` here, cached like the
on-target libraries, so an interrupted run resumes where it stopped).

    python -m firmware_gen.refresh_tables ops --tflm ../shared/tflm
    python -m firmware_gen.refresh_tables codesize --tflm ../shared/tflm
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import re
import subprocess
import tempfile
from pathlib import Path

from firmware_gen.cpus import CPUS
from firmware_gen.tflm_lib import build_library, compile_flags
from firmware_gen.toolchain import find_toolchain

HERE = Path(__file__).resolve().parent
RESOLVER_H = "tensorflow/lite/micro/micro_mutable_op_resolver.h"
CODESIZE_OPT = "-Os"


def parse_resolver(tflm: Path) -> dict:
    """Map builtin op names to their Add* methods (custom-registered ones are left out)."""
    text = (tflm / RESOLVER_H).read_text()
    builtins: dict[str, str] = {}
    parts = re.split(r"\n  TfLiteStatus (Add\w+)\(", text)
    for method, body in zip(parts[1::2], parts[2::2], strict=True):
        body = body.split("\n  TfLiteStatus ")[0]
        m = re.search(r"AddBuiltin\(\s*BuiltinOperator_(\w+)", body)
        if m and method != "AddBuiltin":
            builtins[m.group(1)] = method
    return dict(sorted(builtins.items()))


def _tflm_commit(tflm: Path) -> str:
    readme = (tflm / "README.md").read_text() if (tflm / "README.md").exists() else ""
    m = re.search(r"tensorflow/tflite-micro at commit (\w+)", readme)
    return m.group(1) if m else "unknown"


def write_ops(tflm: Path) -> None:
    table = {
        "source": f"tensorflow/tflite-micro {_tflm_commit(tflm)}: {RESOLVER_H}",
        "builtin_ops": parse_resolver(tflm),
    }
    (HERE / "tflm_ops.json").write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")


MAIN_CC = """
#include <cstdarg>
#include <cstddef>
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
extern "C" void DebugLog(const char*, va_list) {}
extern "C" int DebugVsnprintf(char*, size_t, const char*, va_list) { return 0; }
extern "C" const unsigned char g_model[];
alignas(16) static unsigned char arena[4096];
int main() {
  static tflite::MicroMutableOpResolver<1> resolver;
  %s
  tflite::MicroInterpreter interpreter(tflite::GetModel(g_model), resolver, arena, sizeof(arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) return 1;
  return interpreter.Invoke() == kTfLiteOk ? 0 : 2;
}
"""


def _text_data(elf: Path) -> int:
    out = (
        subprocess.run(["arm-none-eabi-size", str(elf)], check=True, capture_output=True, text=True)
        .stdout.splitlines()[1]
        .split()
    )
    return int(out[0]) + int(out[1])


def write_codesize(tflm: Path, jobs: int) -> None:
    lib = build_library(tflm, CPUS["m4"], "reference", opt=CODESIZE_OPT, jobs=jobs, progress=print)
    cxx = find_toolchain(need_qemu=False).gxx
    _, cxx_flags = compile_flags(tflm, CPUS["m4"], "reference", CODESIZE_OPT)
    with tempfile.TemporaryDirectory(prefix="firmware_gen_codesize_") as tmp:
        _measure_codesize(tflm, Path(tmp), lib.archive, cxx, cxx_flags, jobs)


def _measure_codesize(
    tflm: Path, build: Path, lib: Path, cxx: str, cxx_flags: list[str], jobs: int
) -> None:
    model = build / "model.cc"
    model.write_text('extern "C" alignas(16) const unsigned char g_model[16] = {0};\n')

    def link(add: str, name: str) -> int | None:
        src = build / f"main_{name}.cc"
        src.write_text(MAIN_CC % add)
        elf = build / f"main_{name}.elf"
        res = subprocess.run(
            [
                cxx,
                *cxx_flags,
                str(src),
                str(model),
                str(lib),
                "--specs=nosys.specs",
                "-Wl,--gc-sections",
                "-o",
                str(elf),
            ],
            capture_output=True,
        )
        return _text_data(elf) if res.returncode == 0 else None

    base = link("", "base")
    if base is None:
        raise SystemExit("the runtime does not link yet (objects missing?)")
    ops = parse_resolver(tflm)
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        sizes = dict(
            zip(
                ops,
                pool.map(lambda kv: link(f"resolver.{kv[1]}();", kv[0]), ops.items()),
                strict=True,
            )
        )
    per_op = {op: size - base for op, size in sorted(sizes.items()) if size is not None}
    gcc_version = subprocess.run([cxx, "-dumpversion"], capture_output=True, text=True).stdout
    table = {
        "basis": (
            "Measured by linking (arm-none-eabi-g++ "
            + gcc_version.strip()
            + ", "
            + " ".join(f for f in cxx_flags if not f.startswith("-isystem"))
            + ", --specs=nosys.specs -Wl,--gc-sections) TFLM "
            + _tflm_commit(tflm)
            + " reference kernels: base = MicroInterpreter with an empty "
            "MicroMutableOpResolver (includes newlib's crt0 and small libc pieces, no logging "
            "backend); per op = growth of .text+.data when only that op is added. Ops share "
            "helpers, so a sum over several ops overestimates slightly; CMSIS-NN kernels differ."
        ),
        "target": "cortex-m4 (thumb, fpv4-sp-d16 hard float), reference kernels, -Os",
        "base_bytes": base,
        "per_op_bytes": per_op,
    }
    (HERE / "code_size_cm4.json").write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["ops", "codesize"])
    p.add_argument("--tflm", type=Path, required=True)
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args()
    if a.what == "ops":
        write_ops(a.tflm.resolve())
    else:
        write_codesize(a.tflm.resolve(), a.jobs)


if __name__ == "__main__":
    main()
