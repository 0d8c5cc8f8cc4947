"""Helpers shared by test modules: a test module imports these, never another test module.

Training a tiny model in memory, tone-clip features, a model's structural signature, and
commands and environments for ``tfkws train`` in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


def train_command(
    data: Path, out: Path, epochs: int, batch_size: int, params: str, *extra: str
) -> list[str]:
    """``tfkws train`` of a small DS-CNN as a subprocess command, seeded, on all of ``data``."""
    return [
        sys.executable,
        "-m",
        "tfkws.cli.main",
        "train",
        f"--data={data}",
        "--mode=all",
        f"--out={out}",
        f"--epochs={epochs}",
        f"--batch_size={batch_size}",
        "--model=ds_cnn",
        f"--params={params}",
        "--lr=0.01",
        "--seed=3",
        *extra,
    ]


def subprocess_env(tf_config: dict | None = None, tmp: Path | None = None) -> dict[str, str]:
    """The environment of a training subprocess: this repo, Keras 2, CPU, quiet, no TF_CONFIG
    unless given (``tmp``: its TMPDIR, where a non-chief worker writes its scratch run)."""
    env = dict(
        os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""
    )
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    if tmp is not None:
        env["TMPDIR"] = str(tmp)
    return env


def trained_weights(run: Path, trainable_only: bool = False) -> list[np.ndarray]:
    """A finished run's weights (BatchNorm statistics too, unless ``trainable_only``), loaded as
    ``tfkws eval`` loads them."""
    from tfkws.runs.model import load_trained_model

    model, _ = load_trained_model(run)
    if trainable_only:
        return [w.numpy() for w in model.trainable_weights]
    return model.get_weights()
