"""The feature ring buffer a device keeps: the last ``frames`` int8 feature frames.

The frontend delivers one frame per stride; the ring overwrites the oldest, and a full-window
Invoke copies it out oldest-first into the model's input tensor. Here it is what the sliding
window runs on, so the host pipeline has the device's data flow, not a shortcut over slices.
"""

from __future__ import annotations

import numpy as np

from tfkws.errors import TfkwsError


class FeatureRing:
    """``push`` one frame at a time; ``window()`` is the last ``frames`` frames, oldest first."""

    def __init__(self, frames: int, features: int, dtype: type = np.int8) -> None:
        if frames <= 0 or features <= 0:
            raise TfkwsError(f"feature ring needs positive sizes, got {frames} x {features}")
        self._buf = np.zeros((frames, features), dtype)
        self._pos = 0  # slot of the oldest frame once full; of the next frame to write always
        self.count = 0  # frames pushed in total

    @property
    def full(self) -> bool:
        return self.count >= self._buf.shape[0]

    def push(self, frame: np.ndarray) -> None:
        self._buf[self._pos] = frame
        self._pos = (self._pos + 1) % self._buf.shape[0]
        self.count += 1

    def window(self) -> np.ndarray:
        """The ring's frames in time order (the two halves of the ring, as a device copies)."""
        return np.concatenate([self._buf[self._pos :], self._buf[: self._pos]])
