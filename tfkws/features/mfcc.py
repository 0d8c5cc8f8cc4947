"""MFCC features: a DCT of the log-mel matrix, keeping ``config.num_mfcc`` coefficients.

Built on :mod:`tfkws.features.logmel` so both kinds share one framing and one mel filterbank.
"""

from __future__ import annotations

import librosa
import numpy as np

from tfkws.errors import TfkwsError
from tfkws.features.config import FeatureConfig
from tfkws.features.logmel import logmel


def mfcc_from_logmel(log_mel: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """``[frames, num_channels]`` log-mel -> ``[frames, num_mfcc]`` (frame by frame)."""
    # librosa wants [n_mels, frames]; DCT-II with orthonormal scaling (librosa's default).
    coeffs = librosa.feature.mfcc(S=log_mel.T, n_mfcc=config.num_mfcc, dct_type=2, norm="ortho")
    return coeffs.T.astype(np.float32)


def mfcc(audio: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Clip ``[samples]`` or clips ``[B, samples]`` -> float32 ``[(B,) frames, num_mfcc]``."""
    if config.num_mfcc > config.num_channels:
        raise TfkwsError(
            f"num_mfcc ({config.num_mfcc}) cannot exceed num_channels ({config.num_channels})"
        )
    log_mel = logmel(audio, config)
    if log_mel.ndim == 2:
        return mfcc_from_logmel(log_mel, config)
    return np.stack([mfcc_from_logmel(m, config) for m in log_mel]).astype(np.float32)
