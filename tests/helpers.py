"""Helpers shared by test modules: a test module imports these, never another test module.

Training a tiny model in memory, tone-clip features, and a model's structural signature.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tf_keras as keras
from conftest import REPO, write_tone_dataset

from tfkws.training.trainer import make_loss

# Three pure tones, far apart: a tiny model learns them in a few epochs.
TONE_WORDS = {"high": 2500.0, "low": 400.0, "mid": 1100.0}


def fit(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    lr: float,
    batch_size: int = 17,
    shuffle: bool = True,
    num_classes: int = 3,
) -> None:
    """Compile with Adam and the trainer's loss, then fit quietly (no validation, no callbacks)."""
    model.compile(keras.optimizers.Adam(lr), make_loss(num_classes), metrics=["accuracy"])
    model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=shuffle, verbose=0)


def tone_features(
    root: Path, words: dict[str, float] = TONE_WORDS, clips_per_word: int = 34
) -> tuple[np.ndarray, np.ndarray]:
    """Float features (default feature config) and labels of a tone dataset written to ``root``."""
    from tfkws.data.dataset import open_dataset
    from tfkws.features.clips import clip_features
    from tfkws.features.config import FeatureConfig

    ds = open_dataset(write_tone_dataset(root, words, clips_per_word=clips_per_word), mode="all")
    return clip_features(list(ds.split("all")), ds.labels, FeatureConfig())


CONV_KEYS = (
    "filters",
    "kernel_size",
    "strides",
    "padding",
    "dilation_rate",
    "use_bias",
    "activation",
    "depth_multiplier",
    "units",
    "target_shape",
    "rate",
)


def signature(model: keras.Model) -> list[tuple]:
    """Layer types, weight shapes and the config fields that define the computed function."""
    out = []
    for layer in model.layers:
        cfg = layer.get_config()
        fields = tuple((k, str(cfg[k])) for k in CONV_KEYS if k in cfg)
        shapes = tuple(tuple(w.shape) for w in layer.weights)
        out.append((type(layer).__name__, shapes, fields))
    return out


def run_command(
    argv: Sequence[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 600
) -> str:
    """Run a command as a user would (this repo on PYTHONPATH); its stdout + stderr.

    Fails the test with the output's tail when it exits non-zero.
    """
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out
