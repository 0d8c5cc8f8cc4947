"""Export a trained run: fold -> int8 PTQ (or QAT ranges) -> ``.tflite`` + ``.metadata.json``.

The representative set is drawn (deterministically) from the run's own training split, without
augmentation, through the run's own feature config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from tfkws import __version__, atomic
from tfkws.errors import TfkwsError
from tfkws.quantization.ptq import REPRESENTATIVE_CLIPS

METADATA_SUFFIX = ".metadata.json"


def metadata_path(model_path: str | os.PathLike) -> Path:
    p = Path(model_path)
    return p.with_name(p.stem + METADATA_SUFFIX)


def load_metadata(model_path: str | os.PathLike) -> dict[str, Any]:
    """The metadata written beside ``model_path`` by export; a clear error when absent."""

    path = metadata_path(model_path)
    if not path.exists():
        raise TfkwsError(
            f"{model_path}: no tfkws metadata beside it ({path.name}); export it with tfkws export"
        )
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise TfkwsError(f"{path}: not valid JSON ({e})") from None
    if meta.get("format") != "tfkws-model-metadata":
        raise TfkwsError(f"{path}: not a tfkws model metadata file")
    return meta


@dataclasses.dataclass
class ExportResult:
    tflite_path: Path
    metadata_path: Path
    tflite_bytes: int
    ops: list[str]
    fold_max_abs_diff: float
    metadata: dict[str, Any]


def export_run(
    run_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    num_calibration: int = REPRESENTATIVE_CLIPS,
    seed: int = 0,
    data: str | None = None,
    compact: bool = False,
    per_channel_dense: bool = True,
    loop_repeats: bool = False,
) -> ExportResult:
    """Fold BN/branches, quantize to int8 with a representative set, write tflite + metadata.

    ``loop_repeats``: a block the model applies several times in a row (a conformer's
    ``repeat``) is exported as one WHILE loop, its ops stored once (``repeat_loop``): fewer
    bytes and a smaller arena, but every activation of the block has one int8 range for all
    its iterations, which may cost accuracy (measured in ``benchmarks/conformer.py``).

    ``per_channel_dense`` False: PTQ with per-tensor FULLY_CONNECTED weights (fewer bytes of
    quantisation parameters); a QAT run keeps the per-channel weights it was trained with.

    ``compact``: write the flatbuffer through ``compact_tflite`` (same outputs, fewer bytes of
    graph overhead, tensor names stripped but for the inputs' and outputs').

    A QAT run (``train.qat``) is converted with its own learnt ranges (no representative set),
    unless no QAT epoch beat its calibrated start (``tfkws.runs.files.kept_ptq_start``): that
    start is the float run's PTQ model, which is then exported itself, bit for bit.
    """
    from tfkws.conversion.repeat_loop import RepeatSpan
    from tfkws.conversion.repeat_loop import loop_repeats as loop_repeats_of
    from tfkws.folding.fold import fold_model
    from tfkws.models.registry import repeat_spans
    from tfkws.quantization.calibration import ptq_clips, representative_features
    from tfkws.runs.config import RunConfig
    from tfkws.runs.files import kept_ptq_start
    from tfkws.runs.model import load_trained_model

    out_path = Path(out_path)
    if out_path.suffix != ".tflite":
        raise TfkwsError(f"{out_path}: output must end in .tflite")
    extra: dict[str, Any] | None = None
    source = kept_ptq_start(run_dir, RunConfig.load(run_dir))
    if source is not None:  # the float run it started from is exported instead
        logging.info("%s kept its calibrated start: exporting the PTQ model of %s", run_dir, source)
        extra = {"qat": {"run": str(Path(run_dir).resolve()), "kept_start": True}}
        run_dir = source
    model, run = load_trained_model(run_dir, batch_size=1)
    from tfkws.layers.slimmable_base import slimmable_layers

    if slimmable_layers(model):  # a supernet is many models: one width is cut out at a time
        raise TfkwsError(
            f"{run_dir}: a slimmable supernet; export one width with "
            f"tfkws slim extract --run {run_dir} --width W --out M.tflite"
        )
    if run.train.qat:  # folded before QAT, ranges learnt: convert as it is
        from tfkws.conversion.tflite_convert import qat_to_int8_tflite
        from tfkws.quantization.qat import deployed_params

        tflite = qat_to_int8_tflite(model)
        params = deployed_params(model)
        extra = None
        if run.train.slim_width is not None:  # one width of a supernet, fine-tuned
            from tfkws.folding.slim_width import width_metadata
            from tfkws.models.catalog import build_model

            supernet = build_model(
                run.train.model, run.features.shape, len(run.labels), run.train.model_params, 1
            )
            slim = width_metadata(supernet, run.train.slim_width)
            extra = {"slim": {**slim, "supernet_run": run.train.qat_source}}
        return write_export(
            run_dir, run, out_path, tflite, params, 0.0, 0, "qat", extra, compact=compact
        )
    rep = ptq_clips(representative_features(run, num_calibration, seed, data), seed)
    logging.info("calibration: %d of %d representative training clips", len(rep), num_calibration)
    folded = fold_model(model)
    spans = repeat_spans(run.train.model, run.train.model_params) if loop_repeats else []
    if spans:
        folded = loop_repeats_of(folded, [RepeatSpan(*span) for span in spans])
        extra = {**(extra or {}), "repeat_loops": [list(span) for span in spans]}
        logging.info(
            "repeated blocks as WHILE loops: %s",
            ", ".join(f"{a} -> {b} x{n}" for a, b, n in spans),
        )
    return export_folded(
        run_dir,
        run,
        out_path,
        model,
        folded,
        rep,
        seed,
        int(model.count_params()),
        extra=extra,
        compact=compact,
        per_channel_dense=per_channel_dense,
    )


def export_folded(
    run_dir: str | os.PathLike,
    run: Any,
    out_path: Path,
    model: Any,
    folded: Any,
    rep: np.ndarray,
    seed: int,
    params: int,
    what: str = "folding changed the model's outputs",
    extra: dict[str, Any] | None = None,
    compact: bool = False,
    per_channel_dense: bool = True,
) -> ExportResult:
    """Check ``folded`` computes what ``model`` does, then int8 PTQ it and write the export.

    The check runs clip by clip on up to 64 calibration clips (batch 1, as exported); a
    difference beyond float rounding raises ``"{run_dir}: {what} (max abs diff ...)"``.
    """
    from tfkws.conversion.tflite_convert import to_int8_tflite

    fold_diff = check_fold(run_dir, model, folded, rep, what)
    tflite = to_int8_tflite(
        folded, rep, num_calibration=None, seed=seed, per_channel_dense=per_channel_dense
    )
    if not per_channel_dense:
        extra = {**(extra or {}), "per_channel_dense": False}
    return write_export(
        run_dir, run, out_path, tflite, params, fold_diff, int(len(rep)), "ptq", extra, compact
    )


def check_fold(
    run_dir: str | os.PathLike,
    model: Any,
    folded: Any,
    rep: np.ndarray,
    what: str = "folding changed the model's outputs",
) -> float:
    """The largest output difference of ``folded`` from ``model`` on up to 64 clips of ``rep``
    (batch 1); beyond float rounding raises ``"{run_dir}: {what} (max abs diff ...)"``."""
    probe = rep[: min(64, len(rep))]
    ref = np.concatenate([model(c[None], training=False).numpy() for c in probe])
    got = np.concatenate([folded(c[None], training=False).numpy() for c in probe])
    fold_diff = float(np.max(np.abs(ref - got)))
    scale = float(np.max(np.abs(ref))) or 1.0
    logging.info(
        "folded model: %d -> %d layers, max abs diff %.3g (output scale %.3g)",
        len(model.layers),
        len(folded.layers),
        fold_diff,
        scale,
    )
    if fold_diff > 1e-4 * max(scale, 1.0):
        raise TfkwsError(f"{run_dir}: {what} (max abs diff {fold_diff:.3g})")
    return fold_diff


def write_export(
    run_dir: str | os.PathLike,
    run: Any,
    out_path: Path,
    tflite: bytes,
    params: int,
    fold_diff: float,
    num_calibration: int,
    quantization: str,
    extra: dict[str, Any] | None = None,
    compact: bool = False,
    io: tuple[int, int] = (0, 0),
) -> ExportResult:
    """Write ``tflite`` and its metadata JSON (shared by PTQ, QAT, slimmable-width and streaming
    export).

    ``extra`` adds keys (e.g. ``slim``: the width a sub-network was cut at); ``compact`` writes
    ``compact_tflite(tflite)`` instead (recorded as ``"compact": true``). ``io``: the positions
    of the features input and the logits output the metadata's ``input`` / ``output`` describe
    (a streaming step model has state inputs and outputs too, in the converter's order).
    """
    from tfkws.conversion.compact_tflite import compact_tflite
    from tfkws.conversion.model_info import inspect_tflite
    from tfkws.runs.files import BEST_WEIGHTS

    if compact:
        tflite = compact_tflite(tflite)

    info = inspect_tflite(tflite, str(out_path))
    inp, out = info.inputs[io[0]], info.outputs[io[1]]
    meta = {
        "format": "tfkws-model-metadata",
        "version": 1,
        "labels": list(run.labels),
        "feature_config": run.features.to_dict(),
        "input": {
            "shape": list(inp.shape),
            "dtype": inp.dtype,
            "scale": float(inp.scale),
            "zero_point": int(inp.zero_point),
        },
        "output": {
            "shape": list(out.shape),
            "dtype": out.dtype,
            "scale": float(out.scale),
            "zero_point": int(out.zero_point),
        },
        "model_name": run.train.model,
        "model_params": run.train.model_params,
        "params": params,
        "ops": list(info.ops),
        "quantization": quantization,  # "ptq" (calibrated) or "qat" (fake-quant ranges)
        "compact": bool(compact),  # written through compact_tflite (names stripped)
        "fold_max_abs_diff": fold_diff,
        "num_calibration": num_calibration,  # clips the converter calibrated on (0: QAT)
        "source_checkpoint": str(Path(run_dir).resolve() / BEST_WEIGHTS),
        "source_run": str(Path(run_dir).resolve()),
        "tflite_sha256": hashlib.sha256(tflite).hexdigest(),
        "tfkws_version": __version__,
        **(extra or {}),
    }
    atomic.write_bytes(out_path, tflite)
    mpath = metadata_path(out_path)
    atomic.write_json(mpath, meta)
    return ExportResult(out_path, mpath, len(tflite), list(info.ops), fold_diff, meta)
