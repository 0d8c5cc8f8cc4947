"""``generate()``: the whole pipeline behind the CLI, as a Python API.

validate the flatbuffer -> check every op exists in TFLM -> measure the arena in a TFLM child
process -> layer table, runtime estimate, target fit -> write sources and report into a temp folder
(compiling them there with ``compile=True``; with ``on_target=["m4", ...]`` building them with TFLM
C++ for those CPUs and measuring them in QEMU, see ``firmware_gen.on_target``) -> rename it into
place. Any error leaves no output.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from firmware_gen import __version__, atomic
from firmware_gen.arena import DEFAULT_MARGIN_PCT, measure_arena, round_up
from firmware_gen.codegen import c_identifier, model_data_cc, model_data_h, op_resolver_h
from firmware_gen.errors import FirmwareGenError
from firmware_gen.layers import layer_table, total_macs
from firmware_gen.loops import subgraph_runs
from firmware_gen.model import parse_model, read_model_file
from firmware_gen.ops import op_table, resolver_ops
from firmware_gen.report import (
    REPORT_FORMAT,
    REPORT_VERSION,
    fit_summary,
    fit_targets,
    to_markdown,
)
from firmware_gen.runtime_size import runtime_estimate
from firmware_gen.step_model import logits_output, step_model
from firmware_gen.targets import resolve_targets

METADATA_FORMAT = "tfkws-model-metadata"


@dataclasses.dataclass(frozen=True)
class Result:
    """What ``generate`` produced: report dict, output folder, file names, fit verdict."""

    report: dict
    out_dir: Path
    files: list[str]
    fits: bool
    reason: str


def metadata_path_for(model_path: Path) -> Path:
    """``X.tflite`` -> ``X.metadata.json`` (the tfkws export contract)."""
    return model_path.with_name(model_path.stem + ".metadata.json")


def load_metadata(path: Path, model_sha256: str, output_shapes: list[tuple[int, ...]]) -> dict:
    """Read tfkws metadata; refuse one that describes another model or another label count.

    ``output_shapes``: the model's outputs' shapes; the labels count the logits output's
    elements (the first output, or the one a streaming step model's metadata names)."""
    try:
        meta = json.loads(path.read_text())
    except OSError as e:
        raise FirmwareGenError(f"{path}: cannot read metadata ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FirmwareGenError(f"{path}: metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != METADATA_FORMAT:
        raise FirmwareGenError(f"{path}: not tfkws model metadata (format != {METADATA_FORMAT!r})")
    sha = meta.get("tflite_sha256")
    if sha and sha != model_sha256:
        raise FirmwareGenError(f"{path}: metadata describes another model (tflite_sha256 differs)")
    labels = meta.get("labels")
    if labels is not None:
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise FirmwareGenError(f"{path}: metadata labels must be a list of strings")
        pos = logits_output(meta)
        if not 0 <= pos < len(output_shapes):
            raise FirmwareGenError(f"{path}: logits_output {pos} is not an output of the model")
        output_elements = _elements(output_shapes[pos])
        if labels and len(labels) != output_elements:
            raise FirmwareGenError(
                f"{path}: {len(labels)} labels but the model has {output_elements} outputs"
            )
    fc = meta.get("feature_config")
    if fc is not None and not isinstance(fc, dict):
        raise FirmwareGenError(f"{path}: metadata feature_config must be an object")
    return meta


def _elements(shape: tuple[int, ...]) -> int:
    return math.prod(shape[1:] if len(shape) > 1 else shape)


def _io(tensors) -> list[dict]:
    return [
        {
            "name": t.name,
            "shape": list(t.shape),
            "dtype": t.dtype.lower(),
            "scale": t.scale[0] if t.scale else 0.0,
            "zero_point": t.zero_point[0] if t.zero_point else 0,
        }
        for t in tensors
    ]


def generate(
    model: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    name: str | None = None,
    targets: list[str] | tuple[str, ...] = (),
    targets_file: str | os.PathLike | None = None,
    ram: int | None = None,
    flash: int | None = None,
    ram_reserve: int = 0,
    flash_reserve: int = 0,
    arena_margin: float = DEFAULT_MARGIN_PCT,
    json_path: str | os.PathLike | None = None,
    compile: bool = False,
    tflm_root: str | os.PathLike | None = None,
    metadata: str | os.PathLike | None = None,
    on_target: list[str] | tuple[str, ...] = (),
    kernels: list[str] | tuple[str, ...] = ("reference", "cmsis-nn"),
    inputs: np.ndarray | str | os.PathLike | None = None,
    tflm_library: str = "full",
    progress: Callable[[str], None] | None = None,
    detector: dict | str | os.PathLike | None = None,
    stream_audio: str | os.PathLike | None = None,
    stream_reference: dict | str | os.PathLike | None = None,
) -> Result:
    """Generate ``NAME_model_data.{h,cc}``, ``NAME_op_resolver.h`` and ``NAME_report.{json,md}``.

    ``metadata`` defaults to ``X.metadata.json`` beside ``X.tflite`` when that file exists.
    Raises :class:`FirmwareGenError` (one line) for any bad input; never leaves partial output.
    Whether the model fits is in ``Result.fits`` / ``Result.reason`` (``--check`` exits 1 on it).

    ``on_target``: CPUs (``m4``, ``m55``) to measure on in QEMU with each of ``kernels``; their
    arena and flash then decide the fit of targets with that core. ``inputs``: int8 records
    ``[N, ...]`` (array or ``.npy``) for the output-parity check (default: seeded random).
    ``tflm_library``: ``full`` (the cached per-CPU library) or ``model`` (only the sources this
    model's ops need: a faster first build). ``detector``: a detector spec (dict or JSON file,
    ``firmware_gen.detector``) to also write ``NAME_detector.h`` and, when the metadata has micro
    frontend features, the example firmware ``NAME_stream_main.cc`` (``firmware_gen.stream``).
    ``stream_audio``: a 16-bit mono WAV to run that whole pipeline on in QEMU for every
    ``on_target`` CPU and kernel set (report ``stream``); ``stream_reference``: a ``tfkws detect
    --json`` report (dict or file) the device detections are compared with.
    """
    # Absolute paths: compilers and QEMU run with temp folders as their working directory.
    model_path = Path(model).absolute()
    source = str(Path(model))  # as given, for messages
    if ram_reserve < 0 or flash_reserve < 0:
        raise FirmwareGenError("reserves must be >= 0 bytes")
    for label, v in (("--ram", ram), ("--flash", flash)):
        if v is not None and v <= 0:
            raise FirmwareGenError(f"{label} must be a positive number of bytes")
    data = read_model_file(model_path)
    info = parse_model(data, source)
    ops = resolver_ops(info, source)
    meta_path = Path(metadata).absolute() if metadata is not None else metadata_path_for(model_path)
    meta = None
    if metadata is not None or meta_path.exists():
        meta = load_metadata(meta_path, info.sha256, [t.shape for t in info.output_tensors])
    step = step_model(info, meta, source)  # a streaming step model: its logits output
    out_elements = _elements(info.output_tensors[step.logits_output if step else 0].shape)
    target_list = resolve_targets(list(targets), targets_file, ram, flash)
    if detector is not None:
        from firmware_gen.detector import check_spec, read_spec

        detector = check_spec(detector) if isinstance(detector, dict) else read_spec(detector)
        if len(detector["labels"]) != out_elements:
            raise FirmwareGenError(
                f"detector spec has {len(detector['labels'])} labels but the model has "
                f"{out_elements} outputs"
            )
    stream_plan, stream_skip, audio = None, None, None
    if detector is not None:
        from firmware_gen.stream import plan

        try:
            stream_plan = plan(info, meta, detector, source, step)
        except FirmwareGenError as e:
            stream_skip = str(e)
    if stream_audio is not None:
        if detector is None or not on_target:
            raise FirmwareGenError("--stream-audio needs --detector and --on-target")
        if stream_plan is None:
            raise FirmwareGenError(stream_skip)
        from firmware_gen.stream import read_wav

        audio = read_wav(stream_audio, stream_plan.sample_rate)
    elif stream_reference is not None:
        raise FirmwareGenError("--stream-reference needs --stream-audio")
    cpus = list(on_target)
    if cpus:
        from firmware_gen.cpus import CPUS, KERNEL_SETS, parse_list
        from firmware_gen.toolchain import find_toolchain
        from firmware_gen.toolchain import tflm_root as find_tflm_root

        cpus = parse_list(",".join(cpus), list(CPUS), "--on-target")
        kernel_sets = parse_list(",".join(kernels), KERNEL_SETS, "--kernels")
        if tflm_library not in ("full", "model"):
            raise FirmwareGenError(f"tflm_library must be 'full' or 'model', not {tflm_library!r}")
        find_toolchain()  # fail before any work when a tool is missing
        root = find_tflm_root(tflm_root)
        input_array = _load_inputs(inputs)
    ident = c_identifier(name if name is not None else model_path.stem)
    out_dir = Path(out_dir).absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise FirmwareGenError(f"{out_dir}: output path exists and is not a folder")

    arena = measure_arena(info.data, arena_margin, source).to_dict()
    layers = layer_table(info)
    runtime = runtime_estimate([o["op"] for o in ops])
    report = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "tool_version": __version__,
        "model": {
            "file": model_path.name,
            "sha256": info.sha256,
            "c_name": ident,
            "metadata": meta_path.name if meta else None,
            "labels": (meta or {}).get("labels"),
        },
        "model_bytes": len(info.data),
        "min_arena_bytes": arena["host_min_bytes"],
        "arena_32bit_estimate_bytes": arena["estimate_32bit_bytes"],
        "recommended_arena_bytes": arena["recommended_bytes"],
        "recommended_arena_basis": "host",
        "arena": arena,
        "inputs": _io(info.input_tensors),
        "outputs": _io(info.output_tensors),
        "ops": ops,
        "op_table_source": op_table()["source"],
        "layers": layers,
        "total_macs": total_macs(layers),
        # False: a WHILE loop that is not a counted loop ran its body once in the MAC count
        "total_macs_complete": subgraph_runs(info)[1],
        "runtime_code_estimate": runtime,
        "flash_estimate_bytes": len(info.data) + runtime["bytes"],
        "reserve": {"ram_bytes": ram_reserve, "flash_bytes": flash_reserve},
    }
    report["targets"] = fit_targets(report, target_list)
    files = {
        f"{ident}_model_data.h": model_data_h(
            info, ident, model_path.name, __version__, arena, meta
        ),
        f"{ident}_model_data.cc": model_data_cc(info, ident, model_path.name, __version__, meta),
        f"{ident}_op_resolver.h": op_resolver_h(info, ident, model_path.name, __version__, ops),
    }
    if detector is not None:
        from firmware_gen.detector import detector_h

        files[f"{ident}_detector.h"] = detector_h(detector, ident, __version__)
        report["detector"] = detector
        if stream_plan is not None:
            from firmware_gen.stream import stream_main_cc

            files[f"{ident}_stream_main.cc"] = stream_main_cc(stream_plan, ident, __version__)
        else:
            report["stream_main_skipped"] = stream_skip
    report["files"] = sorted([*files, f"{ident}_report.json", f"{ident}_report.md"])
    try:
        with atomic.output_dir(out_dir) as tmp:
            for fname, text in files.items():
                (tmp / fname).write_text(text, encoding="utf-8")
            if compile:
                from firmware_gen.compile_check import compile_sources

                report["compile"] = compile_sources(
                    tmp, ident, tflm_root or os.environ.get("TFLM_ROOT")
                )
            if cpus:
                from firmware_gen.on_target import measure

                report["on_target"] = measure(
                    tmp,
                    ident,
                    info,
                    cpus,
                    kernel_sets,
                    methods=[o["method"] for o in ops],
                    tflm_root=root,
                    host_arena=arena["host_min_bytes"],
                    inputs=input_array,
                    library=tflm_library,
                    source=source,
                    progress=progress,
                )
                _apply_on_target(report, target_list)
                header = f"{ident}_model_data.h"
                (tmp / header).write_text(
                    model_data_h(
                        info, ident, model_path.name, __version__, arena, meta, report["on_target"]
                    ),
                    encoding="utf-8",
                )
            if audio is not None:
                report["stream"] = _stream(
                    tmp,
                    ident,
                    stream_plan,
                    audio,
                    cpus,
                    kernel_sets,
                    root,
                    ops,
                    tflm_library,
                    report,
                    stream_reference,
                    progress,
                )
                report["stream"]["audio"] = Path(stream_audio).name
            fits, reason = fit_summary(report)
            report["fits"] = fits
            (tmp / f"{ident}_report.json").write_text(
                json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8"
            )
            (tmp / f"{ident}_report.md").write_text(to_markdown(report), encoding="utf-8")
        if json_path is not None:
            atomic.write_json(json_path, report)
    except OSError as e:
        where = e.filename or out_dir
        raise FirmwareGenError(f"{where}: cannot write output ({e.strerror or e})") from None
    return Result(report, out_dir, report["files"], fits, reason)


def _stream(
    tmp: Path,
    ident: str,
    stream_plan,
    audio: np.ndarray,
    cpus: list[str],
    kernel_sets: list[str],
    root: Path,
    ops: list[dict],
    tflm_library: str,
    report: dict,
    reference: dict | str | os.PathLike | None,
    progress: Callable[[str], None] | None,
) -> dict:
    """The streaming pipeline in QEMU for every (CPU, kernel set); see ``firmware_gen.stream``."""
    from firmware_gen.cpus import cpu
    from firmware_gen.stream import compare_reference, run_stream
    from firmware_gen.targets import builtin_targets

    checked = report["targets"] or list(builtin_targets().values())
    variants = []
    for c in cpus:
        for k in kernel_sets:
            v = run_stream(
                tmp,
                ident,
                stream_plan,
                audio,
                cpu(c),
                k,
                root,
                methods=[o["method"] for o in ops],
                library=tflm_library,
                targets=checked,
                progress=progress,
            )
            if reference is not None:
                v["reference"] = compare_reference(v, reference)
            variants.append(v)
    return {
        "form": "step" if stream_plan.step else "sliding window",
        "hop_frames": stream_plan.hop,
        # a step model's input frames are one step's
        "frames_per_window": stream_plan.frames,
        "variants": variants,
    }


def _load_inputs(inputs: np.ndarray | str | os.PathLike | None) -> np.ndarray | None:
    if inputs is None or isinstance(inputs, np.ndarray):
        return inputs
    try:
        return np.load(inputs, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise FirmwareGenError(f"{inputs}: cannot read inputs as a .npy array ({e})") from None


def _apply_on_target(report: dict, target_list: list[dict]) -> None:
    """Recommended arena and target fits from the on-target minima (see ``report``)."""
    variants = report["on_target"]["variants"]
    worst = max(variants, key=lambda v: v["arena"]["min_bytes"])
    margin = report["arena"]["margin_pct"]
    report["recommended_arena_bytes"] = round_up(worst["arena"]["min_bytes"] * (1 + margin / 100))
    report["recommended_arena_basis"] = (
        f"on-target: largest minimum measured ({worst['cpu']}/{worst['kernels']}) + {margin:g} %"
    )
    report["targets"] = fit_targets(report, target_list)
