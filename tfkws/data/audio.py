"""Reading clips: any WAV/FLAC (int or float, mono or stereo, any rate) -> float32 mono at 16 kHz.

Every reader error becomes one ``AudioError`` line naming the file, so a dataset loader can skip
the clip with a warning instead of dying on a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tfkws.errors import AudioError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
DEFAULT_SAMPLE_RATE = 16000
INT16_SCALE = 32768.0


def is_audio_file(path: str | os.PathLike) -> bool:
    """True for a regular file whose extension is one tfkws reads."""
    p = Path(path)
    return p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file() and not p.name.startswith(".")


def _read_soundfile(path: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    data, rate = sf.read(path, dtype="float32", always_2d=True)
    return data, int(rate)


def _read_librosa(path: str) -> tuple[np.ndarray, int]:
    import warnings

    import librosa

    with warnings.catch_warnings():  # librosa warns on its way to audioread; the error is ours
        warnings.simplefilter("ignore")
        data, rate = librosa.load(path, sr=None, mono=False, dtype=np.float32)
    data = np.atleast_2d(data).T  # librosa gives (channels, samples)
    return data, int(rate)


def _short_reason(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def load_audio(
    path: str | os.PathLike,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    num_samples: int | None = None,
) -> np.ndarray:
    """Return the clip at ``path`` as float32 mono in [-1, 1] at ``sample_rate``.

    Channels are averaged, other rates are resampled (soxr, as librosa does), float files are
    clipped to [-1, 1]. With ``num_samples`` the clip is zero-padded at the end or trimmed to
    that length.
    Raises ``AudioError("<path>: cannot read audio (<reason>)")`` for a missing, unreadable,
    empty or corrupt file.
    """
    path = os.fspath(path)

    def fail(reason: str) -> AudioError:
        return AudioError(f"{path}: cannot read audio ({reason})")

    if not os.path.exists(path):
        raise fail("file not found")
    if os.path.isdir(path):
        raise fail("is a folder")
    if os.path.getsize(path) == 0:
        raise fail("empty file")
    try:
        data, rate = _read_soundfile(path)
    except Exception as sf_error:  # libsndfile refuses it: try librosa's other back ends
        try:
            data, rate = _read_librosa(path)
        except Exception:
            raise fail(_short_reason(sf_error)) from None
    if data.size == 0 or data.shape[0] == 0:
        raise fail("no samples")
    if not np.all(np.isfinite(data)):
        raise fail("contains NaN or infinite samples")
    clip = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if rate != sample_rate:
        import soxr  # what librosa's default "soxr_hq" calls, without librosa's slow import

        try:
            clip = soxr.resample(clip, rate, sample_rate, quality="HQ")
        except Exception as e:
            raise fail(f"cannot resample from {rate} Hz: {_short_reason(e)}") from None
    clip = np.clip(np.asarray(clip, dtype=np.float32), -1.0, 1.0)
    if num_samples is not None:
        clip = fit_length(clip, num_samples)
    return clip


def fit_length(clip: np.ndarray, num_samples: int) -> np.ndarray:
    """Zero-pad at the end or trim to exactly ``num_samples`` (Speech Commands clips run short)."""
    if num_samples <= 0:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    if clip.shape[0] >= num_samples:
        return np.ascontiguousarray(clip[:num_samples])
    out = np.zeros(num_samples, dtype=np.float32)
    out[: clip.shape[0]] = clip
    return out


def load_noise(
    paths: list[str] | tuple[str, ...], sample_rate: int = DEFAULT_SAMPLE_RATE, min_samples: int = 0
) -> list[np.ndarray]:
    """Load background-noise recordings whole; unreadable ones are skipped with a warning.

    Recordings shorter than ``min_samples`` are tiled so any clip-length segment can be cut.
    """
    from absl import logging

    clips = []
    for p in paths:
        try:
            noise = load_audio(p, sample_rate)
        except AudioError as e:
            logging.warning("skipping noise file: %s", e)
            continue
        if noise.shape[0] < min_samples:
            noise = np.tile(noise, -(-min_samples // noise.shape[0]))
        clips.append(noise)
    return clips


def to_int16(clip: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> int16 (x * 32768, saturated), the inverse of soundfile's int16 reading."""
    return np.clip(np.round(clip * INT16_SCALE), -32768, 32767).astype(np.int16)
