"""A seeded subset of a dataset's splits: smoke runs and first tries on a few clips."""

from __future__ import annotations

import dataclasses

import numpy as np

from tfkws.data.kws_dataset import KwsDataset


def subsample(ds: KwsDataset, max_clips: int | None, seed: int) -> KwsDataset:
    """At most ``max_clips`` examples per split, chosen by ``seed`` (order kept)."""
    if not max_clips:
        return ds
    rng = np.random.default_rng(seed)
    splits = {}
    for name, examples in ds.splits.items():
        if len(examples) > max_clips:
            pick = sorted(rng.choice(len(examples), max_clips, replace=False))
            examples = [examples[i] for i in pick]
        splits[name] = examples
    return dataclasses.replace(ds, splits=splits)
