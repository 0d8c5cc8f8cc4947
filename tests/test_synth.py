"""Synthetic espeak-ng keyword dataset in the Speech Commands layout."""

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from tfkws.data.synth import KEYWORDS, NOISE_DIR, synthesize_dataset
from tfkws.errors import DatasetError

UNKNOWN = ("yet", "know", "cup", "town", "lift", "top")
KW_CLIPS = 6


def _make(path: Path, seed: int, **kwargs) -> Path:
    return synthesize_dataset(
        path,
        unknown_words=UNKNOWN,
        clips_per_keyword=KW_CLIPS,
        clips_per_unknown_word=2,
        seed=seed,
        size="tiny",
        noise_seconds=3,
        progress=False,
        **kwargs,
    )


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _read(path: Path) -> tuple[np.ndarray, int, int, int]:
    with wave.open(str(path), "rb") as w:
        frames = w.readframes(w.getnframes())
        return np.frombuffer(frames, "<i2"), w.getframerate(), w.getnchannels(), w.getsampwidth()


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    base = tmp_path_factory.mktemp("synth")
    noise = base / "my_noise"
    noise.mkdir()
    t = np.arange(8000 * 2) / 8000  # 2 s at 8 kHz, resampled to 16 kHz on the way in
    with wave.open(str(noise / "fan.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes((3000 * np.sin(2 * np.pi * 120 * t)).astype("<i2").tobytes())
    return {
        "a": _make(base / "a", seed=0),
        "a2": _make(base / "a2", seed=0),
        "b": _make(base / "b", seed=1, noise_dir=noise),
    }


def test_layout(datasets):
    root = datasets["a"]
    for word in KEYWORDS:
        assert len(list((root / word).glob("*_nohash_*.wav"))) == KW_CLIPS, word
    for word in UNKNOWN:
        assert len(list((root / word).glob("*_nohash_*.wav"))) == 2, word
    noises = sorted(p.stem for p in (root / NOISE_DIR).glob("*.wav"))
    assert noises == ["babble", "brown_noise", "hum", "pink_noise", "white_noise"]
    for p in (root / NOISE_DIR).glob("*.wav"):
        x, sr, ch, width = _read(p)
        assert (sr, ch, width) == (16000, 1, 2) and len(x) == 3 * 16000
        assert np.std(x) > 100, p.name
    assert (root / "validation_list.txt").exists() and (root / "testing_list.txt").exists()
    config = json.loads((root / "synth_config.json").read_text())
    assert config["seed"] == 0 and config["keywords"] == list(KEYWORDS)
    assert config["unknown_words"] == list(UNKNOWN)
    assert config["clips"] == KW_CLIPS * len(KEYWORDS) + 2 * len(UNKNOWN)


def test_noise_dir_files_are_added(datasets):
    x, sr, _, _ = _read(datasets["b"] / NOISE_DIR / "fan.wav")
    assert sr == 16000 and abs(len(x) - 2 * 16000) <= 1
    assert not (datasets["a"] / NOISE_DIR / "fan.wav").exists()


def test_clips_are_one_second_16k_int16_speech(datasets):
    root = datasets["a"]
    clips = sorted(root.glob("*/*_nohash_*.wav"))
    assert len(clips) == KW_CLIPS * len(KEYWORDS) + 2 * len(UNKNOWN)
    onsets = []
    for p in clips:
        x, sr, ch, width = _read(p)
        assert (sr, ch, width, len(x)) == (16000, 1, 2, 16000), p
        x = x.astype(np.float64)
        assert np.abs(x).max() > 300, f"{p} is silent"
        frame_rms = np.sqrt(np.mean(x.reshape(50, 320) ** 2, axis=1))
        assert frame_rms.max() > 2 * np.median(frame_rms), f"{p} has no word standing out"
        onsets.append(int(np.argmax(frame_rms > 0.3 * frame_rms.max())))
    assert len(set(onsets)) > 5  # the word is not always at the same place


def test_same_seed_same_bytes_other_seed_differs(datasets):
    a, a2, b = (_files(datasets[k]) for k in ("a", "a2", "b"))
    assert a == a2
    assert a[f"{NOISE_DIR}/white_noise.wav"] != b[f"{NOISE_DIR}/white_noise.wav"]
    # other speakers (names) and other audio
    assert {k for k in a if k.startswith("yes/")} != {k for k in b if k.startswith("yes/")}
    assert set(a[k] for k in a if k.startswith("yes/")).isdisjoint(
        b[k] for k in b if k.startswith("yes/")
    )


def test_split_lists_are_disjoint_by_speaker(datasets):
    root = datasets["a"]
    val = (root / "validation_list.txt").read_text().split()
    test = (root / "testing_list.txt").read_text().split()
    assert val and test
    for rel in val + test:
        assert (root / rel).is_file(), rel
    speaker = lambda rel: Path(rel).name.split("_nohash_")[0]  # noqa: E731
    held = set(val) | set(test)
    train_speakers = {
        speaker(p.relative_to(root).as_posix())
        for p in root.glob("*/*_nohash_*.wav")
        if p.relative_to(root).as_posix() not in held
    }
    val_speakers, test_speakers = {speaker(r) for r in val}, {speaker(r) for r in test}
    assert train_speakers and not (val_speakers & test_speakers)
    assert not (train_speakers & (val_speakers | test_speakers))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"keywords": ("yes", "no"), "unknown_words": ("no", "cup")}, "twice"),
        ({"size": "huge"}, "unknown size"),
        ({"keywords": ("Yes/",)}, "lower-case"),
        ({"noise_dir": "/nonexistent/noise"}, "noise folder not found"),
        ({"keywords": ("zoom in ",)}, "lower-case"),
        ({"keywords": ("yes",), "texts": {"zebra": ["zebra"]}}, "not in the dataset"),
        ({"keywords": ("yes",), "texts": {"yes": "yes"}}, "list of non-empty strings"),
        ({"keywords": ("yes",), "texts": {"yes": []}}, "list of non-empty strings"),
        ({"keywords": ("yes",), "voices": ()}, "at least one espeak-ng voice"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(DatasetError, match=message) as err:
        synthesize_dataset(tmp_path / "out", progress=False, **kwargs)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()
