"""Sliding-window streaming: every ``hop`` frames, a full-window Invoke of the int8 model in TFLM.

The baseline that works for every model, stateful layers or not: the device keeps a ring of the
last ``N`` feature frames (``N`` = the model's input frames), and once the ring is full invokes
the unchanged model on it every ``hop`` new frames. Each Invoke costs a whole window, so ``hop``
trades compute against detection latency: the default 2 frames (40 ms at micro_speech's 20 ms
stride) is 25 Invokes a second, fine for a DS-CNN-S on a Cortex-M4 at tens of MHz.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from tfkws.errors import ModelError, TfkwsError
from tfkws.streaming.ring import FeatureRing

DEFAULT_HOP_FRAMES = 2


@dataclasses.dataclass(frozen=True)
class WindowScores:
    """int8 outputs ``[steps, labels]`` and, per step, the index of its window's last frame."""

    scores: np.ndarray
    end_frames: np.ndarray


def run_sliding_window(
    model_bytes: bytes,
    frames: np.ndarray,
    hop: int = DEFAULT_HOP_FRAMES,
    path: str | os.PathLike | None = None,
    progress: bool = False,
) -> WindowScores:
    """Push int8 ``frames`` ``[T, features]`` through a ring; Invoke in TFLM every ``hop`` frames.

    The first Invoke is on the first full window (last frame ``N - 1``), then on every ``hop``-th
    frame after it. The model is stateless, so the interpreter is not reset between Invokes.
    ``progress``: show the Invokes' progress (a long recording takes minutes).
    """
    from tfkws.conversion.model_info import source_name
    from tfkws.progress import Progress
    from tfkws.verification.tflm import tflm_interpreter

    where = source_name(path)
    if hop < 1:
        raise TfkwsError(f"sliding window hop must be >= 1 frame, got {hop}")
    interp, info = tflm_interpreter(model_bytes, path=path)
    shape = tuple(info.input_shape)
    if len(shape) < 3 or int(np.prod(shape[3:], dtype=np.int64)) != 1:
        raise ModelError(f"{where}: input {list(shape)} is not [1, frames, features(, 1)]")
    n, f = int(shape[1]), int(shape[2])
    frames = np.asarray(frames)
    if frames.dtype != np.int8 or frames.ndim != 2 or frames.shape[1] != f:
        raise ModelError(
            f"{where}: stream frames {frames.dtype} {list(frames.shape)} do not fit the model "
            f"input {list(shape)} (expected int8 [T, {f}])"
        )
    ring = FeatureRing(n, f)
    outs, ends = [], []
    since = 0
    total = 1 + (len(frames) - n) // hop if len(frames) >= n else 0
    with Progress("running windows through TFLM", total, enabled=progress) as bar:
        for t, frame in enumerate(frames):
            ring.push(frame)
            if not ring.full:
                continue
            since += 1
            if ring.count > n and since < hop:
                continue
            since = 0
            try:
                interp.set_input(ring.window().reshape(shape), 0)
                interp.invoke()
            except (RuntimeError, ValueError) as err:
                raise ModelError(f"{where}: TFLM failed to run it ({err})") from err
            outs.append(np.array(interp.get_output(0), dtype=np.int8).reshape(-1))
            ends.append(t)
            bar.update()
    labels = int(np.prod(info.output_shape[1:]))
    scores = np.stack(outs) if outs else np.zeros((0, labels), np.int8)
    return WindowScores(scores, np.asarray(ends, np.int64))


def run_sliding_window_litert(
    model_bytes: bytes,
    frames: np.ndarray,
    hop: int = DEFAULT_HOP_FRAMES,
    path: str | os.PathLike | None = None,
    progress: bool = False,
    batch: int = 256,
) -> WindowScores:
    """``run_sliding_window``'s windows (same steps) run in LiteRT, ``batch`` windows per Invoke.

    Tens of times faster than TFLM's Python interpreter, for hours of audio; LiteRT's int8
    kernels may round differently from TFLM's (CMSIS-NN/reference) by an LSB now and then.
    """
    from ai_edge_litert.interpreter import Interpreter

    from tfkws.conversion.model_info import source_name
    from tfkws.progress import Progress

    where = source_name(path)
    if hop < 1:
        raise TfkwsError(f"sliding window hop must be >= 1 frame, got {hop}")
    interp = Interpreter(model_content=model_bytes)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    shape = tuple(int(d) for d in inp["shape"])
    n, f = shape[1], shape[2]
    frames = np.asarray(frames)
    if frames.dtype != np.int8 or frames.ndim != 2 or frames.shape[1] != f:
        raise ModelError(
            f"{where}: stream frames {frames.dtype} {list(frames.shape)} do not fit the model "
            f"input {list(shape)} (expected int8 [T, {f}])"
        )
    labels = int(np.prod(out["shape"][1:]))
    ends = np.arange(n - 1, len(frames), hop, dtype=np.int64)
    if not ends.size:
        return WindowScores(np.zeros((0, labels), np.int8), ends)
    view = np.lib.stride_tricks.sliding_window_view(frames, (n, f))[:, 0]  # [T - n + 1, n, f]
    scores = np.zeros((ends.size, labels), np.int8)
    size = 0
    if batch > 1:  # a model reshaping to a fixed batch of 1 cannot take batches
        try:
            interp.resize_tensor_input(inp["index"], [batch, *shape[1:]])
            interp.allocate_tensors()
            size = batch
        except (RuntimeError, ValueError):
            interp = Interpreter(model_content=model_bytes)
            interp.allocate_tensors()
            batch, size = 1, 1
    chunks = -(-ends.size // batch)
    with Progress("running windows through LiteRT", chunks, enabled=progress) as bar:
        for i in range(0, ends.size, batch):
            part = ends[i : i + batch]
            if part.size != size:
                interp.resize_tensor_input(inp["index"], [part.size, *shape[1:]])
                interp.allocate_tensors()
                size = part.size
            x = view[part - (n - 1)].reshape(part.size, *shape[1:])
            interp.set_tensor(inp["index"], np.ascontiguousarray(x))
            interp.invoke()
            scores[i : i + part.size] = interp.get_tensor(out["index"]).reshape(part.size, -1)
            bar.update()
    return WindowScores(scores, ends)
