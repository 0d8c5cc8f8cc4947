"""Per-keyword thresholds for a target false-accept rate, tuned on half the streams, measured on
the other half.

With one threshold for every keyword, the keyword that false-accepts most sets it for all: on
Arabic Speech Commands streams a few keywords (those that sound like English distractor words)
make most false accepts. Per-keyword thresholds (``tfkws detect --thresholds``, the C detector's
table) lower the rest. Tuning them on the audio they are measured on would flatter them, so:

- **split**: a stream's keyword placements alternate (in time order) between a tuning and a
  held-out half; each keyword-free recording is cut in two at its middle step (two detectors);
- **tables**: per keyword and candidate threshold, the tuning placements of that keyword missed
  and the false accepts on the tuning keyword-free half with only that keyword able to fire
  (the detector's leading-label rule unchanged);
- **margin**: a threshold set just above a keyword's own highest tuning false accept fits that
  audio too closely: with 40 keywords, each such edge lets new false accepts through on other
  audio (measured on Arabic Speech Commands streams, 240 ms smoothing: 1 false accept in the
  3 h tuned on, 40 in the 3 h held out). So false accepts on the tuning half are counted at the
  threshold minus ``margin`` (probability);
- **greedy**: every keyword starts at the highest candidate; the move that recovers the most
  tuning hits per added false accept (a keyword's threshold lowered) is taken while the total
  stays within ``target x tuning hours``;
- **measured**: the chosen thresholds together, exactly as the detector runs them, on both
  halves; and, as the baseline, the lowest single threshold that meets the same budget on the
  tuning half, measured on the held-out half the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tfkws.errors import TfkwsError
from tfkws.streaming.detector import DetectorConfig
from tfkws.streaming.stream_build import Placement
from tfkws.streaming.stream_scoring import (
    DEFAULT_TOLERANCE_S,
    StreamScores,
    fire,
    keyword_indices,
    leaders,
    match,
    need_levels,
    sweep,
)

Scored = tuple[StreamScores, Sequence[Placement]]
DEFAULT_MARGIN = 0.05  # probability; benchmarks/results/streaming_repcnn_synth_en30.md


def split_placements(
    placements: Sequence[Placement],
) -> tuple[list[Placement], list[Placement]]:
    """(tuning, held-out): every other placement in time order."""
    ordered = sorted(placements, key=lambda p: p.start)
    return ordered[0::2], ordered[1::2]


def split_keyword_free(free: StreamScores) -> tuple[StreamScores, StreamScores]:
    """A keyword-free recording's scores cut in two at the middle step (each half its own
    detector run); each half's duration is the time its steps span."""
    n = free.scores.shape[0]
    mid = n // 2
    cut_s = float(free.times_s[mid]) if n else free.duration_s / 2
    first = StreamScores(free.scores[:mid], free.times_s[:mid], cut_s)
    second = StreamScores(free.scores[mid:], free.times_s[mid:], free.duration_s - cut_s)
    return first, second


def measure(
    config: DetectorConfig,
    keyword_streams: Sequence[Scored],
    keyword_free: Sequence[StreamScores],
    thresholds: Sequence[float | None],
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> dict[str, Any]:
    """False rejects on the placements and false accepts per hour on the keyword-free audio of
    the detector with one probability per label (None: never fires), exactly as it runs."""
    need = need_levels(config, thresholds)
    labels = config.labels
    placed = hits = 0
    for s, placements in keyword_streams:
        label, best = leaders(config, s.scores)
        dets = [(float(s.times_s[k]), labels[i]) for k, i in fire(config, label, best, need)]
        placed += len(placements)
        hits += match(dets, list(placements), tolerance_s)[0]
    false_accepts = sum(len(fire(config, *leaders(config, s.scores), need)) for s in keyword_free)
    hours = sum(s.duration_s for s in keyword_free) / 3600
    return {
        "placements": placed,
        "false_reject_rate": (placed - hits) / placed if placed else None,
        "false_accepts": false_accepts,
        "hours": round(hours, 4),
        "false_accepts_per_hour": false_accepts / hours if hours else None,
    }


def _tables(
    config: DetectorConfig,
    keyword_streams: Sequence[Scored],
    keyword_free: Sequence[StreamScores],
    candidates: Sequence[float],
    tolerance_s: float,
    margin: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """misses[k, c] and false_accepts[k, c] with only keyword ``k`` firing at ``candidates[c]``
    (false accepts counted at ``margin`` below it)."""
    kws = keyword_indices(config)
    misses = np.zeros((len(kws), len(candidates)), np.int64)
    fas = np.zeros_like(misses)
    lead_kw = [(leaders(config, s.scores), s, p) for s, p in keyword_streams]
    lead_free = [leaders(config, s.scores) for s in keyword_free]
    n = len(config.labels)
    for a, k in enumerate(kws):
        word = config.labels[k]
        mine = [[x for x in placements if x.keyword == word] for _, _, placements in lead_kw]
        for c, p in enumerate(candidates):
            need = need_levels(config, [p if i == k else None for i in range(n)])
            low = max(0.0, p - margin)
            need_fa = need_levels(config, [low if i == k else None for i in range(n)])
            for ((label, best), s, _), its in zip(lead_kw, mine, strict=True):
                dets = [(float(s.times_s[t]), word) for t, _ in fire(config, label, best, need)]
                misses[a, c] += len(its) - match(dets, its, tolerance_s)[0]
            fas[a, c] = sum(len(fire(config, label, best, need_fa)) for label, best in lead_free)
    return misses, fas


def greedy(misses: np.ndarray, fas: np.ndarray, budget: float) -> list[int]:
    """Per keyword, an index into the candidates (sorted high to low): start at 0, repeatedly
    take the lowering with the most misses recovered per added false accept that fits (one
    that adds none always fits, even when the top thresholds already exceed the budget)."""
    at = [0] * misses.shape[0]
    total = int(fas[:, 0].sum())
    while True:
        best_move, best_ratio = None, -1.0
        for k in range(misses.shape[0]):
            for c in range(at[k] + 1, misses.shape[1]):
                gain = int(misses[k, at[k]] - misses[k, c])
                cost = int(fas[k, c] - fas[k, at[k]])
                if gain <= 0 or (cost > 0 and total + cost > budget):
                    continue
                ratio = gain / cost if cost > 0 else float("inf")
                if ratio > best_ratio or (ratio == best_ratio and c > best_move[1]):
                    best_move, best_ratio = (k, c), ratio
        if best_move is None:
            return at
        k, c = best_move
        total += int(fas[k, c] - fas[k, at[k]])
        at[k] = c


def tune_thresholds(
    config: DetectorConfig,
    keyword_streams: Sequence[Scored],
    keyword_free: Sequence[StreamScores],
    candidates: Sequence[float],
    target_fa_per_hour: float = 0.5,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    margin: float = DEFAULT_MARGIN,
) -> dict[str, Any]:
    """Per-keyword thresholds for ``target_fa_per_hour`` (see the module doc): the thresholds,
    the ``--thresholds`` text for ``tfkws detect``, and tuning / held-out measurements of them
    and of the best single threshold. ``margin``: a keyword's false accepts on the tuning half
    are counted at its threshold minus this probability, so that it clears the tuning scores
    by that much (see the module doc)."""
    if not keyword_free:
        raise TfkwsError("per-keyword thresholds need keyword-free audio (false accepts)")
    cands = sorted({float(p) for p in candidates}, reverse=True)
    tune_kw, held_kw = [], []
    for s, placements in keyword_streams:
        a, b = split_placements(placements)
        tune_kw.append((s, a))
        held_kw.append((s, b))
    halves = [split_keyword_free(s) for s in keyword_free]
    tune_free, held_free = [h[0] for h in halves], [h[1] for h in halves]
    tune_hours = sum(s.duration_s for s in tune_free) / 3600
    budget = target_fa_per_hour * tune_hours
    misses, fas = _tables(config, tune_kw, tune_free, cands, tolerance_s, margin)
    picks = greedy(misses, fas, budget)
    kws = keyword_indices(config)
    chosen: list[float | None] = [None] * len(config.labels)
    for a, k in enumerate(kws):
        chosen[k] = cands[picks[a]]
    # the lowest single threshold within the budget on the tuning half
    swept = [sweep(config, s.scores, cands) for s in tune_free]
    single = next((p for p in sorted(cands) if sum(len(d[p]) for d in swept) <= budget), None)
    single_probs = [single if k in kws else None for k in range(len(config.labels))]
    per_kw = {config.labels[k]: chosen[k] for k in kws}
    return {
        "target_false_accepts_per_hour": target_fa_per_hour,
        "tuning_budget_false_accepts": round(budget, 4),
        "margin": margin,
        "thresholds": per_kw,
        "thresholds_flag": ",".join(f"{k}={p:g}" for k, p in per_kw.items()),
        "tuning": measure(config, tune_kw, tune_free, chosen, tolerance_s),
        "held_out": measure(config, held_kw, held_free, chosen, tolerance_s),
        "single_threshold": single,
        "single_held_out": (
            measure(config, held_kw, held_free, single_probs, tolerance_s)
            if single is not None
            else None
        ),
    }
