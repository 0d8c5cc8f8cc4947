"""Scoring a detector on labelled streams: false rejects per threshold, false accepts per hour.

The model runs once per stream (int8 outputs per step); the detector is then swept over
thresholds. ``sweep`` gives exactly the detections of ``detector.detect`` at each threshold
(tests check it) but fast: the integer levels and the ring sums do not depend on the threshold,
nor does the leading label of a step, so only the firing steps and the refractory time are
worked out per threshold.

Matching: a detection of keyword ``k`` at time ``t`` hits a placement of ``k`` when
``start <= t <= end + tolerance_s`` (the detector reports just after the word's end); each
placement is hit at most once. Every other detection is a false accept (a wrong keyword, a second
detection of one word, or one with no word near it). False rejects: placements not hit, split by
cause (``placement_causes``): the model's smoothed score for the word never reached the threshold in
its window, it did but another label led the ring at every such step, or the detector was quiet
then (refractory after another detection).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from firmware_gen.detector import exp_table
from tfkws.streaming.detector import LEVELS, DetectorConfig, probability_to_level
from tfkws.streaming.stream_build import Placement

DEFAULT_TOLERANCE_S = 0.5
DEFAULT_THRESHOLDS = tuple(round(x, 3) for x in np.arange(0.30, 0.991, 0.01))


@dataclasses.dataclass(frozen=True)
class StreamScores:
    """int8 model outputs ``[steps, labels]``, each step's time (s) and the stream's length."""

    scores: np.ndarray
    times_s: np.ndarray
    duration_s: float


def levels(config: DetectorConfig, scores: np.ndarray) -> np.ndarray:
    """``detector.probability_levels`` of every row at once (same integers)."""
    q = np.asarray(scores).astype(np.int64)
    if not config.softmax:
        return np.clip(q - config.zero_point, 0, LEVELS - 1)
    table = np.asarray(exp_table(config.scale), np.int64)
    e = table[q.max(axis=1, keepdims=True) - q]
    total = e.sum(axis=1, keepdims=True)
    return np.minimum((e * LEVELS + total // 2) // total, LEVELS - 1)


def ring_sums(config: DetectorConfig, scores: np.ndarray) -> np.ndarray:
    """Per step whose ring is full (step ``window - 1`` on): every label's level sum."""
    lv = levels(config, scores)
    w = config.window
    cs = np.cumsum(np.concatenate([np.zeros((1, lv.shape[1]), np.int64), lv]), axis=0)
    return cs[w:] - cs[:-w] if lv.shape[0] >= w else np.zeros((0, lv.shape[1]), np.int64)


def leaders(
    config: DetectorConfig, scores: np.ndarray, sums: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per step: the detector's candidate label (-1 before the ring is full) and its ring sum
    (``sums``: :func:`ring_sums` of ``scores`` when the caller has them already)."""
    sums = ring_sums(config, scores) if sums is None else sums
    n, w = np.asarray(scores).shape[0], config.window
    considered = [
        i
        for i, (t, g) in enumerate(zip(config.thresholds, config.gated, strict=True))
        if t is not None or g
    ]
    label = np.full(n, -1, np.int64)
    best = np.zeros(n, np.int64)
    if considered and sums.shape[0]:
        sub = sums[:, considered]
        pick = np.argmax(sub, axis=1)  # first of equal sums: the lower index, as the detector
        label[w - 1 :] = np.asarray(considered)[pick]
        best[w - 1 :] = sub[np.arange(sub.shape[0]), pick]
    return label, best


def fire(
    config: DetectorConfig, label: np.ndarray, best: np.ndarray, need: np.ndarray
) -> list[tuple[int, int]]:
    """Detections ``(step, label index)`` from :func:`leaders`' output when label ``l`` fires at a
    ring sum of ``need[l]`` (a level x window per label; gates and labels without a threshold
    get more than any sum): the detector's refractory rule applied to the steps that qualify."""
    ok = label >= 0
    qualifies = np.zeros(label.shape[0], bool)
    qualifies[ok] = best[ok] >= need[label[ok]]
    found, next_free = [], 0
    for s in np.nonzero(qualifies)[0]:
        if s >= next_free:
            found.append((int(s), int(label[s])))
            next_free = s + config.refractory + 1
    return found


def need_levels(config: DetectorConfig, thresholds: Sequence[float | None]) -> np.ndarray:
    """Per label: the ring sum it fires at with these probabilities (None, or a gate: never)."""
    never = (LEVELS - 1) * config.window + 1
    return np.array(
        [
            never if p is None or g else probability_to_level(p) * config.window
            for p, g in zip(thresholds, config.gated, strict=True)
        ],
        np.int64,
    )


def keyword_indices(config: DetectorConfig) -> list[int]:
    """Labels that can fire: those with a threshold that are not gates."""
    pairs = zip(config.thresholds, config.gated, strict=True)
    return [i for i, (t, g) in enumerate(pairs) if t is not None and not g]


def sweep(
    config: DetectorConfig,
    scores: np.ndarray,
    thresholds: Sequence[float],
    lead: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[float, list[tuple[int, int]]]:
    """Threshold -> detections ``(step, label index)`` of a fresh detector with ``config``'s
    window, refractory and gates and that one threshold for every keyword it has one for
    (``lead``: :func:`leaders` of ``scores`` when the caller has them already)."""
    label, best = leaders(config, scores) if lead is None else lead
    kws = set(keyword_indices(config))
    n = len(config.labels)
    return {
        p: fire(
            config, label, best, need_levels(config, [p if i in kws else None for i in range(n)])
        )
        for p in thresholds
    }


def match(
    detections: Sequence[tuple[float, str]],
    placements: Sequence[Placement],
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> tuple[int, int]:
    """(placements hit, false accepts) of time-ordered ``(time_s, label)`` detections."""
    hit, false_accepts = match_flags(detections, placements, tolerance_s)
    return sum(hit), false_accepts


def match_flags(
    detections: Sequence[tuple[float, str]],
    placements: Sequence[Placement],
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> tuple[list[bool], int]:
    """:func:`match` per placement: (hit or not, in ``placements``' order; false accepts)."""
    hit = [False] * len(placements)
    starts = np.array([p.start for p in placements])
    false_accepts = 0
    for t, lab in detections:
        found = False
        # placements that started before t, latest first (they do not overlap in built streams)
        for i in range(int(np.searchsorted(starts, t, side="right")) - 1, -1, -1):
            p = placements[i]
            if p.end + tolerance_s < t - 30.0:
                break
            if not hit[i] and p.keyword == lab and p.start <= t <= p.end + tolerance_s:
                hit[i] = found = True
                break
        false_accepts += not found
    return hit, false_accepts


def placement_peaks(
    config: DetectorConfig,
    stream: StreamScores,
    placements: Sequence[Placement],
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    sums: np.ndarray | None = None,
    lead: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Per placement ``[peak, leading peak]``: the largest ring sum of its keyword at the steps
    timed in ``[start, end + tolerance_s]``, and the largest at those of them where the keyword
    is the detector's candidate (0 where there are none). Neither depends on the threshold: a
    miss at a threshold needing ``n`` is the model's when ``peak < n``, another label's when
    ``leading peak < n <= peak``, else the detector's (it was refractory). ``sums`` and
    ``lead``: :func:`ring_sums` and :func:`leaders` of the stream when the caller has them."""
    sums = ring_sums(config, stream.scores) if sums is None else sums
    label, _ = leaders(config, stream.scores, sums) if lead is None else lead
    w = config.window
    times = np.asarray(stream.times_s)[w - 1 :]
    label = label[w - 1 :]
    index = {x: i for i, x in enumerate(config.labels)}
    out = np.zeros((len(placements), 2), np.int64)
    for j, p in enumerate(placements):
        a, b = np.searchsorted(times, [p.start, p.end + tolerance_s + 1e-9])
        k = index.get(p.keyword)
        if k is None or b <= a:
            continue
        col = sums[a:b, k]
        out[j, 0] = col.max()
        led = col[label[a:b] == k]
        out[j, 1] = led.max() if led.size else 0
    return out


def placement_causes(
    peaks: np.ndarray, placements: Sequence[Placement], need: np.ndarray, labels: Sequence[str]
) -> np.ndarray:
    """Per placement (of those with ``placement_peaks``), at ring sums ``need`` per label: 0 below
    the threshold, 1 outranked by another label, 2 could be hit."""
    index = {x: i for i, x in enumerate(labels)}
    n = np.array([need[index[p.keyword]] if p.keyword in index else 1 << 62 for p in placements])
    if not len(n):
        return np.zeros(0, np.int64)
    return np.where(peaks[:, 0] < n, 0, np.where(peaks[:, 1] < n, 1, 2))


def miss_causes(causes: np.ndarray) -> tuple[int, int, int]:
    """How many placements of :func:`placement_causes` codes are (below the threshold,
    outranked by another label, could be hit)."""
    below, outranked, rest = np.bincount(causes, minlength=3)
    return int(below), int(outranked), int(rest)


MISS_CAUSES = ("below_threshold", "outranked", "refractory")


def _stream_outcomes(
    config: DetectorConfig,
    stream: StreamScores,
    placements: Sequence[Placement],
    thresholds: Sequence[float],
    tolerance_s: float,
) -> dict[float, tuple[list[bool], int, np.ndarray]]:
    """Per threshold, one keyword stream's (hit flags, false accepts, ``placement_causes``)."""
    labels = config.labels
    kws = set(keyword_indices(config))
    sums = ring_sums(config, stream.scores)
    lead = leaders(config, stream.scores, sums)
    peaks = placement_peaks(config, stream, placements, tolerance_s, sums, lead)
    out = {}
    for p, found in sweep(config, stream.scores, thresholds, lead).items():
        dets = [(float(stream.times_s[k]), labels[i]) for k, i in found]
        hit, fa = match_flags(dets, list(placements), tolerance_s)
        need = need_levels(config, [p if i in kws else None for i in range(len(labels))])
        out[p] = (hit, fa, placement_causes(peaks, placements, need, labels))
    return out


def _missed(
    placements: Sequence[Placement], hit: Sequence[bool], causes: np.ndarray
) -> list[dict[str, Any]]:
    """The placements not hit, each with its clip and cause (a hittable miss: refractory)."""
    return [
        {"keyword": p.keyword, "start": p.start, "end": p.end, "source": p.source}
        | {"cause": MISS_CAUSES[c]}
        for p, h, c in zip(placements, hit, causes, strict=True)
        if not h
    ]


def missed_placements(
    config: DetectorConfig,
    keyword_streams: Sequence[tuple[StreamScores, Sequence[Placement]]],
    threshold: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> list[dict[str, Any]]:
    """The placements not hit at ``threshold`` (every keyword), each with its cause (module
    doc) and its source clip: the list to listen to, and to group by speaker."""
    out = []
    for s, placements in keyword_streams:
        hit, _, causes = _stream_outcomes(config, s, placements, [threshold], tolerance_s)[
            threshold
        ]
        out += _missed(placements, hit, causes)
    return out


def speaker_of(source: str) -> str:
    """The speaker of a clip by the Speech Commands naming (``SPEAKER_nohash_N.wav``, Arabic
    Speech Commands ``SPEAKER_NO_N.flac``): the file name up to its first ``_``."""
    return Path(source).name.split("_", 1)[0] if source else ""


def misses_by_speaker(
    keyword_streams: Sequence[tuple[StreamScores, Sequence[Placement]]],
    missed: Sequence[dict[str, Any]],
) -> dict[str, dict[str, int]]:
    """``{speaker: {"placed", "missed"}}`` over placements with a source (empty without):
    false rejects from a few test speakers are rarely spread evenly."""
    out: dict[str, dict[str, int]] = {}
    for _, placements in keyword_streams:
        for p in placements:
            if p.source:
                out.setdefault(speaker_of(p.source), {"placed": 0, "missed": 0})["placed"] += 1
    for m in missed:
        if m["source"]:
            out[speaker_of(m["source"])]["missed"] += 1
    return dict(sorted(out.items()))


def evaluate(
    config: DetectorConfig,
    keyword_streams: Sequence[tuple[StreamScores, Sequence[Placement]]],
    keyword_free: Sequence[StreamScores],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    target_fa_per_hour: float = 0.5,
) -> dict[str, Any]:
    """Per threshold: false reject rate on the keyword streams, false accepts per hour on the
    keyword-free audio (and on the keyword streams, counted apart); the lowest threshold whose
    keyword-free false accepts per hour are at most ``target_fa_per_hour``. Each row's
    ``misses`` splits its false rejects by cause (module doc): ``below_threshold`` (the model),
    ``outranked`` (another label led), ``refractory`` (the rest: the detector was quiet)."""
    placed = sum(len(p) for _, p in keyword_streams)
    free_hours = sum(s.duration_s for s in keyword_free) / 3600
    kw_hours = sum(s.duration_s for s, _ in keyword_streams) / 3600
    hits = dict.fromkeys(thresholds, 0)
    kw_fa = dict.fromkeys(thresholds, 0)
    free_fa = dict.fromkeys(thresholds, 0)
    causes = {p: np.zeros(3, np.int64) for p in thresholds}
    outcomes = [
        (placements, _stream_outcomes(config, s, placements, thresholds, tolerance_s))
        for s, placements in keyword_streams
    ]
    for _, per_threshold in outcomes:
        for p, (hit, fa, why) in per_threshold.items():
            hits[p] += sum(hit)
            kw_fa[p] += fa
            causes[p] += miss_causes(why)
    for s in keyword_free:
        for p, found in sweep(config, s.scores, thresholds).items():
            free_fa[p] += len(found)
    rows = []
    for p in thresholds:
        rows.append(
            {
                "threshold": p,
                "false_reject_rate": (placed - hits[p]) / placed if placed else None,
                "false_accepts": free_fa[p],
                "false_accepts_per_hour": free_fa[p] / free_hours if free_hours else None,
                "keyword_stream_false_accepts": kw_fa[p],
                "misses": {
                    "below_threshold": int(causes[p][0]),
                    "outranked": int(causes[p][1]),
                    # hittable but not hit (a hit needs its keyword leading at >= the need)
                    "refractory": int(causes[p][2] - hits[p]),
                },
            }
        )
    ok = [r for r in rows if r["false_accepts_per_hour"] is not None]
    ok = [r for r in ok if r["false_accepts_per_hour"] <= target_fa_per_hour]
    at_target = min(ok, key=lambda r: r["threshold"]) if ok else None
    if at_target is not None:
        t = at_target["threshold"]
        missed = [
            m
            for placements, per_threshold in outcomes
            for m in _missed(placements, per_threshold[t][0], per_threshold[t][2])
        ]
        at_target = at_target | {
            "missed": missed,
            "by_speaker": misses_by_speaker(keyword_streams, missed),
        }
    return {
        "keywords_placed": placed,
        "keyword_stream_hours": round(kw_hours, 4),
        "keyword_free_hours": round(free_hours, 4),
        "tolerance_s": tolerance_s,
        "target_false_accepts_per_hour": target_fa_per_hour,
        "at_target": at_target,
        "thresholds": rows,
    }
