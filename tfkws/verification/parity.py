"""TFLM vs LiteRT (vs float Keras) on the same clips: does the device compute what we measured?"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from tfkws.conversion.model_info import inspect_tflite, require_int8, source_name
from tfkws.errors import ModelError
from tfkws.verification.litert import run_litert
from tfkws.verification.tflm import run_tflm


def quantize_features(features: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Float features -> int8 model input (``round(x / scale) + zp``, clipped to int8).

    Delegates to ``tfkws.features.extract.features_to_int8`` so host, eval and firmware agree.
    """
    from tfkws.features.extract import features_to_int8

    return features_to_int8(features, scale, zero_point)


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    """Agreement of the int8 model across runtimes on ``n_clips`` clips."""

    n_clips: int
    within_1lsb_share: float  # TFLM vs LiteRT, over all output elements
    exact_share: float
    max_abs_lsb_diff: int
    top1_agreement_tflm_vs_litert: float
    top1_agreement_vs_float: float | None  # TFLM top-1 vs the float Keras model's top-1
    max_abs_diff_vs_float: float | None  # dequantised TFLM output vs float logits

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def float_outputs(keras_model: Any, features: np.ndarray, batch: int = 64) -> np.ndarray:
    """Keras model outputs in inference mode; batch-1 models are run clip by clip."""
    x = np.asarray(features, np.float32)
    step = 1 if keras_model.inputs[0].shape[0] == 1 else batch
    outs = [
        np.asarray(keras_model(x[i : i + step], training=False)) for i in range(0, len(x), step)
    ]
    return np.concatenate(outs).reshape(len(x), -1)


def verify(
    model_bytes: bytes,
    float_features: np.ndarray,
    keras_model: Any = None,
    path: str | os.PathLike | None = None,
) -> VerifyReport:
    """Quantise ``float_features`` [N, frames, feats], run TFLM and LiteRT (reference kernels).

    With ``keras_model`` also compares TFLM's top-1 with the float model's.
    """
    info = inspect_tflite(model_bytes, path)
    require_int8(info, path)
    feats = np.asarray(float_features, np.float32)
    if feats.ndim != len(info.input_shape) or len(feats) == 0:
        clip = ", ".join(map(str, info.input_shape[1:]))
        raise ModelError(
            f"{source_name(path)}: verify needs features [N, {clip}] with N >= 1, "
            f"got {list(feats.shape)}"
        )
    q = quantize_features(feats, info.input_scale, info.input_zero_point)
    tflm = run_tflm(model_bytes, q, path=path).reshape(len(q), -1).astype(np.int32)
    lite = run_litert(model_bytes, q, path=path).reshape(len(q), -1).astype(np.int32)
    diff = np.abs(tflm - lite)
    top_tflm = tflm.argmax(-1)
    agree_float = max_float = None
    if keras_model is not None:
        ref = float_outputs(keras_model, feats)
        agree_float = float(np.mean(top_tflm == ref.argmax(-1)))
        deq = (tflm - info.output_zero_point) * info.output_scale
        max_float = float(np.max(np.abs(deq - ref)))
    return VerifyReport(
        n_clips=len(q),
        within_1lsb_share=float(np.mean(diff <= 1)),
        exact_share=float(np.mean(diff == 0)),
        max_abs_lsb_diff=int(diff.max()),
        top1_agreement_tflm_vs_litert=float(np.mean(top_tflm == lite.argmax(-1))),
        top1_agreement_vs_float=agree_float,
        max_abs_diff_vs_float=max_float,
    )
