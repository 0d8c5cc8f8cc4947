"""Post-training quantisation inputs: a seeded, fixed calibration set.

The converter's int8 ranges come from the calibration clips, so the same clips in the same
order make the same .tflite bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from tfkws.errors import ModelError

REPRESENTATIVE_CLIPS = 400  # training clips ``tfkws export`` draws by default
PTQ_CLIPS = 200  # of those, the ones the converter calibrates on (and QAT starts from)


def calibration_set(
    representative: np.ndarray, num_calibration: int | None = PTQ_CLIPS, seed: int = 0
) -> np.ndarray:
    """Up to ``num_calibration`` clips of ``representative`` [N, ...] chosen with ``seed``.

    Indices are drawn without replacement and kept in their original order; ``None`` uses all.
    """
    data = np.asarray(representative, dtype=np.float32)
    if data.ndim < 2 or data.shape[0] == 0:
        raise ModelError(
            f"representative data must be [N, frames, features] with N >= 1, got {data.shape}"
        )
    if not np.isfinite(data).all():
        raise ModelError("representative data contains NaN or infinite values")
    n = data.shape[0]
    if num_calibration is None or num_calibration >= n:
        return data
    if num_calibration < 1:
        raise ModelError(f"num_calibration must be >= 1, got {num_calibration}")
    idx = np.sort(np.random.default_rng(seed).choice(n, size=num_calibration, replace=False))
    return data[idx]


def representative_dataset(clips: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    """Generator factory in the form ``TFLiteConverter.representative_dataset`` expects."""

    def gen() -> Iterator[list[np.ndarray]]:
        for clip in clips:
            yield [clip[None].astype(np.float32)]

    return gen
