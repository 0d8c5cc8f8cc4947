"""Feature parity on the device: the micro frontend in QEMU against the features tfkws trains on.

Training computes features with TensorFlow's ``audio_microfrontend`` op (x86-64, TF's own build of
the frontend C library); the device runs TFLM's copy of that library compiled for its Cortex-M.
Here both see the same real clips (read and padded exactly as training reads them, then turned
into int16 PCM as the device's microphone driver would deliver it) and their raw uint16 outputs
are compared value by value. The training features are the raw values times
``config.output_scale`` (an exact float32 product), so raw equality means identical features.

Where they differ, the same TFLM sources are also built natively for the host: when the device
equals that build, the target (compiler, newlib's libm, 32-bit) changes nothing and the
differences come from the source versions (TensorFlow bundles its own copy of the frontend and
of kissfft).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from tfkws.errors import TfkwsError


def frontend_parity(
    clip_paths: list[str | os.PathLike],
    tflm_root: str | os.PathLike | None = None,
    config: Any = None,
    cpu: str = "m4",
) -> dict[str, Any]:
    """Run both frontends on ``clip_paths``; report identical / differing values per clip."""
    from firmware_gen.errors import FirmwareGenError
    from firmware_gen.frontend import run_frontend, run_frontend_host
    from firmware_gen.toolchain import tflm_root as find_root
    from tfkws.data.audio import load_audio
    from tfkws.features.config import FeatureConfig
    from tfkws.features.extract import compute_features
    from tfkws.features.microfrontend import float_to_int16

    config = config or FeatureConfig()
    if config.kind != "microfrontend":
        raise TfkwsError(f"feature parity needs the microfrontend features, not {config.kind!r}")
    if not clip_paths:
        raise TfkwsError("feature parity needs at least one clip")
    clips = np.stack(
        [load_audio(p, config.sample_rate, num_samples=config.clip_samples) for p in clip_paths]
    )
    trained = compute_features(clips, config)  # the float32 features training feeds the model
    try:
        device = run_frontend(
            float_to_int16(clips), config.to_dict(), find_root(tflm_root), cpu=cpu
        )
    except FirmwareGenError as e:
        raise TfkwsError(str(e)) from None
    try:
        same_sources = run_frontend_host(
            float_to_int16(clips), config.to_dict(), find_root(tflm_root)
        )
    except FirmwareGenError as e:
        raise TfkwsError(str(e)) from None
    device_features = device.features.astype(np.float32) * np.float32(config.output_scale)
    raw_host = np.rint(trained / np.float32(config.output_scale)).astype(np.int64)
    diff = np.abs(raw_host - device.features.astype(np.int64))
    per_clip = [
        {
            "clip": Path(p).parent.name + "/" + Path(p).name,
            "identical": bool(np.array_equal(device_features[i], trained[i])),
            "differing_values": int((diff[i] > 0).sum()),
            "max_abs_diff_raw": int(diff[i].max()),
            "instructions": device.instructions[i] if i < len(device.instructions) else None,
        }
        for i, p in enumerate(clip_paths)
    ]
    identical = all(c["identical"] for c in per_clip)
    return {
        "cpu": device.cpu,
        "clips": len(per_clip),
        "shape": list(trained.shape[1:]),
        "identical": identical,
        "differing_values": int((diff > 0).sum()),
        "values": int(diff.size),
        "max_abs_diff_raw": int(diff.max()),
        "per_clip": per_clip,
        "instructions_per_clip": {
            "min": min(device.instructions) if device.instructions else None,
            "max": max(device.instructions) if device.instructions else None,
            "what": "FrontendProcessSamples over one clip in QEMU (state setup excluded)",
        },
        "frontend_flash_bytes": device.flash_bytes,
        # The explanation check: the very same sources built for x86-64 with the host compiler.
        "device_equals_host_build_of_same_sources": bool(
            np.array_equal(device.features, same_sources)
        ),
        "host": "TensorFlow audio_microfrontend op (x86-64), via tfkws.features.compute_features",
        "device": f"TFLM micro frontend C library, arm-none-eabi-gcc for {device.cpu}, QEMU",
    }
