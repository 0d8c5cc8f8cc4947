"""Per-keyword thresholds (``tfkws.streaming.threshold_tuning``).

Their measurement must be exactly the detector's (per-label thresholds, refractory, gates); the
greedy must spend the false-accept budget where it recovers most hits; and on streams where one
keyword is confused with distractor speech and another is spoken softly, per-keyword thresholds
must keep both where one threshold for all cannot.
"""

from __future__ import annotations

import numpy as np
import pytest

from tfkws.streaming.detector import detect, make_config
from tfkws.streaming.stream_build import Placement
from tfkws.streaming.stream_scoring import StreamScores, match
from tfkws.streaming.threshold_tuning import (
    greedy,
    measure,
    split_keyword_free,
    split_placements,
    tune_thresholds,
)

LABELS = ["_silence_", "_unknown_", "a", "b", "c"]
STEP_S = 0.04


def _times(n: int) -> np.ndarray:
    return 1.0 + STEP_S * np.arange(n)


def _random_scores(rng: np.random.Generator, steps: int) -> np.ndarray:
    x = rng.integers(-60, 20, (steps, len(LABELS)))
    for start in rng.integers(0, steps - 20, steps // 15):
        x[start : start + rng.integers(3, 15), rng.integers(len(LABELS))] += rng.integers(40, 120)
    return np.clip(x, -128, 127).astype(np.int8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_measure_is_exactly_the_detector_with_per_label_thresholds(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 1500
    scores, free = _random_scores(rng, n), _random_scores(rng, n)
    times = _times(n)
    placements = [
        Placement(str(rng.choice(["a", "b", "c"])), float(t), float(t) + 0.4)
        for t in np.sort(rng.choice(times[:-30], 40, replace=False))
    ]
    probs = {"a": 0.45, "b": 0.7, "c": 0.9}
    cfg = make_config(LABELS, 0.1, -20, threshold=probs, window=3, refractory=8)
    got = measure(
        cfg,
        [(StreamScores(scores, times, n * STEP_S), placements)],
        [StreamScores(free, times, n * STEP_S)],
        [probs.get(x) for x in LABELS],
    )
    dets = [(float(times[d.step]), d.label) for d in detect(cfg, scores)]
    hits = match(dets, placements)[0]
    assert got["false_reject_rate"] == pytest.approx(1 - hits / len(placements))
    assert got["false_accepts"] == len(detect(cfg, free)) > 0
    assert 0 < hits < len(placements)


def test_greedy_spends_the_budget_where_it_recovers_most() -> None:
    # candidates high -> low; keyword 0 recovers 2 misses for free, then 3 more for 2 FAs;
    # keyword 1 would need 5 FAs to recover anything
    misses = np.array([[5, 3, 0], [4, 4, 0]])
    fas = np.array([[0, 0, 2], [0, 1, 5]])
    assert greedy(misses, fas, budget=2) == [2, 0]
    assert greedy(misses, fas, budget=1) == [1, 0]
    assert greedy(misses, fas, budget=7) == [2, 2]
    # over the budget at the top already: a lowering that adds no false accept is still taken
    assert greedy(np.array([[3, 1, 0]]), np.array([[2, 2, 5]]), budget=1) == [1]


def test_splits_alternate_placements_and_halve_keyword_free_audio() -> None:
    ps = [Placement("a", float(t), float(t) + 0.5) for t in (9, 1, 5, 3, 7)]
    tune, held = split_placements(ps)
    assert [p.start for p in tune] == [1, 5, 9] and [p.start for p in held] == [3, 7]
    s = StreamScores(np.zeros((100, 5), np.int8), _times(100), 100 * STEP_S + 1.0)
    a, b = split_keyword_free(s)
    assert a.scores.shape[0] == b.scores.shape[0] == 50
    assert a.duration_s + b.duration_s == pytest.approx(s.duration_s)


def _level_rows(n: int) -> np.ndarray:
    """int8 rows read as probability levels (softmax off, zero point -128): silence leads."""
    x = np.full((n, len(LABELS)), -128, np.int8)
    x[:, 0] = 122  # level 250
    return x


def _word(x: np.ndarray, at: int, label: str, level: int) -> None:
    x[at : at + 8] = -128
    x[at : at + 8, LABELS.index(label)] = level - 128


def test_per_keyword_thresholds_keep_a_soft_keyword_that_one_threshold_loses() -> None:
    # keyword streams: "a" always reaches only 0.70, "b" 0.99; keyword-free audio: distractor
    # speech that "b" scores 0.90 (a confusable word), "a" never fires there
    n_words, every = 40, 75  # a word every 3 s
    n = n_words * every + 50
    kw = _level_rows(n)
    times = _times(n)
    placements = []
    for i in range(n_words):
        label = "ab"[i % 4 // 2]  # a a b b ...: both halves get both keywords
        at = 20 + i * every
        _word(kw, at, label, 179 if label == "a" else 253)
        placements.append(Placement(label, float(times[at]) - 0.3, float(times[at + 7])))
    free = _level_rows(4 * n)
    for at in range(30, 4 * n - 20, 150):
        _word(free, at, "b", 230)  # 0.898
    free_s = StreamScores(free, _times(4 * n), 4 * n * STEP_S)
    cfg = make_config(LABELS, 1 / 256, -128, softmax=False, window=3, refractory=25)
    cands = [round(x, 3) for x in np.arange(0.3, 0.991, 0.01)]
    rep = tune_thresholds(
        cfg, [(StreamScores(kw, times, n * STEP_S), placements)], [free_s], cands, 0.5, margin=0.0
    )
    assert rep["thresholds"]["a"] <= 0.69 and rep["thresholds"]["b"] >= 0.9  # b's 230 < 0.9 x 256
    assert rep["thresholds"]["c"] == max(cands)  # nothing to recover: stays at the top
    assert rep["held_out"]["false_reject_rate"] == 0.0
    assert rep["held_out"]["false_accepts"] == 0
    assert rep["tuning"]["false_accepts"] <= rep["tuning_budget_false_accepts"]
    # one threshold for all must sit at 0.90 or above for the budget, and so loses every "a"
    assert rep["single_threshold"] >= 0.9
    assert rep["single_held_out"]["false_reject_rate"] == pytest.approx(0.5)
    assert rep["thresholds_flag"].startswith("a=")
    # with a margin, b must clear its distractors' 0.898 by 0.05 on the tuning half
    kw_s = [(StreamScores(kw, times, n * STEP_S), placements)]
    wide = tune_thresholds(cfg, kw_s, [free_s], cands, 0.5, margin=0.05)
    assert wide["thresholds"]["b"] >= 0.95 > rep["thresholds"]["b"]
    assert wide["thresholds"]["a"] <= 0.69 and wide["margin"] == 0.05
