"""Log-mel features (librosa): a float alternative to the micro frontend for host-side experiments.

Frames are laid out exactly like the micro frontend's (``n_fft`` = window, hop = stride,
``center=False``), so ``config.shape`` holds for every kind and models swap feature kinds freely.
"""

from __future__ import annotations

import librosa
import numpy as np

from tfkws.errors import AudioError
from tfkws.features.config import FeatureConfig

# Added before the log so silent frames give a finite floor (log(1e-6) ~ -13.8), not -inf.
LOG_OFFSET = 1e-6


def logmel_frames(clip: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Audio of any length -> ``[frames, num_channels]`` (frames are independent of each other,
    so a stream's frames equal a clip's)."""
    mel = librosa.feature.melspectrogram(
        y=clip,
        sr=config.sample_rate,
        n_fft=config.window_samples,
        hop_length=config.stride_samples,
        window="hann",
        center=False,
        power=2.0,
        n_mels=config.num_channels,
        fmin=config.lower_band_limit,
        fmax=config.upper_band_limit,
    )
    return np.log(mel + LOG_OFFSET).T.astype(np.float32)


def logmel(audio: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Clip ``[samples]`` or clips ``[B, samples]`` -> float32 ``[(B,) frames, num_channels]``."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim not in (1, 2) or audio.shape[-1] != config.clip_samples:
        raise AudioError(
            f"logmel expects [samples] or [B, samples] with {config.clip_samples} samples, "
            f"got {audio.shape}"
        )
    if audio.ndim == 1:
        return logmel_frames(audio, config)
    out = np.empty((audio.shape[0], config.num_frames, config.num_channels), np.float32)
    for i, clip in enumerate(audio):
        out[i] = logmel_frames(clip, config)
    return out
