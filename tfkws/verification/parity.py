"""TFLM vs LiteRT (vs float Keras) on the same clips: does the device compute what we measured?"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from tfkws.conversion.model_info import inspect_tflite, require_int8, source_name
from tfkws.errors import ModelError
from tfkws.verification.litert import run_litert
from tfkws.verification.op_parity import isolated_op_agreement
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
    # Clips beyond 1 LSB end to end, checked op by op (worst first, ``op_clips`` at most): how
    # many of the model's ops were run alone in both runtimes on the inputs they had in TFLM
    # (``isolated_op_agreement``; not control flow), their largest difference, and which op.
    op_check_clips: int = 0
    ops_judged: int = 0
    ops_total: int = 0
    op_max_abs_lsb_diff: int | None = None
    op_worst: str | None = None

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


def verdict(
    report: VerifyReport | Mapping[str, Any], min_within_1lsb: float = 0.999, min_top1: float = 0.99
) -> tuple[bool, str]:
    """Pass/fail of a verify report and one line saying why.

    Passes when ``min_within_1lsb`` of the outputs are within 1 LSB, or else when every op
    run alone is within 1 LSB and top-1 agrees on ``min_top1`` of the clips: one rounding LSB
    (TFLM's FULLY_CONNECTED on exact ties) carried through an int8 LayerNorm grows downstream
    without any kernel being wrong (``tfkws.verification.op_parity``).
    """
    r = report.as_dict() if isinstance(report, VerifyReport) else report
    share = f"{100 * r['within_1lsb_share']:.3f} % of TFLM outputs within 1 LSB of LiteRT"
    if r["within_1lsb_share"] >= min_within_1lsb:
        return True, share
    top1 = f"top-1 agreement {100 * r['top1_agreement_tflm_vs_litert']:.1f} %"
    below = f"{share} (< {100 * min_within_1lsb:.1f} %, max {r['max_abs_lsb_diff']} LSB)"
    if r["op_max_abs_lsb_diff"] is None:
        return False, f"{below}; no op could be run alone"
    ops = (
        f"{r['ops_judged']} of {r['ops_total']} ops run alone on their TFLM inputs of the "
        f"{r['op_check_clips']} worst clip(s): max {r['op_max_abs_lsb_diff']} LSB"
    )
    if r["op_max_abs_lsb_diff"] > 1:
        return False, f"{below}; {ops} at {r['op_worst']}"
    if r["top1_agreement_tflm_vs_litert"] < min_top1:
        return False, f"{below}; {ops}, but {top1} (< {100 * min_top1:.1f} %)"
    return True, f"{below}, but {ops} (rounding amplified downstream), {top1}"


def verify(
    model_bytes: bytes,
    float_features: np.ndarray,
    keras_model: Any = None,
    path: str | os.PathLike | None = None,
    op_clips: int = 3,
) -> VerifyReport:
    """Quantise ``float_features`` [N, frames, feats], run TFLM and LiteRT (reference kernels).

    With ``keras_model`` also compares TFLM's top-1 with the float model's. Up to ``op_clips``
    clips that differ by more than 1 LSB are run again op by op (``verdict``).
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
    per_clip = diff.max(-1)
    worst = [int(i) for i in np.argsort(-per_clip, kind="stable")[:op_clips] if per_clip[i] > 1]
    per_op = isolated_op_agreement(model_bytes, q[worst], path) if worst else []
    ops_total = len(per_op[0]) if per_op else 0
    judged = [
        (o, i)
        for i, ops in zip(worst, per_op, strict=True)
        for o in ops
        if o.max_abs_lsb_diff is not None
    ]
    op_worst = max(judged, key=lambda oi: oi[0].max_abs_lsb_diff, default=None)
    return VerifyReport(
        n_clips=len(q),
        within_1lsb_share=float(np.mean(diff <= 1)),
        exact_share=float(np.mean(diff == 0)),
        max_abs_lsb_diff=int(diff.max()),
        top1_agreement_tflm_vs_litert=float(np.mean(top_tflm == lite.argmax(-1))),
        top1_agreement_vs_float=agree_float,
        max_abs_diff_vs_float=max_float,
        op_check_clips=len(worst),
        ops_judged=len({(o.subgraph, o.index) for o, _ in judged}),
        ops_total=ops_total,
        op_max_abs_lsb_diff=op_worst[0].max_abs_lsb_diff if op_worst else None,
        op_worst=(
            f"op {op_worst[0].index} {op_worst[0].op} ({op_worst[0].output}), clip {op_worst[1]}"
            if op_worst
            else None
        ),
    )
