"""SpecAugment-style masking of feature maps (Park et al. 2019): whole frame and band stripes.

Small KWS corpora (a few dozen speakers) overfit to speaker and channel; zeroing random time
stripes and frequency bands of the features each epoch is the cheapest regulariser that helps.
Stateless and seeded like the audio augmentation, so a resumed run sees the same masks.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tfkws.errors import TfkwsError


@dataclasses.dataclass(frozen=True)
class SpecAugmentConfig:
    """``time_masks`` stripes of up to ``time_mask_frames`` frames, ``freq_masks`` bands of up
    to ``freq_mask_bins`` channels; zero counts switch it off."""

    time_masks: int = 0
    time_mask_frames: int = 0
    freq_masks: int = 0
    freq_mask_bins: int = 0

    def __post_init__(self) -> None:
        if min(self.time_masks, self.time_mask_frames, self.freq_masks, self.freq_mask_bins) < 0:
            raise TfkwsError(f"SpecAugment counts and widths must be >= 0: {self}")

    @property
    def enabled(self) -> bool:
        return (self.time_masks and self.time_mask_frames) or (
            self.freq_masks and self.freq_mask_bins
        )


def _stripes(size: tf.Tensor, count: int, max_width: int, seeds: tf.Tensor) -> tf.Tensor:
    """[size] float: 0 inside ``count`` random stripes of width 0..max_width, 1 elsewhere."""
    keep = tf.ones([size], tf.float32)
    positions = tf.range(size)
    for j in range(count):
        u = tf.random.stateless_uniform([2], seeds[j])
        width = tf.cast(tf.floor(u[0] * (max_width + 1)), tf.int32)
        width = tf.minimum(width, size)
        start = tf.cast(tf.floor(u[1] * tf.cast(size - width + 1, tf.float32)), tf.int32)
        inside = (positions >= start) & (positions < start + width)
        keep *= 1.0 - tf.cast(inside, tf.float32)
    return keep


def spec_augment(features: tf.Tensor, seed: tf.Tensor, config: SpecAugmentConfig) -> tf.Tensor:
    """Mask one [frames, channels] feature map; ``seed`` is a stateless seed pair."""
    if not config.enabled:
        return features
    n = config.time_masks + config.freq_masks
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=n)
    frames, bins = tf.shape(features)[0], tf.shape(features)[1]
    keep_t = _stripes(frames, config.time_masks, config.time_mask_frames, seeds)
    keep_f = _stripes(bins, config.freq_masks, config.freq_mask_bins, seeds[config.time_masks :])
    return features * keep_t[:, None] * keep_f[None, :]
