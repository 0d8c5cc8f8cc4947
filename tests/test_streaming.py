"""Sliding-window streaming and ``tfkws detect``: stream features, ring, TFLM windows, detections.

The end-to-end test trains a tiny DS-CNN on tone "keywords" (plus noise as ``_silence_`` and
another tone as ``_unknown_``), exports it to int8, writes a 20 s stream with keywords and
unknown tones inserted at known times, and checks ``tfkws detect`` finds each keyword within
0.25 s of its end and nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from streaming_helpers import SR, STATELESS, TONES, noise, tone, train_tone_kws_model

from tfkws.features.config import FeatureConfig
from tfkws.features.extract import compute_features
from tfkws.features.stream import frame_end_seconds, num_stream_frames, stream_features
from tfkws.streaming.ring import FeatureRing


@pytest.mark.parametrize("kind", ["microfrontend", "logmel"])
def test_stream_features_are_causal_frame_by_frame(kind: str) -> None:
    """A prefix of the stream gives a prefix of the frames: frame i depends only on the samples
    before its end (the frontend's state carried frame to frame, as on the device)."""
    cfg = FeatureConfig(kind=kind)
    rng = np.random.default_rng(0)
    audio = noise(rng, 3 * SR + 123, 0.05)
    audio[SR : SR + 8000] += tone(rng, 1000.0, 8000)
    whole = stream_features(audio, cfg)
    assert whole.shape == (num_stream_frames(audio.size, cfg), cfg.num_features)
    for cut in (cfg.window_samples, SR + 4321, 2 * SR):
        part = stream_features(audio[:cut], cfg)
        # the frontend is exact; librosa's float FFT batches round differently by length
        tol = 0 if kind == "microfrontend" else 1e-5
        np.testing.assert_allclose(part, whole[: part.shape[0]], 0, tol)
    # the first 1 s equals a clip's features (same start state); a stateless kind's later
    # windows equal a clip's too, the micro frontend's do not (its state has adapted)
    np.testing.assert_allclose(whole[: cfg.num_frames], compute_features(audio[:SR], cfg), 0, 1e-5)
    s = 10 * cfg.stride_samples
    later = compute_features(audio[s : s + SR], cfg)
    same = np.allclose(whole[10 : 10 + cfg.num_frames], later, atol=1e-5)
    assert same == (kind == "logmel")
    if kind == "microfrontend":  # ... unless its stateful stages are off
        np.testing.assert_array_equal(
            stream_features(audio, STATELESS)[10 : 10 + cfg.num_frames],
            compute_features(audio[s : s + SR], STATELESS),
        )
    assert frame_end_seconds(0, cfg) == pytest.approx(0.03)


def test_feature_ring_gives_the_last_frames_in_order() -> None:
    ring = FeatureRing(3, 2)
    for t in range(7):
        ring.push(np.full(2, t, np.int8))
        assert ring.full == (t >= 2)
    np.testing.assert_array_equal(ring.window()[:, 0], [4, 5, 6])


def test_sliding_window_scores_equal_full_window_runs() -> None:
    """Every Invoke of the sliding window equals the model run on that window alone."""
    from firmware_gen_models import tiny_model

    from tfkws.streaming.sliding_window import run_sliding_window
    from tfkws.verification.tflm import run_tflm

    model = tiny_model("conv")  # input [1, 12, 10, 1]
    frames = np.random.default_rng(1).integers(-128, 128, (40, 10)).astype(np.int8)
    got = run_sliding_window(model, frames, hop=3)
    assert list(got.end_frames) == list(range(11, 40, 3))
    ref = run_tflm(model, np.stack([frames[e - 11 : e + 1, :, None] for e in got.end_frames]))
    np.testing.assert_array_equal(got.scores, ref.reshape(len(ref), -1))


@pytest.fixture(scope="module")
def tone_kws_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tone_kws_model(tmp_path_factory.mktemp("stream_model"))


def _write_stream(path: Path) -> list[tuple[str, float]]:
    """20 s of noise with keywords and unknown tones; (label, end time in s) of each insert."""
    rng = np.random.default_rng(7)
    audio = noise(rng, 20 * SR, 0.01)
    inserted = []
    for label, start_s in [
        ("high", 1.6),
        ("low", 4.0),
        ("_unknown_", 6.5),
        ("high", 9.0),
        ("_unknown_", 11.3),
        ("low", 13.7),
        ("high", 16.0),
        ("low", 18.2),
    ]:
        length = int(0.4 * SR)
        start = int(start_s * SR)
        audio[start : start + length] += tone(rng, TONES[label], length)
        inserted.append((label, (start + length) / SR))
    sf.write(path, audio, SR, subtype="PCM_16")
    return inserted


def test_detect_finds_every_keyword_near_its_end_and_nothing_else(
    tone_kws_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from tfkws.cli.main import main

    stream = tmp_path / "stream.wav"
    inserted = _write_stream(stream)
    out = tmp_path / "det.json"
    spec = tmp_path / "spec.json"
    argv = ["detect", f"--model={tone_kws_model}", f"--audio={stream}", f"--json={out}"]
    code = main([*argv, f"--detector_spec={spec}", "--threshold=0.6"])
    printed, err = capsys.readouterr()
    assert code == 0, err
    rep = json.loads(out.read_text())
    got = [(d["label"], d["time_s"]) for d in rep["detections"]]
    want = [(label, end) for label, end in inserted if not label.startswith("_")]
    assert [g[0] for g in got] == [w[0] for w in want], (got, want)
    for (_, t), (_, end) in zip(got, want, strict=True):
        assert abs(t - end) <= 0.25, (got, want)
    assert all(d["score"] >= 0.6 for d in rep["detections"])
    assert f"{len(want)} detection(s)" in printed and "high" in printed
    assert json.loads(spec.read_text()) == rep["detector"]
    assert rep["detector"]["labels"] == ["_silence_", "_unknown_", "high", "low"]


def test_detect_listens_for_some_keywords_with_the_others_gated(
    tone_kws_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """``--thresholds high=p --gate others``: only ``high`` fires; ``low`` blocks like
    ``_unknown_`` (a model of every word listening for a device vocabulary)."""
    from tfkws.cli.main import main

    stream = tmp_path / "stream.wav"
    inserted = _write_stream(stream)
    out = tmp_path / "det.json"
    argv = ["detect", f"--model={tone_kws_model}", f"--audio={stream}", f"--json={out}"]
    assert main([*argv, "--thresholds=high=0.6", "--gate=others"]) == 0, capsys.readouterr().err
    rep = json.loads(out.read_text())
    assert rep["detector"]["gated"] == [True, True, False, True]
    got = [d["label"] for d in rep["detections"]]
    assert got == [label for label, _ in inserted if label == "high"]
    assert main([*argv, "--gate=others"]) == 2
    assert "--gate others needs --thresholds" in capsys.readouterr().err


def test_detect_errors_are_one_line(
    tone_kws_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from tfkws.cli.main import main

    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    assert main(["detect", f"--model={tone_kws_model}", f"--audio={bad}"]) == 2
    err = capsys.readouterr().err
    assert "bad.wav: cannot read audio" in err and len(err.strip().splitlines()) == 1
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(SR // 2, np.float32), SR)
    assert main(["detect", f"--model={tone_kws_model}", f"--audio={short}"]) == 2
    assert "shorter than the model's window" in capsys.readouterr().err
    model = tmp_path / "nometa.tflite"
    model.write_bytes(tone_kws_model.read_bytes())
    assert main(["detect", f"--model={model}", f"--audio={short}"]) == 2
    assert "no tfkws metadata" in capsys.readouterr().err
    argv = ["detect", f"--model={tone_kws_model}", f"--audio={short}", "--thresholds=high"]
    assert main(argv) == 2
    assert "label=probability" in capsys.readouterr().err
