"""``tfkws detect``: a recording of any length through the pipeline the device runs.

micro frontend frame by frame over the whole stream (``tfkws.features.stream``) -> int8 frames ->
feature ring -> the int8 model in TFLM every ``hop`` frames (``sliding_window``) -> the integer
detector (``detector``, the twin of the generated ``NAME_detector.h``). Labels, features and
quantization come from the model's export metadata. A streaming step model (``tfkws export
--streaming``, metadata ``streaming.form`` ``external_state``) runs instead once per step on the
step's new frames with its int8 state fed back (``step_stream``): the hop is its step; the
detector starts at its first whole-window step.

A detection's ``time_s`` is the end of the window it fired on (the end of its last frame), in
seconds from the start of the file: the moment the device would report the keyword, just after
the keyword's end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from tfkws.errors import TfkwsError
from tfkws.streaming.detector import DetectorConfig, detect, make_config
from tfkws.streaming.sliding_window import DEFAULT_HOP_FRAMES, run_sliding_window
from tfkws.streaming.step_export import is_step_model
from tfkws.streaming.step_stream import run_step_model

DEFAULT_THRESHOLD = 0.8


@dataclasses.dataclass(frozen=True)
class StreamSettings:
    """Streaming and detector settings in milliseconds (turned into steps per model).

    ``hop_ms``: time between Invokes (a whole number of feature strides, at least one);
    ``smoothing_ms``: the detector's averaging window; ``refractory_ms``: quiet time after a
    detection; ``threshold``: smoothed probability a keyword must reach (or one per label);
    ``gate``: labels that block detection while they lead (None: those starting with ``_``);
    ``frontend``: ``tf`` (TensorFlow's ``audio_microfrontend`` op, as training) or ``tflm``
    (TFLM's micro frontend C library built for this host: the device's code, whose output
    differs from the op's in a few values per thousand, so device detections match exactly).
    """

    hop_ms: int | None = None  # None: DEFAULT_HOP_FRAMES feature strides
    smoothing_ms: int = 120
    refractory_ms: int = 1000
    threshold: float | Mapping[str, float] = DEFAULT_THRESHOLD
    gate: tuple[str, ...] | str | None = None  # or detector.GATE_OTHERS
    frontend: str = "tf"
    tflm_root: str | None = None  # for frontend="tflm" (default: $TFLM_ROOT, ../shared/tflm)


def hop_frames(settings: StreamSettings, stride_ms: int) -> int:
    if settings.hop_ms is None:
        return DEFAULT_HOP_FRAMES
    if settings.hop_ms < stride_ms or settings.hop_ms % stride_ms:
        raise TfkwsError(
            f"hop {settings.hop_ms} ms must be a whole number of feature strides ({stride_ms} ms)"
        )
    return settings.hop_ms // stride_ms


def tflm_frontend_features(audio: np.ndarray, fc: Any, root: str | None = None) -> np.ndarray:
    """Stream features by TFLM's micro frontend C library (host build), scaled as tfkws does."""
    from firmware_gen.errors import FirmwareGenError
    from firmware_gen.frontend import run_frontend_host
    from firmware_gen.toolchain import tflm_root
    from tfkws.features.microfrontend import float_to_int16
    from tfkws.features.stream import num_stream_frames

    if fc.kind != "microfrontend":
        raise TfkwsError(f"the tflm frontend computes microfrontend features, not {fc.kind!r}")
    frames = num_stream_frames(audio.shape[0], fc)
    if frames == 0:
        return np.zeros((0, fc.num_features), np.float32)
    try:
        raw = run_frontend_host(float_to_int16(audio)[None], fc.to_dict(), tflm_root(root))[0]
    except FirmwareGenError as e:
        raise TfkwsError(str(e)) from None
    return raw[:frames].astype(np.float32) * np.float32(fc.output_scale)


def detector_config(meta: dict[str, Any], settings: StreamSettings) -> DetectorConfig:
    """The detector for an exported model: steps from ms, probabilities from the metadata."""
    stride_ms = int(meta["feature_config"]["window_stride_ms"])
    step_ms = hop_frames(settings, stride_ms) * stride_ms
    if settings.smoothing_ms < 0 or settings.refractory_ms < 0:
        raise TfkwsError("smoothing and refractory times must be >= 0 ms")
    out = meta["output"]
    # tfkws models end in logits; one ending in a softmax has TFLite's fixed 1/256, -128 output
    ends_in_softmax = (
        "SOFTMAX" in meta.get("ops", [])
        and abs(out["scale"] - 1 / 256) < 1e-9
        and out["zero_point"] == -128
    )
    return make_config(
        meta["labels"],
        out["scale"],
        out["zero_point"],
        softmax=not ends_in_softmax,
        threshold=settings.threshold,
        window=max(1, -(-settings.smoothing_ms // step_ms)),
        refractory=-(-settings.refractory_ms // step_ms),
        gate=settings.gate,
    )


def detect_audio(
    model_path: str | os.PathLike,
    audio_path: str | os.PathLike,
    settings: StreamSettings = StreamSettings(),
) -> dict[str, Any]:
    """Detections in ``audio_path`` by the int8 model at ``model_path``; a JSON-ready report."""
    from tfkws.conversion.export import load_metadata
    from tfkws.data.audio import load_audio
    from tfkws.features.stream import frame_end_seconds, stream_features
    from tfkws.verification.evaluate import features_for, quantize_input, read_model

    model, info = read_model(model_path)
    meta = load_metadata(model_path)
    fc = features_for(meta)
    step_form = is_step_model(meta)
    if step_form:  # the step model runs once per its own step: that is the hop
        step_ms = int(meta["streaming"]["frames_per_step"]) * fc.window_stride_ms
        if settings.hop_ms not in (None, step_ms):
            raise TfkwsError(
                f"{model_path}: a streaming step model runs every {step_ms} ms (its step); "
                f"--hop_ms {settings.hop_ms} does not apply"
            )
        settings = dataclasses.replace(settings, hop_ms=step_ms)
    config = detector_config(meta, settings)
    hop = hop_frames(settings, fc.window_stride_ms)
    audio = load_audio(audio_path, fc.sample_rate)
    if settings.frontend not in ("tf", "tflm"):
        raise TfkwsError(f"frontend must be tf or tflm, not {settings.frontend!r}")
    if settings.frontend == "tflm":
        features = tflm_frontend_features(audio, fc, settings.tflm_root)
    else:
        features = stream_features(audio, fc)
    frames = quantize_input(features, meta)
    if frames.shape[0] < fc.num_frames:
        raise TfkwsError(
            f"{audio_path}: {audio.shape[0] / fc.sample_rate:.3f} s is shorter than the model's "
            f"window ({fc.clip_duration_ms} ms)"
        )
    if step_form:
        windows, invokes = run_step_model(
            model, frames, meta["streaming"], model_path, progress=True
        )
    else:
        windows = run_sliding_window(model, frames, hop, model_path, progress=True)
        invokes = int(windows.scores.shape[0])
    found = detect(config, windows.scores)
    detections = [
        {
            "label": d.label,
            "time_s": round(frame_end_seconds(int(windows.end_frames[d.step]), fc), 4),
            "score": round(d.score, 4),
        }
        for d in found
    ]
    return {
        "detections": detections,
        "model": str(model_path),
        "audio": str(audio_path),
        "duration_s": round(audio.shape[0] / fc.sample_rate, 4),
        "frames": int(frames.shape[0]),
        "invokes": invokes,
        "form": "step" if step_form else "sliding window",
        "hop_frames": hop,
        "hop_ms": hop * fc.window_stride_ms,
        "smoothing_ms": settings.smoothing_ms,
        "refractory_ms": settings.refractory_ms,
        # the step's length goes with the spec: window/refractory are counted in steps
        "detector": {**config.to_spec(), "hop_frames": hop},
        "runtime": "tflm-int8",
        "frontend": settings.frontend,
        # the int8 frames the model saw (firmware-gen --stream-audio reports the device's)
        "features_sha256": hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest(),
        "input_shape": list(meta["input"]["shape"]) if step_form else list(info.input_shape),
    }
