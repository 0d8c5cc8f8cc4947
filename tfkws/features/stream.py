"""Features of a continuous stream, frame by frame, as the device computes them.

The device runs its frontend once from power-on over the whole stream. The micro frontend has
state (noise estimate, PCAN gain, smoothing) carried from frame to frame, so a window of a stream
is not featurised like a fresh 1 s clip: frame ``i`` depends on every sample before it. The
``audio_microfrontend`` op processes its input exactly that way (``FrontendProcessSamples`` frame
after frame with one state), so running it once over the whole stream *is* the device's
frame-by-frame output; ``tests/test_streaming.py`` checks it is causal (a prefix of the stream
gives a prefix of the frames). Log-mel and MFCC frames are stateless, so theirs equal the
per-window computation.

Frame ``i`` covers samples ``[i * stride, i * stride + window)``; its end is where a detection
made with it is timed.
"""

from __future__ import annotations

import numpy as np

from tfkws.errors import AudioError
from tfkws.features.config import FeatureConfig
from tfkws.features.extract import check_config


def num_stream_frames(num_samples: int, config: FeatureConfig) -> int:
    """Frames a stream of ``num_samples`` gives (whole windows only)."""
    if num_samples < config.window_samples:
        return 0
    return 1 + (num_samples - config.window_samples) // config.stride_samples


def frame_end_seconds(frame: int, config: FeatureConfig) -> float:
    """Time of the last sample of frame ``frame`` (+1), in seconds from the stream start."""
    return (frame * config.stride_samples + config.window_samples) / config.sample_rate


def stream_features(audio: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Float32 mono stream ``[samples]`` (any length) -> float32 ``[frames, features]``."""
    import tensorflow as tf

    check_config(config)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise AudioError(f"stream features need mono audio [samples], got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise AudioError("audio contains NaN or infinite samples")
    frames = num_stream_frames(audio.shape[0], config)
    if frames == 0:
        return np.zeros((0, config.num_features), np.float32)
    audio = audio[: (frames - 1) * config.stride_samples + config.window_samples]
    if config.kind == "microfrontend":
        from tfkws.features.microfrontend import microfrontend_tf

        out = microfrontend_tf(tf.constant(audio), config).numpy()
    else:
        from tfkws.features.logmel import logmel_frames

        out = logmel_frames(audio, config)
        if config.kind == "mfcc":
            from tfkws.features.mfcc import mfcc_from_logmel

            out = mfcc_from_logmel(out, config)
    if out.shape != (frames, config.num_features):  # the frontend's framing must be this one
        raise AudioError(
            f"stream features: expected {frames} frames, the frontend gave {out.shape}"
        )
    return out.astype(np.float32, copy=False)
