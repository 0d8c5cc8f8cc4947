"""Accuracy of an int8 ``.tflite`` run in the TFLM interpreter, on any dataset a user points at.

Uses the model's own labels and feature config (from its metadata), so the numbers are those of the
model the device will run. Every accuracy claim of tfkws is measured with this.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from tfkws.errors import TfkwsError
from tfkws.progress import Progress


def read_model(model_path: str | os.PathLike) -> tuple[bytes, Any]:
    """Read and validate an int8 ``.tflite`` (clear error for a missing, corrupt or float file)."""
    from tfkws.conversion.model_info import inspect_tflite, require_int8

    path = Path(model_path)
    if not path.is_file():
        raise TfkwsError(f"{path}: model file not found")
    data = path.read_bytes()
    info = inspect_tflite(data, str(path))
    require_int8(info, str(path))
    return data, info


def features_for(meta: dict[str, Any]) -> Any:
    from tfkws.features.config import FeatureConfig

    return FeatureConfig.from_dict(meta["feature_config"])


def quantize_input(x: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    from tfkws.features.extract import features_to_int8

    return features_to_int8(x, meta["input"]["scale"], meta["input"]["zero_point"])


def open_for_model(data: str, meta: dict[str, Any], noise_dir: str | None = None) -> Any:
    """Open ``data`` with the model's labels (12-class mode when it has _silence_/_unknown_)."""
    from tfkws.data.dataset import open_dataset

    labels = list(meta["labels"])
    twelve = "_silence_" in labels and "_unknown_" in labels
    keywords = tuple(lab for lab in labels if not lab.startswith("_"))
    return open_dataset(
        data,
        mode="12class" if twelve else "all",
        keywords=keywords,
        labels=labels,
        noise_dir=noise_dir,
    )


def evaluate_tflite(
    model_path: str | os.PathLike,
    data: str,
    split: str = "all",
    max_clips: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Run every clip of ``split`` through TFLM; accuracy, per-class accuracy, confusion matrix."""
    from tfkws.conversion.export import load_metadata
    from tfkws.data.pipeline import load_noise
    from tfkws.features.clips import clip_features
    from tfkws.training.metrics import accuracy_report
    from tfkws.verification.tflm import run_tflm

    model, _ = read_model(model_path)
    meta = load_metadata(model_path)
    fc = features_for(meta)
    ds = open_for_model(data, meta)
    examples = list(ds.split(split))
    if max_clips and len(examples) > max_clips:
        rng = np.random.default_rng(seed)
        examples = [
            examples[i] for i in sorted(rng.choice(len(examples), max_clips, replace=False))
        ]
    noise = load_noise(ds.noise_files, fc.sample_rate)
    x, y = clip_features(examples, meta["labels"], fc, noise, seed=seed)
    xq = quantize_input(x, meta)
    # In chunks only to show progress: TFLM resets between clips, so the outputs are the same.
    chunk = max(64, -(-len(y) // 20))
    outs = []
    with Progress("running clips through TFLM", len(y)) as progress:
        for start in range(0, len(y), chunk):
            outs.append(run_tflm(model, xq[start : start + chunk]))
            progress.update(len(outs[-1]))
    out = np.concatenate(outs) if outs else run_tflm(model, xq)
    pred = np.argmax(out.reshape(len(y), -1), axis=-1)
    report = accuracy_report(y, pred, meta["labels"])
    report.update(
        {"model": str(model_path), "data": str(data), "split": split, "runtime": "tflm-int8"}
    )
    return report
