"""A stream through an exported int8 step model in TFLM: one Invoke per ``frames_per_step`` frames.

The twin of ``sliding_window.run_sliding_window`` for a model exported with ``tfkws export
--streaming`` (``step_export``): every step's new frames go to the frames input, the int8 state
outputs are fed back to the state inputs (``TflmStepper``), from zero-point state at frame 0.
Steps before ``warmup_steps`` have not seen a whole window and give no scores; step ``k`` from
then on scores the window whose last frame is ``(k + 1) * frames_per_step + end_offset - 1``
(the frames a valid-time network never reads are not waited for, so that frame may lie a few
frames after the newest frame read). The device (``firmware_gen``'s ``NAME_stream_main.cc``)
runs the same steps.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from tfkws.errors import ModelError, TfkwsError
from tfkws.streaming.sliding_window import WindowScores


def run_step_model(
    model_bytes: bytes,
    frames: np.ndarray,
    streaming: dict[str, Any],
    path: str | os.PathLike | None = None,
    progress: bool = False,
) -> tuple[WindowScores, int]:
    """int8 ``frames`` ``[T, features]`` through the step model (``streaming``: the metadata's
    ``streaming`` object); the scores of the whole-window steps and the number of Invokes."""
    from tfkws.conversion.model_info import source_name
    from tfkws.progress import Progress
    from tfkws.streaming.streaming_int8 import StepLayout, TflmStepper

    where = source_name(path)
    try:
        hop = int(streaming["frames_per_step"])
        warmup = int(streaming["warmup_steps"])
        offset = int(streaming["end_offset"])
        layout = StepLayout.from_dict(streaming)
    except (KeyError, TypeError, ValueError) as e:
        raise TfkwsError(f"{where}: step model metadata lacks streaming fields ({e})") from None
    stepper = TflmStepper(model_bytes, layout)
    frames = np.asarray(frames)
    f = int(stepper.frames_shape[2])
    if frames.dtype != np.int8 or frames.ndim != 2 or frames.shape[1] != f:
        raise ModelError(
            f"{where}: stream frames {frames.dtype} {list(frames.shape)} do not fit the step "
            f"model's frames input {list(stepper.frames_shape)} (expected int8 [T, {f}])"
        )
    steps = frames.shape[0] // hop
    outs, ends = [], []
    with Progress("running steps through TFLM", steps, enabled=progress) as bar:
        for k in range(steps):
            try:
                out = stepper.step(frames[k * hop : (k + 1) * hop])
            except (RuntimeError, ValueError) as err:
                raise ModelError(f"{where}: TFLM failed to run it ({err})") from err
            if k >= warmup:
                outs.append(out)
                ends.append((k + 1) * hop + offset - 1)
            bar.update()
    labels = int(stepper.logits_elements)
    scores = np.stack(outs) if outs else np.zeros((0, labels), np.int8)
    return WindowScores(scores, np.asarray(ends, np.int64)), steps
