"""``tfkws export --streaming``: a run's int8 step model (external state) and its window twin.

Both come from ``streaming_int8`` (ranges pinned per layer over the PTQ calibration clips), so
every tensor of the step model has its window twin's int8 params and the step model's outputs
after the warm-up are the window model's on the matching windows. Written beside each other::

    OUT.tflite (+ OUT.metadata.json)            the window model (sliding window, tfkws eval)
    OUT_step.tflite (+ OUT_step.metadata.json)  the step model (tfkws detect, firmware-gen)

The step model's metadata is the export metadata with ``input`` / ``output`` describing the
frames input and the logits output, and a ``streaming`` object with what a runtime that cannot
import TensorFlow (firmware_gen) needs to run it: ``frames_per_step`` new feature frames go to
input ``frames_input`` each step; each state output ``states[i].output`` is copied to input
``states[i].input`` for the next step (zero-point filled at the start); outputs of steps from
``warmup_steps`` on are whole-window outputs, step ``k``'s being the window model's on the
window ending (exclusive) at frame ``(k + 1) * frames_per_step + end_offset``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from absl import logging

from tfkws.conversion.export import ExportResult, check_fold, write_export
from tfkws.errors import TfkwsError
from tfkws.quantization.ptq import REPRESENTATIVE_CLIPS

if TYPE_CHECKING:
    from tfkws.streaming.external_state import StreamingModel
    from tfkws.streaming.streaming_int8 import StepLayout

STEP_SUFFIX = "_step"
FORM_STEP = "external_state"


def step_model_path(out_path: str | os.PathLike) -> Path:
    """``OUT.tflite`` -> ``OUT_step.tflite``."""
    p = Path(out_path)
    return p.with_name(p.stem + STEP_SUFFIX + p.suffix)


def is_step_model(meta: dict[str, Any]) -> bool:
    """Whether export metadata describes a streaming step model."""
    return (meta.get("streaming") or {}).get("form") == FORM_STEP


@dataclasses.dataclass
class StreamingExport:
    window: ExportResult
    step: ExportResult


def export_streaming_run(
    run_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    num_calibration: int = REPRESENTATIVE_CLIPS,
    seed: int = 0,
    data: str | None = None,
) -> StreamingExport:
    """Fold, pin int8 ranges, convert the window and step models and write both (module doc).

    A run whose model cannot stream (e.g. convolutions ``same`` along time) raises one line
    naming the run and the layer; so do QAT runs and slimmable supernets (not supported here).
    """
    from tfkws.folding.fold import fold_model
    from tfkws.layers.slimmable_base import slimmable_layers
    from tfkws.quantization.calibration import ptq_clips, representative_features
    from tfkws.runs.config import RunConfig
    from tfkws.runs.model import load_trained_model
    from tfkws.streaming.external_state import to_streaming
    from tfkws.streaming.streaming_int8 import step_layout, streaming_int8

    out_path = Path(out_path)
    if out_path.suffix != ".tflite":
        raise TfkwsError(f"{out_path}: output must end in .tflite")
    run = RunConfig.load(run_dir)
    if run.train.qat:
        raise TfkwsError(
            f"{run_dir}: --streaming exports float runs (PTQ); this is a QAT run: export its "
            "float source run with --streaming"
        )
    model, run = load_trained_model(run_dir, batch_size=1)
    if slimmable_layers(model):
        raise TfkwsError(
            f"{run_dir}: a slimmable supernet cannot stream as it is; cut one width out first "
            "(tfkws slim extract)"
        )
    folded = fold_model(model)
    try:  # cheap (no conversion): say why before calibrating
        to_streaming(folded)
    except TfkwsError as e:
        raise TfkwsError(f"{run_dir}: model {run.train.model} cannot stream: {e}") from None
    rep = ptq_clips(representative_features(run, num_calibration, seed, data), seed)
    logging.info("calibration: %d of %d representative training clips", len(rep), num_calibration)
    fold_diff = check_fold(run_dir, model, folded, rep)
    res = streaming_int8(folded, rep)
    sm = res.streaming
    layout = step_layout(res.step_tflite, sm)
    params = int(model.count_params())
    step_path = step_model_path(out_path)
    window = write_export(
        run_dir,
        run,
        out_path,
        res.window_tflite,
        params,
        fold_diff,
        len(rep),
        "ptq",
        {"streaming": {"form": "window", "ranges": "pinned", "step_model": step_path.name}},
    )
    streaming = streaming_metadata(sm, layout, res.step_tflite, out_path.name)
    step = write_export(
        run_dir,
        run,
        step_path,
        res.step_tflite,
        params,
        fold_diff,
        len(rep),
        "ptq",
        {"streaming": streaming},
        io=(layout.frames_input, layout.logits_output),
    )
    return StreamingExport(window, step)


def streaming_metadata(
    sm: StreamingModel, layout: StepLayout, step_tflite: bytes, window_name: str
) -> dict[str, Any]:
    """The step model's ``streaming`` metadata object (module doc) for ``step_tflite``,
    converted from ``sm.model``; ``window_name``: its window twin's file name."""
    from tfkws.conversion.model_info import inspect_tflite

    inputs = inspect_tflite(step_tflite).inputs
    return {
        "form": FORM_STEP,
        "ranges": "pinned",
        "window_model": window_name,
        "frames_per_step": sm.hop,
        "window_frames": sm.window,
        "used_frames": sm.used,
        "lag_frames": sm.lag,
        "warmup_steps": sm.warmup_steps,
        "end_offset": sm.window_end(0) - sm.hop,
        **layout.to_dict(),
        "state_names": list(sm.model.input_names[1:]),
        "state_bytes": sum(math.prod(inputs[i].shape) for i, _ in layout.states),
    }
