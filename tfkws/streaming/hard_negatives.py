"""Hard negatives: the windows of keyword-free audio a trained model fires on, as training clips.

A clip classifier learns ``_unknown_`` from whole, centred non-keyword words; a stream shows it
windows it never trained on (the tail of one word and the start of the next, a word half under
noise), and those are where its false accepts come from. Mining them is the usual remedy of
wake-word training (microWakeWord, Picovoice): run the model over hours of keyword-free audio
built from *training* material (never the speakers of the test streams), take the window of every
detection at a low threshold, and train again with those windows as ``_unknown_``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from tfkws.atomic import output_dir
from tfkws.errors import TfkwsError
from tfkws.streaming.detector import DetectorConfig
from tfkws.streaming.stream_scoring import StreamScores, sweep


def detection_times(config: DetectorConfig, scores: StreamScores, threshold: float) -> np.ndarray:
    """End times (s) of the detector's detections on ``scores`` with one ``threshold`` for every
    keyword (``config``'s window, refractory time and gates)."""
    found = sweep(config, scores.scores, [threshold])[threshold]
    return np.array([float(scores.times_s[step]) for step, _ in found], np.float64)


def cut_windows(
    audio: str | os.PathLike,
    end_times: Sequence[float],
    clip_s: float,
    out_dir: str | os.PathLike,
    prefix: str = "hard",
) -> list[str]:
    """The ``clip_s`` seconds of ``audio`` before each end time, as 16-bit WAV files in
    ``out_dir`` (written whole or not at all); windows that would start before the audio's
    beginning are left out. Returns the files' paths in time order."""
    try:
        info = sf.info(str(audio))
    except (RuntimeError, sf.LibsndfileError) as e:
        raise TfkwsError(f"{audio}: cannot read audio ({e})") from None
    rate, n = info.samplerate, int(round(clip_s * info.samplerate))
    names = []
    with output_dir(out_dir) as tmp, sf.SoundFile(str(audio)) as f:
        for t in sorted(end_times):
            end = int(round(t * rate))
            if end - n < 0 or end > info.frames:
                continue
            f.seek(end - n)
            x = f.read(n, dtype="int16")
            if x.ndim > 1:
                x = x.mean(axis=1).astype(np.int16)
            name = f"{prefix}_{len(names):05d}.wav"
            sf.write(str(Path(tmp) / name), x, rate, subtype="PCM_16")
            names.append(name)
    return [str(Path(out_dir) / name) for name in names]
