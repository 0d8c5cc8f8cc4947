"""``tfkws export --streaming`` and ``tfkws detect`` with the exported step model.

A tiny DS-CNN with ``time_padding="valid"`` trained on tone "keywords" is exported with
``--streaming``: the window twin and the step model share int8 params per tensor, so the step
model run step by step in TFLM (int8 state fed back) scores exactly what the window model scores
on the same windows, and ``tfkws detect`` finds the same detections (label, time, score) with
either (the window model at hop = the step's frames). A model that cannot stream is refused in
one line naming the run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from streaming_helpers import SR, TONES, noise, tone, train_tone_kws_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The window twin's path (the step model is beside it as ``tones_step.tflite``)."""
    from tfkws.cli.main import main

    tmp = tmp_path_factory.mktemp("step_model")
    run = train_tone_kws_model(tmp, {"time_padding": "valid"}, export=False)
    out = tmp / "tones.tflite"
    assert main(["export", f"--run={run}", f"--out={out}", "--streaming"]) == 0
    return out


def _write_stream(path: Path) -> None:
    """12 s of noise with tone keywords and an unknown tone; the last 1.5 s quiet."""
    rng = np.random.default_rng(11)
    audio = noise(rng, 12 * SR, 0.01)
    for label, start_s in [("high", 1.2), ("low", 3.5), ("_unknown_", 5.6), ("low", 7.4)]:
        length = int(0.4 * SR)
        start = int(start_s * SR)
        audio[start : start + length] += tone(rng, TONES[label], length)
    audio[int(9.9 * SR) : int(10.3 * SR)] += tone(rng, TONES["high"], int(0.4 * SR))
    sf.write(path, audio, SR, subtype="PCM_16")


def test_export_writes_the_step_model_and_its_facts(exported: Path) -> None:
    from firmware_gen.model import parse_model
    from firmware_gen.step_model import step_model
    from tfkws.conversion.export import load_metadata

    step = exported.with_name("tones_step.tflite")
    window_meta, meta = load_metadata(exported), load_metadata(step)
    s = meta["streaming"]
    assert window_meta["streaming"] == {
        "form": "window",
        "ranges": "pinned",
        "step_model": step.name,
    }
    assert s["form"] == "external_state" and s["window_model"] == exported.name
    info = parse_model(step.read_bytes())
    # frames in, logits out; every other input is fed by the output paired with it
    assert len(info.input_tensors) == len(info.output_tensors) == len(s["states"]) + 1 >= 3
    assert meta["input"]["shape"] == [1, s["frames_per_step"], 40]
    assert meta["output"]["shape"] == [1, 4] == window_meta["output"]["shape"]
    assert meta["input"]["scale"] == window_meta["input"]["scale"]
    facts = step_model(info, meta, str(step))  # what firmware_gen reads: checked against the file
    assert facts is not None and facts.total_state_bytes == s["state_bytes"] > 0
    assert s["warmup_steps"] * s["frames_per_step"] < s["window_frames"] == 49


def test_step_model_scores_and_detections_equal_the_window_model(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from tfkws.cli.main import main
    from tfkws.conversion.export import load_metadata
    from tfkws.features.stream import stream_features
    from tfkws.streaming.detect_audio import StreamSettings, detect_audio
    from tfkws.streaming.sliding_window import run_sliding_window
    from tfkws.streaming.step_stream import run_step_model
    from tfkws.verification.evaluate import features_for, quantize_input

    stream = tmp_path / "stream.wav"
    _write_stream(stream)
    step = exported.with_name("tones_step.tflite")
    meta = load_metadata(step)
    hop = meta["streaming"]["frames_per_step"]
    fc = features_for(meta)
    from tfkws.data.audio import load_audio

    frames = quantize_input(stream_features(load_audio(stream, SR), fc), meta)
    window = run_sliding_window(exported.read_bytes(), frames, hop)
    steps, invokes = run_step_model(step.read_bytes(), frames, meta["streaming"])
    assert invokes == len(frames) // hop
    n = len(window.scores)
    # the step model's windows: the sliding window's, plus one whose unread last frame is past
    # the end of the stream when the frame count is even
    assert len(steps.scores) - n in (0, 1) and n > 200
    np.testing.assert_array_equal(steps.end_frames[:n], window.end_frames)
    np.testing.assert_array_equal(steps.scores[:n], window.scores)
    assert np.unique(window.scores).size > 20  # varied scores, not a constant

    settings = StreamSettings(threshold=0.6)
    got = detect_audio(step, stream, settings)
    hop_ms = hop * fc.window_stride_ms
    want = detect_audio(exported, stream, StreamSettings(threshold=0.6, hop_ms=hop_ms))
    assert got["form"] == "step" and want["form"] == "sliding window"
    assert [d["label"] for d in got["detections"]] == ["high", "low", "low", "high"]
    assert got["detections"] == want["detections"]
    assert got["detector"] == want["detector"] and got["hop_ms"] == hop_ms
    assert got["invokes"] == invokes and got["features_sha256"] == want["features_sha256"]

    out = tmp_path / "det.json"
    assert main(["detect", f"--model={step}", f"--audio={stream}", f"--json={out}"]) == 0
    assert "4 detection(s)" in capsys.readouterr().out
    assert json.loads(out.read_text())["input_shape"] == [1, hop, 40]
    argv = ["detect", f"--model={step}", f"--audio={stream}", f"--hop_ms={hop_ms + 20}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"runs every {hop_ms} ms" in err and len(err.strip().splitlines()) == 1


def test_export_streaming_refuses_a_model_that_cannot_stream(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from tfkws.cli.main import main

    run = train_tone_kws_model(tmp_path, epochs=1, export=False)  # time_padding="same"
    out = tmp_path / "m.tflite"
    assert main(["export", f"--run={run}", f"--out={out}", "--streaming"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"{run}: model ds_cnn cannot stream" in err and "time_padding=valid" in err
    assert not list(tmp_path.glob("*.tflite")) and not list(tmp_path.glob("*.json"))
