"""Training-time augmentation: speed perturbation, random time shift, background noise at an SNR.

Noise level is set by signal-to-noise ratio rather than by the canonical fixed
``background_volume``: the same SNR range then means the same difficulty whatever the loudness
of the recording or of the noise file. A clip with (almost) no signal — a silence example — has no
SNR to speak of, so it gets the noise at an absolute ``silence_volume`` (canonical behaviour).

The TF functions are pure and take explicit stateless seeds, so a tf.data pipeline built on them
is reproducible; numpy twins serve the loader (generated silence) and the tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tfkws.errors import TfkwsError

SILENT_RMS = 1e-4  # below this a clip counts as silence (int16 rounding of 0 is < 3e-5)
_EPS = 1e-9


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings, saved with a training run.

    time_shift_ms: clips move by a uniform shift in [-time_shift_ms, +time_shift_ms], zero-filled.
    noise_prob: probability that a non-silent clip gets background noise.
    snr_db: uniform range of the signal-to-noise ratio of that noise.
    silence_volume: uniform range of the gain applied to a raw noise segment added to a silent
        clip (always, when noise files exist); 0.1 is canonical ``background_volume``.
    speed: uniform range of a resampling factor applied about the clip's centre (tempo and
        pitch together, as Kaldi's speed perturbation or kws_streaming's ``resample``): a new
        voice and speaking rate for every pass, which is what a speaker-disjoint test needs.
        (1, 1) is off.
    """

    time_shift_ms: float = 100.0
    noise_prob: float = 0.8
    snr_db: tuple[float, float] = (5.0, 30.0)
    silence_volume: tuple[float, float] = (0.0, 0.1)
    sample_rate: int = 16000
    speed: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "snr_db", tuple(float(x) for x in self.snr_db))
        object.__setattr__(self, "silence_volume", tuple(float(x) for x in self.silence_volume))
        object.__setattr__(self, "speed", tuple(float(x) for x in self.speed))
        if self.time_shift_ms < 0:
            raise TfkwsError(f"time_shift_ms must be >= 0, got {self.time_shift_ms}")
        if not 0.0 <= self.noise_prob <= 1.0:
            raise TfkwsError(f"noise_prob must be in [0, 1], got {self.noise_prob}")
        for name in ("snr_db", "silence_volume", "speed"):
            lo_hi = getattr(self, name)
            if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1]:
                raise TfkwsError(f"{name} must be a (low, high) range, got {lo_hi}")
        if self.silence_volume[0] < 0:
            raise TfkwsError(f"silence_volume must be >= 0, got {self.silence_volume}")
        if self.speed[0] <= 0:
            raise TfkwsError(f"speed factors must be > 0, got {self.speed}")

    @property
    def max_shift_samples(self) -> int:
        return int(round(self.time_shift_ms * self.sample_rate / 1000))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["snr_db"], d["silence_volume"] = list(self.snr_db), list(self.silence_volume)
        d["speed"] = list(self.speed)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AugmentConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise TfkwsError(f"unknown augmentation keys: {', '.join(unknown)}")
        return cls(**d)


# ---------------------------------------------------------------------------------------- numpy


def time_shift_np(clip: np.ndarray, shift: int) -> np.ndarray:
    """Delay (``shift > 0``) or advance the clip by ``shift`` samples, zero-filled, same length."""
    n = clip.shape[0]
    out = np.zeros_like(clip)
    if shift >= 0:
        out[shift:] = clip[: max(n - shift, 0)]
    else:
        out[: max(n + shift, 0)] = clip[-shift:]
    return out


def _centred_positions(n: int, factor: float) -> np.ndarray:
    centre = (n - 1) / 2.0
    return (np.arange(n, dtype=np.float64) - centre) * factor + centre


def speed_perturb_np(clip: np.ndarray, factor: float) -> np.ndarray:
    """Resample ``clip`` by ``factor`` about its centre (> 1: faster and higher), same length.

    Linear interpolation, zeros outside the clip. No anti-alias filter: at the factors used
    (<= 1.2) only content above ~6.7 kHz folds, where speech has little energy.
    """
    n = clip.shape[0]
    out = np.interp(_centred_positions(n, factor), np.arange(n), clip, left=0.0, right=0.0)
    return out.astype(np.float32)


def rms_np(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def noise_gain_np(clip: np.ndarray, noise: np.ndarray, snr_db: float) -> float:
    """Gain that puts ``noise`` at ``snr_db`` below ``clip`` (0 for an all-zero noise)."""
    noise_rms = rms_np(noise)
    if noise_rms < _EPS:
        return 0.0
    return rms_np(clip) / (noise_rms * 10.0 ** (snr_db / 20.0))


def mix_at_snr_np(clip: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``clip`` plus ``noise`` scaled to ``snr_db``, clipped to [-1, 1]."""
    gain = noise_gain_np(clip, noise, snr_db)
    return np.clip(clip + gain * noise, -1.0, 1.0).astype(np.float32)


def random_segment_np(
    noise_clips: Sequence[np.ndarray], num_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """A random ``num_samples`` stretch of a random noise recording (zero-padded if short)."""
    noise = noise_clips[int(rng.integers(len(noise_clips)))]
    if noise.shape[0] <= num_samples:
        out = np.zeros(num_samples, np.float32)
        out[: noise.shape[0]] = noise
        return out
    start = int(rng.integers(noise.shape[0] - num_samples + 1))
    return np.asarray(noise[start : start + num_samples], np.float32)


# ------------------------------------------------------------------------------------------- TF


def time_shift(clip: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
    """TF twin of :func:`time_shift_np` for a 1-D clip and a scalar int shift."""
    n = tf.shape(clip)[0]
    shift = tf.clip_by_value(tf.cast(shift, tf.int32), -n, n)
    pad_front, pad_back = tf.maximum(shift, 0), tf.maximum(-shift, 0)
    padded = tf.pad(clip, [[pad_front, pad_back]])
    return padded[pad_back : pad_back + n]


def speed_perturb(clip: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """TF twin of :func:`speed_perturb_np` for a 1-D float clip and a scalar factor."""
    n = tf.shape(clip)[0]
    centre = (tf.cast(n, tf.float64) - 1.0) / 2.0
    pos = (tf.range(n, dtype=tf.float64) - centre) * tf.cast(factor, tf.float64) + centre
    lo = tf.floor(pos)
    frac = tf.cast(pos - lo, tf.float32)
    i0 = tf.cast(lo, tf.int32)

    def at(i: tf.Tensor) -> tf.Tensor:
        inside = (i >= 0) & (i < n)
        return tf.where(inside, tf.gather(clip, tf.clip_by_value(i, 0, n - 1)), 0.0)

    out = at(i0) * (1.0 - frac) + at(i0 + 1) * frac
    return tf.where((pos < 0.0) | (pos > tf.cast(n - 1, tf.float64)), 0.0, out)


def _rms(x: tf.Tensor) -> tf.Tensor:
    return tf.sqrt(tf.reduce_mean(tf.square(x)))


def mix_at_snr(clip: tf.Tensor, noise: tf.Tensor, snr_db: tf.Tensor) -> tf.Tensor:
    """TF twin of :func:`mix_at_snr_np`."""
    noise_rms = _rms(noise)
    gain = tf.math.divide_no_nan(_rms(clip), noise_rms * tf.pow(10.0, snr_db / 20.0))
    gain = tf.where(noise_rms < _EPS, 0.0, gain)
    return tf.clip_by_value(clip + gain * noise, -1.0, 1.0)


class NoiseBank:
    """Noise recordings packed in one flat tensor, so a graph can cut random segments."""

    def __init__(self, noise_clips: Sequence[np.ndarray], num_samples: int):
        clips = []
        for c in noise_clips:
            c = np.asarray(c, np.float32).reshape(-1)
            if c.shape[0] < num_samples:  # tile short recordings so any segment fits
                c = np.tile(c, -(-num_samples // max(c.shape[0], 1)))
            clips.append(c)
        self.num_samples = num_samples
        self.size = len(clips)
        lengths = np.array([c.shape[0] for c in clips], np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self.flat = tf.constant(np.concatenate(clips) if clips else np.zeros(0, np.float32))
        self.starts = tf.constant(starts if clips else np.zeros(0, np.int64))
        self.lengths = tf.constant(lengths)

    def segment(self, seed: tf.Tensor) -> tf.Tensor:
        """A ``num_samples`` stretch of a noise clip, both chosen by the stateless ``seed``."""
        s = tf.random.experimental.stateless_split(seed, 2)
        k = tf.random.stateless_uniform([], s[0], 0, self.size, dtype=tf.int32)
        span = self.lengths[k] - self.num_samples + 1
        offset = tf.random.stateless_uniform([], s[1], 0, span, dtype=tf.int64)
        start = self.starts[k] + offset
        return self.flat[start : start + self.num_samples]


def augment_clip(
    clip: tf.Tensor, seed: tf.Tensor, config: AugmentConfig, noise: NoiseBank | None = None
) -> tf.Tensor:
    """Speed-perturb and time-shift ``clip``, (with ``noise``) mix in noise; ``seed``: shape [2].

    The same clip and seed always give the same result, different seeds different ones.
    """
    clip = tf.convert_to_tensor(clip, tf.float32)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 5)
    if config.speed != (1.0, 1.0):  # its own stream: the others are as without it
        speed_seed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), 7919)
        clip = speed_perturb(clip, tf.random.stateless_uniform([], speed_seed, *config.speed))
    max_shift = config.max_shift_samples
    if max_shift > 0:
        shift = tf.random.stateless_uniform([], seeds[0], -max_shift, max_shift + 1, tf.int32)
        clip = time_shift(clip, shift)
    if noise is None or noise.size == 0:
        return clip
    segment = noise.segment(seeds[1])
    use_noise = tf.random.stateless_uniform([], seeds[2]) < config.noise_prob
    snr = tf.random.stateless_uniform([], seeds[3], *config.snr_db)
    volume = tf.random.stateless_uniform([], seeds[4], *config.silence_volume)
    silent = _rms(clip) < SILENT_RMS
    speech = tf.where(use_noise, mix_at_snr(clip, segment, snr), clip)
    quiet = tf.clip_by_value(clip + volume * segment, -1.0, 1.0)
    return tf.where(silent, quiet, speech)
