"""``tfkws verify``: the int8 model in TFLM vs LiteRT vs the float Keras model, on real clips."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from tfkws.errors import TfkwsError


def verify_tflite(
    model_path: str | os.PathLike,
    data: str | None = None,
    split: str | None = None,
    max_clips: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Parity report; clips come from ``data`` or else the source run's validation split."""
    from tfkws.conversion.export import load_metadata
    from tfkws.data.pipeline import load_noise
    from tfkws.features.clips import clip_features
    from tfkws.runs.files import RUN_CONFIG
    from tfkws.runs.model import load_trained_model
    from tfkws.verification.evaluate import features_for, open_for_model, read_model
    from tfkws.verification.parity import verify

    model, info = read_model(model_path)
    meta = load_metadata(model_path)
    fc = features_for(meta)
    keras_model = None
    run_dir = meta.get("source_run")
    if run_dir and Path(run_dir, RUN_CONFIG).exists():
        keras_model, run = load_trained_model(run_dir, batch_size=1)
        data = data or run.data
        split = split or "validation"
    if not data:
        raise TfkwsError(
            f"{model_path}: its source run is not here; pass --data with clips to verify on"
        )
    ds = open_for_model(data, meta)
    split = split if split and ds.has_split(split) else "all"
    examples = list(ds.split(split))
    rng = np.random.default_rng(seed)
    if len(examples) > max_clips:
        examples = [
            examples[i] for i in sorted(rng.choice(len(examples), max_clips, replace=False))
        ]
    noise = load_noise(ds.noise_files, fc.sample_rate)
    x, y = clip_features(examples, meta["labels"], fc, noise, seed=seed)
    report = verify(model, x, keras_model).as_dict()
    report.update(
        {"model": str(model_path), "data": str(data), "split": split, "ops": list(info.ops)}
    )
    return report
