"""benchmarks/streaming.py's bookkeeping: run names per training data, a stale window model."""

from __future__ import annotations

import argparse
import os
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import streaming  # noqa: E402


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    streaming.add_args(p)
    return p.parse_args(list(argv))


def test_a_vocabulary_gets_its_own_runs_and_streams():
    assert streaming.tag(_args("--family", "repcnn")) == "repcnn"
    a = streaming.tag(_args("--family", "repcnn", "--keywords", "yes,no,up"))
    b = streaming.tag(_args("--family", "repcnn", "--keywords", "up, yes,no"))
    c = streaming.tag(_args("--family", "repcnn", "--keywords", "yes,no,down"))
    assert a == b and a.startswith("repcnn_kw3_") and a != c
    mined = _args("--family", "repcnn", "--keywords", "yes", "--hard_negatives", "12")
    assert streaming.tag(mined, mined=False) + "_hn12" == streaming.tag(mined)


def test_weighed_positives_get_their_own_runs():
    base = streaming.tag(_args("--family", "repcnn", "--keywords", "yes"))
    more = _args("--family", "repcnn", "--keywords", "yes", "--keyword_repeat", "5")
    synth = _args("--family", "repcnn", "--keywords", "yes", "--synth_keywords", "300")
    assert streaming.tag(more) == base + "_pos5"
    assert streaming.tag(synth) == base + "_sk300"
    assert streaming.tag(_args("--family", "repcnn", "--keyword_repeat", "1")) == "repcnn"


def test_window_model_is_exported_again_after_more_training(tmp_path, monkeypatch):
    import tfkws.conversion.export as export

    exported = []

    def fake_export(run_dir, path, **_):
        exported.append(path)
        Path(path).write_bytes(b"model %d" % len(exported))

    monkeypatch.setattr(export, "export_run", fake_export)
    weights = tmp_path / "best_weights.h5"
    weights.write_bytes(b"w")
    args = _args()
    window = streaming.window_model(tmp_path, args)
    assert streaming.window_model(tmp_path, args) == window and len(exported) == 1
    later = window.stat().st_mtime_ns + 10**9
    os.utime(weights, ns=(later, later))  # the run resumed to more epochs
    streaming.window_model(tmp_path, args)
    assert len(exported) == 2 and window.read_bytes() == b"model 2"


def test_gated_detector_fires_only_for_the_vocabulary():
    import pytest
    import vocabulary_gating

    from tfkws.streaming.detect_audio import detector_config
    from tfkws.streaming.stream_scoring import keyword_indices

    meta = {
        "labels": ["_silence_", "_unknown_", "no", "up", "yes"],
        "feature_config": {"window_stride_ms": 20},
        "output": {"scale": 0.1, "zero_point": 0},
    }
    config = detector_config(meta, vocabulary_gating.gated_settings(meta, ["yes", "no"], 120, 40))
    assert [config.labels[i] for i in keyword_indices(config)] == ["no", "yes"]
    assert config.gated == (True, True, False, True, False)  # "up" blocks like _unknown_
    assert config.window == 3
    with pytest.raises(SystemExit, match="no label left"):
        vocabulary_gating.gated_settings(meta, ["yes", "left"], 120, 40)


def test_gating_measures_several_stream_seeds_together(tmp_path, monkeypatch):
    """--seeds: every seed's placements and keyword-free hours in one sweep."""
    import json

    import numpy as np
    import vocabulary_gating

    import tfkws.conversion.export as export
    from tfkws.streaming.stream_build import Placement
    from tfkws.streaming.stream_scoring import StreamScores

    meta = {
        "labels": ["_silence_", "_unknown_", "no", "yes"],
        "feature_config": {"window_stride_ms": 20},
        "output": {"scale": 1 / 256, "zero_point": -128},
    }
    monkeypatch.setattr(export, "load_metadata", lambda _: meta)
    steps = np.arange(300) * 0.04

    def fake_streams(labels, args):
        folder = tmp_path / f"streams_seed{args.seed}"
        info = {"folder": str(folder), "other_word_distractors": 1}
        return [args.seed], [], info | {"english_distractors": 1, "synthetic_distractors": 1}

    def fake_scores(model, meta, kw, free, args):
        seed = kw[0]
        q = np.full((300, 4), -128, np.int8)
        q[:, 1] = 127  # _unknown_ leads everywhere but where "yes" is said
        placed = []
        for n, k in enumerate((100 + 10 * seed, 200 + 10 * seed)):
            q[k : k + 10, 1], q[k : k + 10, 3] = -128, 127
            placed.append(Placement("yes", steps[k] - 0.3, steps[k] + 0.1, f"s{seed}_NO_{n}.flac"))
        free_scores = StreamScores(np.tile(q[:1], (300, 1)), steps, 1800.0)
        return [(StreamScores(q, steps, 12.0), placed)], [free_scores]

    monkeypatch.setattr(streaming, "streams", fake_streams)
    monkeypatch.setattr(vocabulary_gating, "score_streams", fake_scores)
    argv = ["--keywords", "yes", "--seeds", "0,1", "--smoothing_ms", "40", "--out", str(tmp_path)]
    assert vocabulary_gating.main([*argv, "--name", "g"]) == 0
    res = json.loads((tmp_path / "g.json").read_text())
    row = res["rows"][0]
    assert row["keywords_placed"] == 4 and row["keyword_free_hours"] == 1.0
    assert row["at_target"]["false_reject_rate"] == 0.0
    assert row["at_target"]["by_speaker"] == {"s0": {"placed": 2, "missed": 0}} | {
        "s1": {"placed": 2, "missed": 0}
    }
    assert res["settings"]["seeds"] == [0, 1]
    assert "streams_seed0`, `streams_seed1" in (tmp_path / "g.md").read_text()


def test_seeds_get_their_own_runs_and_train_seed_trains_only_the_final_run():
    base = _args("--family", "repcnn", "--hard_negatives", "12")
    assert streaming.tag(base) == "repcnn_hn12"
    other = _args("--family", "repcnn", "--hard_negatives", "12", "--seed", "1")
    assert streaming.tag(other) == "repcnn_hn12_seed1"
    assert streaming.tag(other, mined=False) == "repcnn_seed1"
    ts = _args("--family", "repcnn", "--hard_negatives", "12", "--train_seed", "1")
    # the mining run is the --seed run: its mined windows are shared by every train seed
    assert streaming.tag(ts, mined=False) == "repcnn"
    assert streaming.tag(ts) == "repcnn_hn12_ts1"
    same = _args("--family", "repcnn", "--train_seed", "0")
    assert streaming.tag(same) == "repcnn"
    assert streaming.tag(_args("--family", "repcnn", "--train_seed", "2")) == "repcnn_ts2"
    sp = _args("--family", "repcnn", "--hard_negatives", "12", "--speed_perturb", "0.15",
               "--final_speed_perturb", "0.3")  # fmt: skip
    assert streaming.tag(sp, mined=False) == "repcnn"
    assert streaming.tag(sp) == "repcnn_hn12_sp30"


def test_train_seed_and_final_speed_reach_the_final_run_only(tmp_path, monkeypatch):
    import tfkws.data.dataset as dataset

    ds = types.SimpleNamespace(splits={"training": []})
    monkeypatch.setattr(dataset, "open_dataset", lambda *a, **k: ds)
    monkeypatch.setattr(streaming, "training_dataset", lambda *a, **k: ds)
    monkeypatch.setattr(streaming, "training_reversed", lambda *a: [])
    monkeypatch.setattr(streaming, "training_synth", lambda *a: [])
    seeds = {}

    def train_run(model, params, data, args, run_dir):
        seeds[run_dir.name] = (args.seed, args.speed_perturb)
        return {}

    monkeypatch.setattr(streaming.common, "train_run", train_run)
    args = _args("--family", "repcnn", "--hard_negatives", "12", "--train_seed", "3",
                 "--speed_perturb", "0.15", "--final_speed_perturb", "0.3")  # fmt: skip
    args.work_dir = tmp_path
    streaming.train_model(args)
    streaming.train_model(args, hard=["x.wav"])
    assert seeds == {
        "repcnn_valid_stateless": (0, 0.15),
        "repcnn_hn12_ts3_sp30_valid_stateless": (3, 0.3),
    }
    assert (args.seed, args.speed_perturb) == (0, 0.15)  # the data seed is left alone


def test_faster_clip_shortens_the_word_only():
    import numpy as np

    rng = np.random.default_rng(0)
    clip = (1e-3 * rng.standard_normal(16000)).astype(np.float32)
    t = np.arange(8000) / 16000
    word = 0.3 * np.sin(2 * np.pi * 300 * t) * np.hanning(8000)
    clip[4000:12000] += word.astype(np.float32)
    fast = streaming.faster_clip(clip, 1.6)
    assert fast.shape == clip.shape and fast.dtype == np.float32
    loud = np.nonzero(np.abs(fast) > 0.05)[0]
    orig = np.nonzero(np.abs(clip) > 0.05)[0]
    # the word takes 1/1.6 of its time, from where it started; the rest is the clip's quiet
    assert abs((loud[-1] - loud[0]) - (orig[-1] - orig[0]) / 1.6) < 800
    assert abs(loud[0] - orig[0]) < 800
    assert np.abs(fast[loud[-1] + 800 :]).max() < 0.02  # the quiet: < -24 dB of the word
    # as loud as it was: the same energy per second of word
    rms = lambda x: np.sqrt(np.mean(x[x.size // 4 : -x.size // 4] ** 2))  # noqa: E731
    np.testing.assert_allclose(
        rms(fast[loud[0] : loud[-1]]), rms(clip[orig[0] : orig[-1]]), rtol=0.2
    )


def test_faster_keywords_are_written_once_and_named(tmp_path, monkeypatch):
    import numpy as np
    import soundfile as sf

    from tfkws.data.example import Example

    wav = tmp_path / "yes_1.wav"
    sf.write(wav, np.zeros(16000, np.float32), 16000)
    ds = types.SimpleNamespace(
        splits={"training": [Example(str(wav), "yes"), Example(str(wav), "_unknown_")]}
    )
    monkeypatch.setattr(streaming.dataclasses, "replace", lambda d, splits: splits)
    got = streaming.with_faster_keywords(
        types.SimpleNamespace(splits={"training": []}), ds, [1.25, 1.5], tmp_path / "w"
    )
    assert [Path(e.path).parent.parent.name for e in got["training"]] == ["x125", "x150"]
    assert all(e.label == "yes" and Path(e.path).exists() for e in got["training"])
    assert streaming.tag(_args("--family", "repcnn", "--keyword_tempo", "1.25,1.5")) == (
        "repcnn_tempo125-150"
    )
