"""One entry point from audio to model input, for numpy callers and for ``tf.data`` pipelines.

Training (``tf.data``) and evaluation/verification (numpy) must feed the model identical features,
so both paths here run the same code: the micro frontend through one TF graph, the librosa kinds
through the same numpy function (wrapped in ``tf.numpy_function`` for ``tf.data``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from tfkws.errors import AudioError, TfkwsError
from tfkws.features import microfrontend as _mf
from tfkws.features.config import FeatureConfig
from tfkws.features.logmel import logmel
from tfkws.features.mfcc import mfcc

_NUMPY_KINDS: dict[str, Callable[[np.ndarray, FeatureConfig], np.ndarray]] = {
    "logmel": logmel,
    "mfcc": mfcc,
}


def check_config(config: FeatureConfig) -> None:
    """Raise :class:`TfkwsError` for a config that no feature kind can compute."""
    nyquist = config.sample_rate / 2
    if not 0 <= config.lower_band_limit < config.upper_band_limit < nyquist:
        raise TfkwsError(
            f"feature band limits must satisfy 0 <= lower < upper < sample_rate/2 ({nyquist:g}), "
            f"got {config.lower_band_limit:g}..{config.upper_band_limit:g}"
        )
    if config.num_channels <= 0:
        raise TfkwsError(f"num_channels must be positive, got {config.num_channels}")
    if config.kind == "microfrontend":
        _mf.check_config(config)
    if config.kind == "mfcc" and not 0 < config.num_mfcc <= config.num_channels:
        raise TfkwsError(
            f"num_mfcc must be in 1..num_channels ({config.num_channels}), got {config.num_mfcc}"
        )


def _as_float_audio(audio: np.ndarray) -> np.ndarray:
    """float audio passes through as float32; int16 PCM is scaled by 1/32768 (exact inverse)."""
    audio = np.asarray(audio)
    if audio.dtype == np.int16:
        return audio.astype(np.float32) / np.float32(_mf.INT16_SCALE)
    if not np.issubdtype(audio.dtype, np.floating):
        raise AudioError(f"audio must be float or int16 samples, got dtype {audio.dtype}")
    return audio.astype(np.float32, copy=False)


def compute_features(audio: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Clip ``[samples]`` -> ``[frames, feats]``; clips ``[B, samples]`` -> ``[B, frames, feats]``.

    ``audio`` is float in [-1, 1] (int16 PCM is accepted and scaled by 1/32768); each clip must
    have exactly ``config.clip_samples`` samples. Output is float32, ``config.shape`` per clip.
    """
    check_config(config)
    audio = _as_float_audio(audio)
    if audio.ndim not in (1, 2) or audio.shape[-1] != config.clip_samples:
        raise AudioError(
            f"expected audio of shape [{config.clip_samples}] or [B, {config.clip_samples}] "
            f"({config.clip_duration_ms} ms at {config.sample_rate} Hz), got {list(audio.shape)}"
        )
    if not np.all(np.isfinite(audio)):
        raise AudioError("audio contains NaN or infinite samples")
    if config.kind == "microfrontend":
        return _mf.microfrontend(audio, config)
    return _NUMPY_KINDS[config.kind](audio, config)


def feature_fn_tf(config: FeatureConfig) -> Callable[[tf.Tensor], tf.Tensor]:
    """A function for ``tf.data.Dataset.map``: float32 clip ``[samples]`` -> ``[frames, feats]``.

    The result has its static shape set to ``config.shape``; values equal
    :func:`compute_features` exactly. The micro frontend runs in-graph (parallel-safe); librosa
    kinds go through ``tf.numpy_function`` (holds the GIL, so parallel maps gain less).
    """
    check_config(config)

    def fn(clip: tf.Tensor) -> tf.Tensor:
        clip = tf.ensure_shape(tf.cast(clip, tf.float32), [config.clip_samples])
        clip = tf.debugging.check_numerics(clip, "audio contains NaN or infinite samples")
        if config.kind == "microfrontend":
            features = _mf.microfrontend_tf(clip, config)
        else:
            kind_fn = _NUMPY_KINDS[config.kind]
            features = tf.numpy_function(
                lambda x: kind_fn(x, config), [clip], tf.float32, stateful=False
            )
        return tf.ensure_shape(features, config.shape)

    return fn


def features_to_int8(features: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Float features -> int8 model input: ``clip(round(x / scale) + zero_point, -128, 127)``.

    Same arithmetic as TFLite's reference QUANTIZE (float32 divide, round half away from zero,
    then add the zero point), so host-side eval, TFLM verification and firmware agree.
    """
    scale = float(scale)
    if not np.isfinite(scale) or scale <= 0:
        raise TfkwsError(f"input quantization scale must be positive and finite, got {scale}")
    if int(zero_point) != zero_point or not -128 <= zero_point <= 127:
        raise TfkwsError(f"int8 zero point must be an integer in [-128, 127], got {zero_point}")
    x = np.asarray(features, dtype=np.float32) / np.float32(scale)
    if np.isnan(x).any():
        raise TfkwsError("features contain NaN; cannot quantize")
    # std::round: np.round rounds ties to even, so move exact ties away from zero.
    trunc = np.trunc(x)
    q = np.where(np.abs(x - trunc) == 0.5, trunc + np.sign(x), np.round(x))
    return np.clip(q + np.float32(zero_point), -128, 127).astype(np.int8)
