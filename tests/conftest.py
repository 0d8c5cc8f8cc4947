"""Test setup: Keras 2 before TensorFlow loads, shared-data paths, small fixtures."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TFKWS_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; tests that need it are skipped where it is absent."""
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def write_tone_dataset(
    root: Path, words: dict[str, float], clips_per_word: int = 12, seed: int = 0
) -> Path:
    """A tiny Speech Commands-layout dataset: each word is a tone burst at its own pitch.

    Learnable in a few epochs, so training, export and eval tests run in seconds.
    """
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    sr = 16000
    t = np.arange(sr) / sr
    for word, freq in words.items():
        (root / word).mkdir(parents=True, exist_ok=True)
        for i in range(clips_per_word):
            start = rng.integers(1000, 6000)
            length = rng.integers(5000, 8000)
            env = np.zeros(sr)
            env[start : start + length] = np.hanning(length)
            f = freq * (1 + 0.03 * rng.standard_normal())
            x = 0.5 * env * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(sr)
            sf.write(
                root / word / f"spk{i % 4:02d}_nohash_{i}.wav",
                x.astype(np.float32),
                sr,
                subtype="PCM_16",
            )
    # Speaker spk03 is the validation split (a hash split of 4 speakers could leave it empty).
    val = sorted(f"{w}/{p.name}" for w in words for p in (root / w).glob("spk03_*.wav"))
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    noise_dir = root / "_background_noise_"
    noise_dir.mkdir(exist_ok=True)
    sf.write(
        noise_dir / "white.wav",
        (0.1 * rng.standard_normal(3 * sr)).astype(np.float32),
        sr,
        subtype="PCM_16",
    )
    return root


@pytest.fixture(scope="session")
def tone_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three tone 'words'; open it with mode='all'."""
    root = tmp_path_factory.mktemp("tones")
    return write_tone_dataset(root, {"high": 2500.0, "low": 400.0, "mid": 1100.0})


def quantized_weight_names(wrapper: Any) -> set[str]:
    """Names (``kernel``, ``scale``, ...) of the weights a tfmot wrapper fake-quantises."""
    return {w.name.split("/")[-1].split(":")[0] for w, _, _ in wrapper._weight_vars}


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """``tfkws ARGV...`` in-process: (exit code, stdout, stderr)."""
    from tfkws.cli.main import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
