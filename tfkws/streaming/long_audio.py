"""Feature frames of a recording of any length, read and featurised chunk by chunk.

Hours of 16 kHz audio do not fit in memory as float32 (230 MB an hour), but their int8 feature
frames do (2 KB a second: 7 MB an hour). So the file is read in chunks of ``chunk_s`` seconds,
each featurised with ``stream_features`` and quantized, and only the int8 frames are kept.

Each chunk's frontend starts ``warmup_s`` before the chunk and the warm-up frames are dropped:
a stateless frontend (log-mel, MFCC, or the micro frontend without PCAN and noise reduction)
then gives exactly the frames of one pass over the whole file; the stateful micro frontend's
adaptive state has re-converged after the warm-up (its noise estimate and PCAN settle in about a
second), so its frames differ from one pass only just after chunk starts, and by little.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from tfkws.errors import AudioError
from tfkws.features.config import FeatureConfig
from tfkws.features.stream import num_stream_frames, stream_features

DEFAULT_CHUNK_S = 300.0
DEFAULT_WARMUP_S = 10.0


def audio_seconds(path: str | os.PathLike) -> float:
    """Length of an audio file in seconds (from its header)."""
    import soundfile as sf

    try:
        info = sf.info(os.fspath(path))
    except Exception as e:  # libsndfile's errors are plain RuntimeErrors
        raise AudioError(f"{path}: cannot read audio ({' '.join(str(e).split())})") from None
    return info.frames / info.samplerate


def stream_frames_chunked(
    path: str | os.PathLike,
    config: FeatureConfig,
    quantize: Callable[[np.ndarray], np.ndarray],
    chunk_s: float = DEFAULT_CHUNK_S,
    warmup_s: float = DEFAULT_WARMUP_S,
    progress: bool = False,
    dtype: type = np.int8,
) -> np.ndarray:
    """int8 frames ``[frames, features]`` of the file at ``path`` (see the module doc).

    ``quantize`` maps float features to the model's int8 input (or, with ``dtype=np.float32``
    and an identity, keeps the float features). A file at another sample rate
    than the features' is read whole and resampled (``load_audio``).
    """
    import soundfile as sf

    from tfkws.progress import Progress

    path = os.fspath(path)
    try:
        f = sf.SoundFile(path)
    except Exception as e:
        if not os.path.exists(path):
            raise AudioError(f"{path}: cannot read audio (file not found)") from None
        raise AudioError(f"{path}: cannot read audio ({' '.join(str(e).split())})") from None
    with f:
        if f.samplerate != config.sample_rate:
            from tfkws.data.audio import load_audio

            audio = load_audio(path, config.sample_rate)
            return quantize(stream_features(audio, config))
        total = num_stream_frames(f.frames, config)
        stride, window = config.stride_samples, config.window_samples
        per_chunk = max(1, int(chunk_s * config.sample_rate) // stride)
        warm = int(warmup_s * config.sample_rate) // stride
        out = np.zeros((total, config.num_features), dtype)
        chunks = -(-total // per_chunk)
        with Progress(f"features of {os.path.basename(path)}", chunks, enabled=progress) as bar:
            for f0 in range(0, total, per_chunk):
                f1 = min(total, f0 + per_chunk)
                w0 = max(0, f0 - warm)
                start, stop = w0 * stride, (f1 - 1) * stride + window
                f.seek(start)
                try:
                    data = f.read(stop - start, dtype="float32", always_2d=True)
                except Exception as e:
                    raise AudioError(
                        f"{path}: cannot read audio ({' '.join(str(e).split())})"
                    ) from None
                feats = stream_features(data.mean(axis=1), config)
                out[f0:f1] = quantize(feats[f0 - w0 :])
                bar.update()
    return out
