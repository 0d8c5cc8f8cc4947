"""Keyword detector: a stream of int8 model outputs in, detections out.

The device runs the C twin of this class (``firmware_gen.detector`` writes ``NAME_detector.h``;
``tests/test_detector.py`` checks both give identical detections on the same scores). Both work
on the int8 output tensor with integer arithmetic only, so they cannot drift apart through float
rounding. Per step (one model Invoke):

0. the int8 output row becomes probability levels 0..255 (probability x 256): tfkws models end
   in logits, so by an integer softmax over a table of ``exp`` (``firmware_gen.detector``
   documents it); a model ending in a softmax (scale 1/256) gives ``q - zero_point`` directly;
1. the level row enters a ring of the last ``window`` rows; ``sum[l]`` is label ``l``'s
   sum over the ring (smoothed probability ``sum / (256 * window)``: posterior smoothing);
2. nothing fires until the ring is full, nor for ``refractory`` steps after a detection;
3. the candidate is the label with the largest sum among keywords (labels with a threshold) and
   gate labels (``_silence_``/``_unknown_`` by default); ties go to the lower index;
4. a keyword candidate fires when ``sum >= threshold * window`` (``threshold`` a level).

So a gate label that dominates blocks every keyword, as micro_speech's "top label" rule does.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from firmware_gen.detector import exp_table
from tfkws.errors import TfkwsError


@dataclasses.dataclass(frozen=True)
class Detection:
    """One detection: the step it fired at, the label, its level sum over the ring and the
    smoothed probability that sum stands for."""

    step: int
    label_index: int
    label: str
    sum: int
    score: float


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    """What the detector needs; ``to_spec()`` is the dict ``firmware_gen.detector`` reads.

    ``thresholds``: probability level (0..255, probability x 256) of the smoothed score per
    label, or None (never fires). ``gated``: labels that block detection while they lead.
    ``window``/``refractory`` in steps. ``softmax``: the int8 outputs are logits (apply the
    integer softmax). ``scale``/``zero_point``: the output tensor's quantization.
    """

    labels: tuple[str, ...]
    thresholds: tuple[int | None, ...]
    gated: tuple[bool, ...]
    window: int
    refractory: int
    softmax: bool
    scale: float
    zero_point: int

    def __post_init__(self) -> None:
        from firmware_gen.detector import check_spec
        from firmware_gen.errors import FirmwareGenError

        try:
            check_spec(self.to_spec())
        except FirmwareGenError as e:
            raise TfkwsError(str(e)) from None

    def to_spec(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "thresholds": list(self.thresholds),
            "gated": list(self.gated),
            "window": self.window,
            "refractory": self.refractory,
            "softmax": self.softmax,
            "scale": float(self.scale),
            "zero_point": int(self.zero_point),
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> DetectorConfig:
        return cls(
            tuple(spec["labels"]),
            tuple(spec["thresholds"]),
            tuple(spec["gated"]),
            int(spec["window"]),
            int(spec["refractory"]),
            bool(spec["softmax"]),
            float(spec["scale"]),
            int(spec["zero_point"]),
        )

    def probability(self, total: int) -> float:
        """The smoothed probability a level sum over the ring stands for."""
        return total / (LEVELS * self.window)


LEVELS = 256  # probability level l stands for l / 256 (0..255)


def probability_to_level(p: float) -> int:
    """Lowest level (0..255) whose probability ``level / 256`` is >= ``p``."""
    if not 0.0 <= p <= 1.0:
        raise TfkwsError(f"detection threshold must be a probability in [0, 1], got {p:g}")
    return int(min(math.ceil(round(p * LEVELS, 6)), LEVELS - 1))


def probability_levels(config: DetectorConfig, scores: np.ndarray) -> np.ndarray:
    """int8 output row -> probability levels (int64, 0..255), exactly as the C header does."""
    q = scores.astype(np.int64)
    if not config.softmax:
        return np.clip(q - config.zero_point, 0, LEVELS - 1)
    e = np.asarray(exp_table(config.scale), np.int64)[q.max() - q]
    total = int(e.sum())
    return np.minimum((e * LEVELS + total // 2) // total, LEVELS - 1)


GATE_OTHERS = "others"
"""``make_config(gate=GATE_OTHERS)``: every label without a threshold of its own is a gate (a
model of many words listening for a few, the rest blocking like ``_unknown_``)."""


def make_config(
    labels: Sequence[str],
    scale: float,
    zero_point: int,
    softmax: bool = True,
    threshold: float | Mapping[str, float] = 0.8,
    window: int = 3,
    refractory: int = 10,
    gate: Sequence[str] | str | None = None,
) -> DetectorConfig:
    """A config from probabilities: one threshold for every keyword, or one per label.

    Keywords are the labels not starting with ``_``; ``gate`` defaults to those starting with
    ``_`` (``_silence_``, ``_unknown_``), which get no threshold. With a mapping, labels not in it
    (and not gated) are ignored; with ``gate=[]`` the ``_`` labels are ignored; with
    ``gate=GATE_OTHERS`` (a mapping needed) every label not in it is a gate.
    """
    labels = list(labels)
    if gate == GATE_OTHERS:
        if not isinstance(threshold, Mapping):
            raise TfkwsError("detector: gate 'others' needs a threshold per label that fires")
        gate = [x for x in labels if x not in threshold]
    gate_set = {x for x in labels if x.startswith("_")} if gate is None else set(gate)
    unknown = sorted(gate_set - set(labels))
    if isinstance(threshold, Mapping):
        unknown += sorted(set(threshold) - set(labels))
    if unknown:
        raise TfkwsError(
            f"detector: no label(s) {', '.join(unknown)} in the model ({', '.join(labels)})"
        )
    levels: list[int | None] = []
    for label in labels:
        if isinstance(threshold, Mapping):
            if label in gate_set and label in threshold:
                raise TfkwsError(f"detector: gate label {label} cannot have a threshold")
            p = threshold.get(label)
        else:
            p = None if label.startswith("_") else threshold
        levels.append(None if label in gate_set or p is None else probability_to_level(p))
    return DetectorConfig(
        tuple(labels),
        tuple(levels),
        tuple(x in gate_set for x in labels),
        int(window),
        int(refractory),
        bool(softmax),
        float(scale),
        int(zero_point),
    )


class Detector:
    """The streaming detector: ``step(scores)`` once per model Invoke (see the module doc)."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        n = len(config.labels)
        never = 255 * config.window + 1
        self._thr = [never if t is None else t * config.window for t in config.thresholds]
        pairs = zip(config.thresholds, config.gated, strict=True)
        self._considered = [i for i, (t, g) in enumerate(pairs) if t is not None or g]
        self._ring = np.zeros((config.window, n), np.int64)
        self._sum = np.zeros(n, np.int64)
        self.reset()

    def reset(self) -> None:
        self._ring[:] = 0
        self._sum[:] = 0
        self._pos = 0
        self._count = 0
        self._cooldown = 0
        self._steps = 0

    def step(self, scores: np.ndarray) -> Detection | None:
        """Feed one int8 output row; the detection it triggers, if any."""
        c = self.config
        row = np.asarray(scores).reshape(-1)
        if row.dtype != np.int8 or row.shape[0] != len(c.labels):
            raise TfkwsError(
                f"detector: expects {len(c.labels)} int8 scores per step, got "
                f"{row.shape[0]} {row.dtype}"
            )
        row = probability_levels(c, row)
        if self._count == c.window:
            self._sum -= self._ring[self._pos]
        self._ring[self._pos] = row
        self._sum += row
        self._pos = (self._pos + 1) % c.window
        self._count = min(self._count + 1, c.window)
        step = self._steps
        self._steps += 1
        if self._cooldown > 0:
            self._cooldown -= 1
            return None
        if self._count < c.window or not self._considered:
            return None
        sums = self._sum
        best = self._considered[0]
        for i in self._considered[1:]:
            if sums[i] > sums[best]:
                best = i
        total = int(sums[best])
        if c.gated[best] or total < self._thr[best]:
            return None
        self._cooldown = c.refractory
        return Detection(step, best, c.labels[best], total, c.probability(total))


def detect(config: DetectorConfig, scores: np.ndarray) -> list[Detection]:
    """Detections of a fresh detector over int8 ``scores`` ``[steps, labels]``."""
    det = Detector(config)
    found = []
    for row in np.asarray(scores):
        d = det.step(row)
        if d is not None:
            found.append(d)
    return found
