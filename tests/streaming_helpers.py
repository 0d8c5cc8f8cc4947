"""Tone "keywords" for the streaming tests: a stateless frontend, a tone dataset, a trained int8
model (shared by test_streaming and test_stream_eval; a test module never imports another)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import tf_keras as keras

from tfkws.features.config import FeatureConfig
from tfkws.streaming.external_state import StreamingModel

SR = 16000
TONES = {"high": 2500.0, "low": 400.0, "_unknown_": 1100.0}

# The micro frontend without its stateful stages (no PCAN; noise reduction floored at the whole
# signal, so it subtracts nothing): a window of a stream then has exactly a clip's features.
# With the default (stateful) frontend, a model trained on fresh-state clip features sees
# different features in a stream: measured with this very setup, steady background noise, which
# the adapted noise estimate removes, read as "low" at p ~ 0.84 every second (README, Streaming).
STATELESS = FeatureConfig(enable_pcan=False, min_signal_remaining=1.0)


def noise(rng: np.random.Generator, n: int, level: float = 0.01) -> np.ndarray:
    return (level * rng.standard_normal(n)).astype(np.float32)


def tone(rng: np.random.Generator, freq: float, length: int) -> np.ndarray:
    t = np.arange(length) / SR
    amp = rng.uniform(0.3, 0.6)
    return (amp * np.hanning(length) * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_dataset(root: Path, per_class: int = 48) -> Path:
    """CSV layout: tone keywords, an unknown tone and noise-only silence, 1 s clips."""
    rng = np.random.default_rng(0)
    rows: dict[str, list[str]] = {"train": [], "val": []}
    for label in [*TONES, "_silence_"]:
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            clip = noise(rng, SR, rng.uniform(0.005, 0.02))
            if label in TONES:
                length = int(rng.integers(4800, 8000))
                start = int(rng.integers(1600, SR - length - 800))
                f = TONES[label] * (1 + 0.02 * rng.standard_normal())
                clip[start : start + length] += tone(rng, f, length)
            name = f"{label}/{i}.wav"
            sf.write(root / name, clip, SR, subtype="PCM_16")
            rows["val" if i % 6 == 0 else "train"].append(f"{name},{label}")
    for split, lines in rows.items():
        (root / f"{split}.csv").write_text("file,class\n" + "\n".join(lines) + "\n")
    return root


def train_tone_kws_model(
    tmp: Path, model_params: dict | None = None, epochs: int = 15, export: bool = True
) -> Path:
    """Train a tiny DS-CNN on the tone dataset with the stateless frontend; its int8 .tflite
    (``export`` False: the run folder, ``tmp / "run"``). ``model_params`` add to the DS-CNN's
    (e.g. ``time_padding="valid"`` for a model that streams)."""
    from tfkws.cli.main import main
    from tfkws.data.dataset import open_dataset
    from tfkws.runs.config import TrainConfig
    from tfkws.training.trainer import train

    data = tmp / "data"
    if not (data / "train.csv").exists():
        write_dataset(data)
    run = tmp / "run"
    cfg = TrainConfig(
        model_params={"channels": 32, "num_blocks": 2, **(model_params or {})},
        epochs=epochs,
        batch_size=16,
        learning_rate=0.01,
    )
    train(open_dataset(data), STATELESS, cfg, run, data_path=str(data), verbose=0)
    if not export:
        return run
    model = tmp / "tones.tflite"
    assert main(["export", f"--run={run}", f"--out={model}"]) == 0
    return model


def step_matches_window(
    model: keras.Model, sm: StreamingModel, frames: np.ndarray, outs: list[np.ndarray]
) -> int:
    """Every output ``outs`` of the step model ``sm`` over ``frames`` after the warm-up must
    equal the window ``model`` on its window (float). The number of steps checked."""
    checked = 0
    for k in range(sm.warmup_steps, len(outs)):
        end = sm.window_end(k)
        if end > len(frames):
            break
        ref = model(frames[None, end - sm.window : end], training=False).numpy()[0]
        np.testing.assert_allclose(outs[k], ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
        checked += 1
    return checked
