"""The clips int8 ranges are calibrated on, drawn deterministically from a run's training split.

PTQ export and the start of QAT share them: a QAT run starts from the PTQ model's ranges, so a
QAT run that keeps its start converts to exactly the PTQ model's accuracy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfkws.data.audio import load_noise
from tfkws.data.kws_dataset import KwsDataset
from tfkws.features.clips import clip_features
from tfkws.features.config import FeatureConfig
from tfkws.quantization.ptq import PTQ_CLIPS, REPRESENTATIVE_CLIPS, calibration_set


def dataset_representative(
    ds: KwsDataset, labels: list[str], features: FeatureConfig, num: int, seed: int
) -> np.ndarray:
    """Float features of ``num`` clips of ``ds``'s training split (all clips if it has none)."""
    split = "training" if ds.has_split("training") else "all"
    examples = list(ds.split(split))
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(examples), size=min(num, len(examples)), replace=False))
    noise = load_noise(ds.noise_files, features.sample_rate)
    x, _ = clip_features([examples[i] for i in pick], labels, features, noise, seed=seed)
    return x


def representative_features(run: Any, num: int, seed: int, data: str | None = None) -> np.ndarray:
    """Float features of ``num`` training clips of the run (a ``RunConfig``), chosen by
    ``seed``; ``data`` if the dataset moved since training."""
    ds = run.open_dataset(data)
    return dataset_representative(ds, run.labels, run.features, num, seed)


def ptq_clips(representative: np.ndarray, seed: int = 0) -> np.ndarray:
    """The clips int8 PTQ calibrates on: ``PTQ_CLIPS`` of the representative set, by ``seed``.

    A QAT run starts its ranges from these same clips, so its start is the PTQ model.
    """
    return calibration_set(representative, PTQ_CLIPS, seed)


def qat_start_clips(ds: KwsDataset, features: FeatureConfig) -> np.ndarray:
    """The clips ``tfkws export`` calibrates PTQ on by default (its pool and seed 0): QAT starts
    from the PTQ model's ranges, so a kept start converts to the PTQ model's accuracy."""
    rep = dataset_representative(ds, list(ds.labels), features, REPRESENTATIVE_CLIPS, 0)
    return ptq_clips(rep, 0)
