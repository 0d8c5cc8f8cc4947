"""Float features of dataset examples, as a trained model sees them at inference.

Shared by PTQ calibration, verification, evaluation, firmware inputs and the benchmarks: every
one of them must feed the model the features it was trained on, without augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tfkws.data.example import Example
from tfkws.data.pipeline import load_clips
from tfkws.features.config import FeatureConfig
from tfkws.features.extract import compute_features


def clip_features(
    examples: Sequence[Example],
    labels: list[str],
    features: FeatureConfig,
    noise: Any = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Load ``examples`` and compute their float features (no augmentation)."""
    audio, y = load_clips(examples, labels, features.clip_samples, noise, seed=seed)
    return compute_features(
        audio.astype(np.float32) / (32768.0 if audio.dtype == np.int16 else 1.0), features
    ), y
