"""The keyword detector: Python semantics, and the generated C header gives identical detections.

The C side is ``firmware_gen.detector``'s ``NAME_detector.h`` compiled with the host C compiler in
a tiny harness that reads int8 score rows on stdin and prints ``step label sum`` per detection.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from firmware_gen import __version__ as fg_version
from firmware_gen.detector import detector_h
from firmware_gen.errors import FirmwareGenError
from tfkws.errors import TfkwsError
from tfkws.streaming.detector import (
    GATE_OTHERS,
    Detector,
    DetectorConfig,
    detect,
    make_config,
    probability_levels,
    probability_to_level,
)

LABELS = ("_silence_", "_unknown_", "yes", "no")
SCALE, ZP = 1 / 256, -128  # a softmax output tensor
LOGIT_SCALE, LOGIT_ZP = 0.09, 5  # an int8 logit output tensor


def _config(**kw) -> DetectorConfig:
    """A model ending in a softmax unless ``softmax=True`` (logits) is passed."""
    args = {"threshold": 0.8, "window": 3, "refractory": 4, "softmax": False} | kw
    if args["softmax"]:
        return make_config(LABELS, LOGIT_SCALE, LOGIT_ZP, **args)
    return make_config(LABELS, SCALE, ZP, **args)


def _rows(*rows: list[int]) -> np.ndarray:
    return np.array(rows, np.int8)


def test_threshold_levels() -> None:
    level = probability_to_level
    assert level(0.5) == 128 and level(0.0) == 0 and level(1.0) == 255
    assert level(0.8) == 205  # 205 / 256 = 0.8008 >= 0.8 > 204 / 256
    cfg = _config()
    assert cfg.thresholds == (None, None, 205, 205) and cfg.gated == (True, True, False, False)
    with pytest.raises(TfkwsError, match="probability"):
        level(1.5)
    with pytest.raises(TfkwsError, match="no label"):
        _config(threshold={"maybe": 0.5})


def test_fires_when_the_smoothed_score_crosses_and_respects_refractory() -> None:
    lo, hi = -128, 127
    quiet = [hi, lo, lo, lo]  # silence leads
    yes = [lo, lo, hi, lo]
    scores = _rows(*([quiet] * 3 + [yes] * 8 + [quiet] * 3 + [yes] * 3))
    found = detect(_config(), scores)
    # step 3 enters the first yes; the mean of 3 rows crosses 0.8 only with 3 yes rows (step 5);
    # refractory 4 blocks steps 6..9, and step 10 fires again (the keyword is still there)
    assert [(d.step, d.label) for d in found] == [(5, "yes"), (10, "yes"), (16, "yes")]
    assert found[0].sum == 3 * 255 and found[0].score == pytest.approx(255 / 256)


def test_a_gate_label_that_leads_blocks_the_keyword() -> None:
    # yes at 0.81 every step, but unknown higher: nothing fires; then unknown drops
    yes_low_unknown_high = [-128, 100, 80, -128]
    yes_alone = [-128, -128, 80, -128]
    scores = _rows(*([yes_low_unknown_high] * 5 + [yes_alone] * 3))
    # steps 2..4 are blocked; at step 5 the ring holds one yes_alone row and unknown's
    # smoothed score (228 + 228 + 0) falls below yes's (3 x 208 >= 3 x 205)
    assert [d.step for d in detect(_config(), scores)] == [5]
    # without gating the unknown label is ignored: yes fires once the ring is full, and again
    # after the refractory steps 3..6
    assert [d.step for d in detect(_config(gate=[]), scores)] == [2, 7]


def test_gate_others_gates_every_label_without_a_threshold() -> None:
    cfg = _config(threshold={"yes": 0.8}, gate=GATE_OTHERS)
    assert cfg.gated == tuple(lab != "yes" for lab in LABELS)
    assert cfg.thresholds.count(None) == len(LABELS) - 1
    with pytest.raises(TfkwsError, match="gate 'others' needs a threshold per label"):
        _config(gate=GATE_OTHERS)


def test_ties_go_to_the_lower_index_and_no_fires_below_threshold() -> None:
    tie = [-128, -128, 90, 90]
    assert [d.label for d in detect(_config(window=1), _rows(tie))] == ["yes"]
    assert detect(_config(window=1, threshold=0.9), _rows(tie)) == []


def test_bad_scores_and_config_are_one_line_errors() -> None:
    det = Detector(_config())
    with pytest.raises(TfkwsError, match="4 int8 scores"):
        det.step(np.zeros(3, np.int8))
    with pytest.raises(TfkwsError, match="window"):
        _config(window=0)
    with pytest.raises(FirmwareGenError, match="threshold per label"):
        detector_h({**_config().to_spec(), "thresholds": [1]}, "kws", fg_version)


def test_integer_softmax_is_the_softmax_to_a_level() -> None:
    """Levels of logits equal round(256 x softmax) within 1 (the table's rounding), sum ~256."""
    cfg = _config(softmax=True)
    rng = np.random.default_rng(0)
    for _ in range(200):
        q = rng.integers(-128, 128, len(LABELS)).astype(np.int8)
        logits = (q.astype(np.float64) - LOGIT_ZP) * LOGIT_SCALE
        p = np.exp(logits - logits.max())
        p /= p.sum()
        got = probability_levels(cfg, q)
        assert np.all(np.abs(got - np.minimum(np.round(256 * p), 255)) <= 1), (q, got, p)


HARNESS = r"""
#include <stdio.h>
#include "kws_detector.h"
int main(void) {
  kws_detector_state s;
  int8_t row[KWS_DETECTOR_NUM_LABELS];
  int32_t step = 0, total = 0;
  kws_detector_reset(&s);
  while (fread(row, 1, sizeof(row), stdin) == sizeof(row)) {
    int32_t label = kws_detector_step(&s, row, &total);
    if (label >= 0) printf("%d %d %d\n", (int)step, (int)label, (int)total);
    ++step;
  }
  return 0;
}
"""


@pytest.fixture(scope="module")
def c_compiler() -> str:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no host C compiler")
    return cc


def _c_detections(cc: str, tmp: Path, config: DetectorConfig, scores: np.ndarray) -> list:
    (tmp / "kws_detector.h").write_text(detector_h(config.to_spec(), "kws", fg_version))
    (tmp / "main.c").write_text(HARNESS)
    exe = tmp / "det"
    subprocess.run(
        [cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-o", str(exe), str(tmp / "main.c")],
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [str(exe)], input=scores.astype(np.int8).tobytes(), capture_output=True, check=True
    ).stdout.decode()
    return [tuple(int(v) for v in line.split()) for line in out.splitlines()]


def _random_scores(rng: np.random.Generator, steps: int, n: int) -> np.ndarray:
    """Softmax-like int8 rows: one label leads for a random stretch, with noise, and ties."""
    out = np.full((steps, n), -128, np.int16)
    t = 0
    while t < steps:
        length = int(rng.integers(1, 30))
        lead = int(rng.integers(n))
        out[t : t + length] = rng.integers(-128, -60, (min(length, steps - t), n))
        out[t : t + length, lead] = rng.integers(-40, 128, min(length, steps - t))
        t += length
    ties = rng.random(steps) < 0.05
    out[ties, 3] = out[ties, 2]
    return np.clip(out, -128, 127).astype(np.int8)


CASES = [
    {"threshold": 0.8, "window": 3, "refractory": 4},
    {"threshold": 0.5, "window": 1, "refractory": 0},
    {"threshold": {"yes": 0.6, "no": 0.9}, "window": 7, "refractory": 25},
    {"threshold": 0.7, "window": 5, "refractory": 2, "gate": []},
    {"threshold": {"yes": 0.0}, "window": 2, "refractory": 1, "gate": ["_silence_"]},
    {"threshold": 1.0, "window": 64, "refractory": 3},
    {"threshold": 0.8, "window": 3, "refractory": 4, "softmax": True},
    {"threshold": {"yes": 0.5, "no": 0.95}, "window": 6, "refractory": 10, "softmax": True},
    {"threshold": 0.6, "window": 1, "refractory": 0, "softmax": True, "gate": []},
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_c_detector_equals_python(c_compiler: str, tmp_path: Path, case: int) -> None:
    config = _config(**CASES[case])
    rng = np.random.default_rng(case)
    scores = _random_scores(rng, 3000, len(LABELS))
    # a constructed tail: ring warm-up, a saturated keyword, an exact tie at full scale
    tail = np.array([[-128, -128, 127, -128]] * 70 + [[-128, -128, 127, 127]] * 70, np.int8)
    scores = np.concatenate([scores, tail])
    py = [(d.step, d.label_index, d.sum) for d in detect(config, scores)]
    c = _c_detections(c_compiler, tmp_path, config, scores)
    assert c == py
    assert py, "the case should produce detections to compare"


def test_header_is_deterministic_and_names_labels() -> None:
    spec = _config().to_spec()
    a, b = detector_h(spec, "kws", fg_version), detector_h(dict(spec), "kws", fg_version)
    assert a == b
    assert '"_silence_", "_unknown_", "yes", "no"' in a and "KWS_DETECTOR_WINDOW 3" in a


def test_firmware_gen_writes_the_detector_header(tmp_path: Path) -> None:
    """``firmware-gen --detector SPEC.json`` adds ``NAME_detector.h``; a label-count mismatch and
    a bad spec are one-line errors."""
    from firmware_gen_models import tiny_model

    from firmware_gen import atomic
    from firmware_gen.cli import main

    model = tmp_path / "kws.tflite"
    model.write_bytes(tiny_model("conv"))
    outputs = 3  # tiny_model's classes
    spec = make_config(["_silence_", "yes", "no"], LOGIT_SCALE, LOGIT_ZP, window=4).to_spec()
    atomic.write_json(tmp_path / "det.json", spec)
    argv = ["firmware-gen", str(model), "--out", str(tmp_path / "fw")]
    assert main([*argv, "--detector", str(tmp_path / "det.json")]) == 0
    header = (tmp_path / "fw" / "kws_detector.h").read_text()
    assert header == detector_h(spec, "kws", fg_version)
    report = (tmp_path / "fw" / "kws_report.json").read_text()
    assert "kws_detector.h" in report
    atomic.write_json(tmp_path / "det4.json", {**spec, "labels": ["a"] * (outputs + 1)})
    assert main([*argv, "--detector", str(tmp_path / "det4.json")]) == 2
    (tmp_path / "bad.json").write_text("{")
    assert main([*argv, "--detector", str(tmp_path / "bad.json")]) == 2
