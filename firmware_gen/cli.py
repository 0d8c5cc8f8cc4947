"""``firmware-gen MODEL.tflite --out DIR [...]``: the command-line face of :func:`generate`.

Exit codes: 0 done (and, with ``--check``, the model fits every target); 1 ``--check`` and the
model does not fit (one line says why; the outputs are still written); 2 bad input or options (one
line ``firmware-gen: error: ...``, no traceback, no output folder); 3 internal error (a bug).

Path arguments are made absolute here, once, so nothing downstream depends on the working
directory (the compilers and QEMU run in temp folders).
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
from pathlib import Path

from absl import flags

from firmware_gen.errors import FirmwareGenError

PROG = "firmware-gen"
USAGE = f"usage: {PROG} MODEL.tflite --out DIR [flags]"

# A registry of its own: firmware-gen's flags only, not absl's global ones (logging ...), and
# importing this module (tfkws does, for ``on_target_lines``) defines nothing global.
FLAGS = flags.FlagValues()
# Flags that name files or folders: made absolute before use (see the module docstring).
PATH_FLAGS = (
    "out",
    "json",
    "targets-file",
    "tflm-root",
    "inputs",
    "metadata",
    "detector",
    "stream-audio",
    "stream-reference",
)

flags.DEFINE_string(
    "out", None, "Output folder for the generated sources and report.", flag_values=FLAGS
)
flags.DEFINE_string(
    "name",
    None,
    "C name of the model (default: the file's stem); any text is "
    "made a valid, unique C identifier.",
    flag_values=FLAGS,
)
flags.DEFINE_multi_string(
    "target",
    [],
    "Target part/board key (repeat or comma-separate); "
    "see firmware_gen/targets.json, e.g. nrf52840, stm32f746.",
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "targets-file",
    None,
    "JSON file of extra targets (same layout as "
    "targets.json); with no --target, all of its targets are checked.",
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "ram", None, "Custom RAM limit in bytes (suffix K/M = KiB/MiB allowed).", flag_values=FLAGS
)
flags.DEFINE_string(
    "flash", None, "Custom flash limit in bytes (suffix K/M allowed).", flag_values=FLAGS
)
flags.DEFINE_string(
    "ram-reserve", "0", "RAM kept for the application besides the arena.", flag_values=FLAGS
)
flags.DEFINE_string(
    "flash-reserve", "0", "Flash kept for the application besides model+TFLM.", flag_values=FLAGS
)
flags.DEFINE_float(
    "arena-margin",
    20.0,
    "Margin in percent added to the arena for kTensorArenaSize.",
    flag_values=FLAGS,
)
flags.DEFINE_bool(
    "check",
    False,
    "Exit 1 with a one-line reason when the model does not fit every target/limit (a CI gate).",
    flag_values=FLAGS,
)
flags.DEFINE_string("json", None, "Also write the JSON report to this path.", flag_values=FLAGS)
flags.DEFINE_bool(
    "compile",
    False,
    "Compile the generated sources (host C++, and "
    "arm-none-eabi-g++ -mcpu=cortex-m4 when installed) and report section sizes.",
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "tflm-root",
    None,
    "TFLM source tree: compiles the op resolver header with --compile (default: $TFLM_ROOT) "
    "and builds TFLM for --on-target (default: $TFLM_ROOT, else ../shared/tflm).",
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "on-target",
    None,
    "Measure on these CPUs in QEMU with TFLM C++ (m4 = Cortex-M4 on mps2-an386, m55 = "
    "Cortex-M55 on mps3-an547): minimum arena, instructions per Invoke, flash, output parity. "
    "Needs arm-none-eabi-gcc, newlib, libstdc++ and qemu-system-arm (README).",
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "kernels",
    "reference,cmsis-nn",
    "Kernel sets for --on-target: reference, cmsis-nn.",
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "inputs",
    None,
    "Inputs for the --on-target parity check: .npy of records [N, ...] in the model's input "
    "dtype (default: 3 seeded random records).",
    flag_values=FLAGS,
)
flags.DEFINE_enum(
    "tflm-library",
    "full",
    ["full", "model"],
    "TFLM for --on-target: the full cached library per CPU/kernel set, or only the sources this "
    "model's ops need (faster first build).",
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "metadata",
    None,
    "tfkws metadata JSON (default: X.metadata.json beside X.tflite, when present).",
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "detector",
    None,
    "Detector spec JSON (tfkws detect --detector_spec writes one): also write NAME_detector.h, "
    "the keyword detector (smoothing, thresholds, refractory period) in plain C, and with "
    "micro frontend metadata NAME_stream_main.cc, an example firmware: audio -> frontend -> "
    "model -> detector.",
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "stream-audio",
    None,
    "16-bit mono WAV: run NAME_stream_main.cc's whole pipeline (micro frontend, sliding-window "
    "model, detector) on it in QEMU for each --on-target CPU and kernel set; report detections, "
    "instructions per step and the real-time share. Needs --detector and --on-target.",
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "stream-reference",
    None,
    "tfkws detect --json report of the same audio: check the device detections equal it.",
    flag_values=FLAGS,
)


_SIZE = re.compile(r"\s*(\d+)\s*([kKmM]i?[bB]?|[bB])?\s*")


def parse_bytes(text: str | None, flag: str) -> int | None:
    """``"262144"``, ``"256K"``, ``"1M"``, ``"256KiB"`` -> bytes (binary multiples)."""
    if text is None:
        return None
    m = _SIZE.fullmatch(text)
    if not m:
        raise FirmwareGenError(f"--{flag}: {text!r} is not a size in bytes (e.g. 262144, 256K, 1M)")
    unit = (m.group(2) or "").lower()[:1]
    return int(m.group(1)) * {"k": 1024, "m": 1024 * 1024}.get(unit, 1)


def absolute(path: str | os.PathLike | None) -> Path | None:
    """``path`` made absolute against the current directory (``~`` expanded); None stays None."""
    return None if path is None else Path(os.path.abspath(os.path.expanduser(path)))


def help_text() -> str:
    """``firmware-gen --help``: usage, exit codes, then every flag with its help and default."""
    lines = [
        USAGE,
        "",
        "Any int8 TFLM .tflite -> C sources (model data, op resolver), exact arena, fit report.",
        "Exit codes: 0 done (with --check: fits), 1 --check failed, 2 bad input, 3 internal error.",
        "",
        "flags:",
    ]
    for name in sorted(FLAGS):
        flag = FLAGS[name]
        head = f"--[no]{name}" if isinstance(flag, flags.BooleanFlag) else f"--{name}"
        default = f" (default: {flag.default_as_str})" if flag.default not in (None, []) else ""
        lines.append(
            textwrap.fill(
                f"{head}: {' '.join(flag.help.split())}{default}",
                width=100,
                initial_indent="  ",
                subsequent_indent="      ",
                break_on_hyphens=False,
            )
        )
    return "\n".join(lines)


class _Exit(Exception):
    """Leave ``main`` with this exit code (after the one-line message is printed)."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def _fail(message: str, code: int = 2) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise _Exit(code)


def main(argv: list[str]) -> int:
    """Run firmware-gen with ``argv`` (program name first); return the exit code."""
    try:
        return _main(argv)
    except _Exit as e:
        return e.code


def _main(argv: list[str]) -> int:
    from firmware_gen.pipeline import generate

    if any(a in ("-h", "--help", "--helpshort", "--helpfull") for a in argv[1:]):
        print(help_text())
        return 0
    FLAGS.unparse_flags()
    try:
        args = FLAGS(argv)[1:]
    except flags.Error as e:
        _fail(str(e).splitlines()[0] if str(e) else "bad flags")
    if len(args) != 1:
        _fail(f"give exactly one MODEL.tflite ({USAGE}; --help lists the flags)")
    if not FLAGS.out:
        _fail("--out DIR is required")
    paths = {name: absolute(FLAGS[name].value) for name in PATH_FLAGS}
    try:
        targets = [t for spec in FLAGS.target for t in spec.split(",") if t.strip()]
        if FLAGS.check and not (targets or paths["targets-file"] or FLAGS.ram or FLAGS.flash):
            _fail("--check needs at least one --target, --targets-file or --ram/--flash")
        result = generate(
            absolute(args[0]),
            paths["out"],
            name=FLAGS.name,
            targets=targets,
            targets_file=paths["targets-file"],
            ram=parse_bytes(FLAGS.ram, "ram"),
            flash=parse_bytes(FLAGS.flash, "flash"),
            ram_reserve=parse_bytes(FLAGS["ram-reserve"].value, "ram-reserve") or 0,
            flash_reserve=parse_bytes(FLAGS["flash-reserve"].value, "flash-reserve") or 0,
            arena_margin=FLAGS["arena-margin"].value,
            json_path=paths["json"],
            compile=FLAGS.compile,
            tflm_root=paths["tflm-root"],
            metadata=paths["metadata"],
            on_target=[FLAGS["on-target"].value] if FLAGS["on-target"].value else [],
            kernels=[FLAGS.kernels],
            inputs=paths["inputs"],
            tflm_library=FLAGS["tflm-library"].value,
            detector=paths["detector"],
            stream_audio=paths["stream-audio"],
            stream_reference=paths["stream-reference"],
            progress=lambda msg: print(f"{PROG}: {msg}", file=sys.stderr, flush=True),
        )
    except FirmwareGenError as e:
        _fail(str(e).splitlines()[0])
    except _Exit:
        raise
    except Exception as e:  # a bug, not bad input: still one line, distinct exit code
        _fail(f"internal error ({type(e).__name__}: {e})".splitlines()[0], code=3)
    r = result.report
    print(
        f"{PROG}: wrote {len(result.files)} files to {result.out_dir}: model "
        f"{r['model_bytes']:,} bytes, arena min {r['min_arena_bytes']:,} (host), recommended "
        f"{r['recommended_arena_bytes']:,}, {r['total_macs']:,} MACs"
        + ("" if r.get("total_macs_complete", True) else " (at least: a loop's trip count unknown)")
    )
    for line in on_target_lines(r):
        print(f"{PROG}: {line}")
    if FLAGS.check:
        if not result.fits:
            print(f"{PROG}: check failed: {r['model']['file']} {result.reason}", file=sys.stderr)
            return 1
        print(f"{PROG}: check passed: fits {', '.join(t['key'] for t in r['targets'])}")
    return 0


def on_target_lines(r: dict) -> list[str]:
    """One summary line per on-target variant (also used by tfkws demo)."""
    out = []
    for v in (r.get("on_target") or {}).get("variants", []):
        p = v["parity"]
        parity = (
            "outputs bit-exact"
            if p["bit_exact"]
            else f"{p['differing_elements']}/{p['elements']} outputs differ "
            f"({p['elements_beyond_1_lsb']} by more than 1 LSB)"
        )
        fl = v["flash"]["flash_bytes"]
        out.append(
            f"on target {v['cpu']}/{v['kernels']}: arena min {v['arena']['min_bytes']:,} B "
            f"(host {r['min_arena_bytes']:,}), {v['instructions']['per_invoke']:,} "
            f"instructions/Invoke, flash TFLM {fl['tflm']:,} + model {fl['model']:,} B, "
            f"{parity} vs TFLM Python ({p['records']} records)"
        )
    for v in (r.get("stream") or {}).get("variants", []):
        ins = v["instructions"]
        shares = ", ".join(
            f"{t['target']} {t['mean_pct']:g} %" for t in v["realtime_share"]["targets"]
        )
        ref = v.get("reference")
        same = ""
        if ref is not None:
            same = "; identical to" if ref["identical"] else "; DIFFERENT from"
            same += " tfkws detect"
            if not ref["identical"] and ref.get("features_identical") is False:
                same += " (its int8 features differ: run it with --frontend tflm)"
        out.append(
            f"stream on {v['cpu']}/{v['kernels']}: {len(v['detections'])} detection(s) in "
            f"{v['duration_s']:g} s ({v['invokes']} Invokes), {ins['per_step_steady_mean']:,} "
            f"instructions per {v['step_ms']:g} ms step (worst {ins['worst_step']:,})"
            + (f", real time: {shares}" if shares else "")
            + same
        )
    return out


def run() -> None:
    """Console-script entry point."""
    sys.exit(main(sys.argv))


if __name__ == "__main__":
    run()
