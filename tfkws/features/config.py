"""Feature configuration: saved with every model and read back by export, eval and firmware_gen.

The default is the TFLM micro frontend with micro_speech's settings (30 ms window, 20 ms stride,
40 channels), because that is what the device computes.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from tfkws.errors import TfkwsError

KINDS = ("microfrontend", "logmel", "mfcc")


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """How a 1-D clip becomes a ``(num_frames, num_features)`` float32 matrix."""

    kind: str = "microfrontend"
    sample_rate: int = 16000
    clip_duration_ms: int = 1000
    window_size_ms: int = 30
    window_stride_ms: int = 20
    num_channels: int = 40  # filterbank / mel channels
    num_mfcc: int = 10  # only for kind == "mfcc"
    lower_band_limit: float = 125.0
    upper_band_limit: float = 7500.0
    # micro frontend only (TFLM defaults, as micro_speech trains with them):
    enable_pcan: bool = True
    smoothing_bits: int = 10
    even_smoothing: float = 0.025
    odd_smoothing: float = 0.06
    min_signal_remaining: float = 0.05
    pcan_strength: float = 0.95
    pcan_offset: float = 80.0
    gain_bits: int = 21
    enable_log: bool = True
    scale_shift: int = 6
    # micro_speech scales frontend output by 10/256 so values sit in about [0, 26]
    output_scale: float = 10.0 / 256.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            kinds = ", ".join(KINDS)
            raise TfkwsError(f"unknown feature kind {self.kind!r}; choose one of {kinds}")
        if self.window_stride_ms <= 0 or self.window_size_ms <= 0:
            raise TfkwsError("feature window size and stride must be positive")
        if self.window_samples > self.clip_samples:
            raise TfkwsError("feature window is longer than the clip")
        if self.window_stride_ms > self.window_size_ms:
            raise TfkwsError("feature stride must not exceed the window")
        if not 0 <= self.lower_band_limit < self.upper_band_limit < self.sample_rate / 2:
            raise TfkwsError(
                f"band limits need 0 <= lower < upper < Nyquist ({self.sample_rate / 2:g} Hz)"
            )
        if self.kind == "mfcc" and not 0 < self.num_mfcc <= self.num_channels:
            raise TfkwsError("num_mfcc must be between 1 and num_channels")

    @property
    def clip_samples(self) -> int:
        return self.sample_rate * self.clip_duration_ms // 1000

    @property
    def window_samples(self) -> int:
        return self.sample_rate * self.window_size_ms // 1000

    @property
    def stride_samples(self) -> int:
        return self.sample_rate * self.window_stride_ms // 1000

    @property
    def num_frames(self) -> int:
        return 1 + (self.clip_samples - self.window_samples) // self.stride_samples

    @property
    def num_features(self) -> int:
        return self.num_mfcc if self.kind == "mfcc" else self.num_channels

    @property
    def shape(self) -> tuple[int, int]:
        """Feature matrix shape ``(frames, features)`` of one clip."""
        return (self.num_frames, self.num_features)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise TfkwsError(f"unknown feature config keys: {', '.join(unknown)}")
        return cls(**d)

    def save(self, path: str | os.PathLike) -> None:
        from tfkws import atomic

        atomic.write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureConfig:
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise TfkwsError(f"{path}: feature config not found") from None
        except (json.JSONDecodeError, TypeError) as e:
            raise TfkwsError(f"{path}: not a valid feature config ({e})") from None
