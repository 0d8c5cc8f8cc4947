"""TFLM micro frontend features: the same filterbank the device computes from 16-bit PCM.

Training must see exactly what the firmware's frontend produces, so the float clip is first turned
into the int16 samples a microphone driver delivers, then run through TensorFlow's
``audio_microfrontend`` op (the C frontend from TFLM's ``micro_speech``, wrapped as a TF op).

Float -> int16 conversion (the device must match it):
    ``int16 = clip(round_half_to_even(x * 32768), -32768, 32767)``
The factor 32768 inverts the usual PCM reading (``soundfile``/``librosa`` return ``int16 / 32768``),
so a clip read from a 16-bit file gets its original samples back bit for bit; float values outside
[-1, 1) saturate as an ADC would.

The op returns the raw uint16 frontend values (``out_scale=1``, as float32); they are multiplied by
``config.output_scale`` (micro_speech's 10/256, values in about [0, 26]).
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf
from tensorflow.lite.experimental.microfrontend.python.ops import audio_microfrontend_op

from tfkws.errors import AudioError, TfkwsError
from tfkws.features.config import FeatureConfig

INT16_SCALE = 32768.0
INT16_MIN = -32768
INT16_MAX = 32767


def float_to_int16(audio: np.ndarray) -> np.ndarray:
    """Float samples (nominally [-1, 1]) -> int16 PCM: ``clip(round(x * 32768))``, half to even."""
    scaled = np.round(np.asarray(audio, dtype=np.float32) * np.float32(INT16_SCALE))
    return np.clip(scaled, INT16_MIN, INT16_MAX).astype(np.int16)


def float_to_int16_tf(audio: tf.Tensor) -> tf.Tensor:
    """In-graph twin of :func:`float_to_int16` (``tf.round`` also rounds half to even)."""
    scaled = tf.round(tf.cast(audio, tf.float32) * INT16_SCALE)
    return tf.cast(tf.clip_by_value(scaled, INT16_MIN, INT16_MAX), tf.int16)


def check_config(config: FeatureConfig) -> None:
    """Reject settings the C frontend cannot run.

    Measured with TF 2.21: a stride longer than the window aborts the whole process
    (``munmap_chunk(): invalid pointer``), and an upper band limit at or above Nyquist fails with
    "Filterbank end_index is above spectrum size"; both are caught here with a clear message.
    """
    if config.window_stride_ms > config.window_size_ms:
        raise TfkwsError(
            f"microfrontend needs window_stride_ms <= window_size_ms, got stride "
            f"{config.window_stride_ms} > window {config.window_size_ms}"
        )
    nyquist = config.sample_rate / 2
    if not 0 <= config.lower_band_limit < config.upper_band_limit < nyquist:
        raise TfkwsError(
            f"feature band limits must satisfy 0 <= lower < upper < sample_rate/2 ({nyquist:g}), "
            f"got {config.lower_band_limit:g}..{config.upper_band_limit:g}"
        )


def microfrontend_tf(audio: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    """One float32 clip ``[samples]`` -> float32 ``[frames, channels]``, usable in any TF graph."""
    check_config(config)
    features = audio_microfrontend_op.audio_microfrontend(
        float_to_int16_tf(tf.reshape(audio, [-1])),
        sample_rate=config.sample_rate,
        window_size=config.window_size_ms,
        window_step=config.window_stride_ms,
        num_channels=config.num_channels,
        upper_band_limit=config.upper_band_limit,
        lower_band_limit=config.lower_band_limit,
        smoothing_bits=config.smoothing_bits,
        even_smoothing=config.even_smoothing,
        odd_smoothing=config.odd_smoothing,
        min_signal_remaining=config.min_signal_remaining,
        enable_pcan=config.enable_pcan,
        pcan_strength=config.pcan_strength,
        pcan_offset=config.pcan_offset,
        gain_bits=config.gain_bits,
        enable_log=config.enable_log,
        scale_shift=config.scale_shift,
        out_scale=1,
        out_type=tf.float32,
    )
    return features * tf.constant(config.output_scale, tf.float32)


@functools.lru_cache(maxsize=16)
def _batch_fn(config: FeatureConfig) -> tf.types.experimental.PolymorphicFunction:
    """A traced function per config, so the numpy path runs the very graph ``tf.data`` runs."""

    def one(clip: tf.Tensor) -> tf.Tensor:
        return tf.ensure_shape(microfrontend_tf(clip, config), config.shape)

    @tf.function(
        input_signature=[tf.TensorSpec([None, config.clip_samples], tf.float32)],
        reduce_retracing=True,
    )
    def batch(clips: tf.Tensor) -> tf.Tensor:
        return tf.map_fn(one, clips, fn_output_signature=tf.TensorSpec(config.shape, tf.float32))

    return batch


def microfrontend(audio: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Clip ``[samples]`` or clips ``[B, samples]`` -> float32 ``[(B,) frames, channels]``."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim not in (1, 2) or audio.shape[-1] != config.clip_samples:
        raise AudioError(
            f"microfrontend expects [samples] or [B, samples] with {config.clip_samples} "
            f"samples, got {audio.shape}"
        )
    check_config(config)
    batch = audio[None] if audio.ndim == 1 else audio
    if batch.shape[0] == 0:
        return np.zeros((0, *config.shape), np.float32)
    out = _batch_fn(config)(tf.constant(batch)).numpy()
    return out[0] if audio.ndim == 1 else out
