"""``tfkws stream-eval``: stream building, chunked features, the threshold sweep, the report.

The sweep must give exactly the detector's detections at every threshold; built streams must put
keywords where their labels say; chunked features must equal one pass for a stateless frontend.
End to end, the tone model of ``test_streaming`` finds every keyword of a built stream with no
false accept at a moderate threshold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from streaming_helpers import STATELESS, TONES, tone, train_tone_kws_model

from tfkws.errors import TfkwsError
from tfkws.streaming.detector import detect, make_config
from tfkws.streaming.stream_build import (
    Placement,
    StreamRecipe,
    read_labels,
    trim_speech,
    write_labels,
    write_stream,
)
from tfkws.streaming.stream_scoring import (
    StreamScores,
    evaluate,
    match,
    missed_placements,
    misses_by_speaker,
    sweep,
)

SR = 16000


@pytest.fixture(scope="module")
def tone_kws_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tone_kws_model(tmp_path_factory.mktemp("stream_model"))


def _scores(rng: np.random.Generator, steps: int, labels: int) -> np.ndarray:
    """int8 logits with runs where one label leads, as a model's outputs over a stream."""
    x = rng.integers(-60, 20, (steps, labels))
    for start in rng.integers(0, steps - 20, steps // 15):
        x[start : start + rng.integers(3, 15), rng.integers(labels)] += rng.integers(40, 120)
    return np.clip(x, -128, 127).astype(np.int8)


@pytest.mark.parametrize("window, refractory", [(1, 0), (3, 5), (5, 12)])
def test_sweep_equals_the_detector_at_every_threshold(window: int, refractory: int) -> None:
    rng = np.random.default_rng(window)
    labels = ["_silence_", "_unknown_", "a", "b", "c"]
    scores = _scores(rng, 600, len(labels))
    thresholds = [0.3, 0.45, 0.6, 0.75, 0.9]
    base = make_config(labels, 0.1, -20, window=window, refractory=refractory)
    got = sweep(base, scores, thresholds)
    total = 0
    for p in thresholds:
        cfg = make_config(labels, 0.1, -20, threshold=p, window=window, refractory=refractory)
        want = [(d.step, d.label_index) for d in detect(cfg, scores)]
        assert got[p] == want, p
        total += len(want)
    assert total > 20  # the scores do make detections


def test_match_counts_hits_once_and_the_rest_as_false_accepts() -> None:
    placements = [Placement("a", 1.0, 1.5), Placement("b", 4.0, 4.6), Placement("a", 8.0, 8.4)]
    dets = [(1.7, "a"), (1.9, "a"), (4.5, "a"), (4.9, "b"), (6.0, "b"), (9.5, "a")]
    # 1.7 hits; 1.9 a second detection; 4.5 wrong keyword; 4.9 hits; 6.0 nothing near;
    # 9.5 too late for the word ending at 8.4 (tolerance 0.5 s)
    assert match(dets, placements, 0.5) == (2, 4)
    assert match(dets, placements, 1.2) == (3, 3)


def test_false_rejects_split_by_cause() -> None:
    """Four placed words: one the model scores too low, one another label outranks, one the
    detector misses while refractory after a false accept just before it, one hit."""
    labels = ["_unknown_", "a", "b"]
    # no softmax, zero point -128: the int8 score q is probability level q + 128
    cfg = make_config(labels, 1 / 256, -128, softmax=False, window=1, refractory=5)
    lv = np.zeros((100, 3), np.int64)
    lv[10:14, 1] = 50  # "a" at 1.0-1.5 s: below any threshold from 0.2 up
    lv[30:34, 1], lv[30:34, 2] = 150, 200  # "a" at 3.0-3.5 s: "b" leads
    lv[59, 2] = 200  # a "b" false accept at 5.9 s ...
    lv[60:63, 1] = 150  # ... so "a" at 6.0-6.5 s falls in its refractory steps
    lv[82, 2] = 200  # "b" at 8.0-8.5 s: hit
    stream = StreamScores((lv - 128).astype(np.int8), np.arange(100) * 0.1, 10.0)
    placements = [
        Placement("a", 1.0, 1.5, "d/a/s1_NO_01.flac"),
        Placement("a", 3.0, 3.5, "d/a/s2_NO_01.flac"),
        Placement("a", 6.0, 6.5, "d/a/s2_NO_02.flac"),
        Placement("b", 8.0, 8.5, "d/b/s1_NO_01.flac"),
    ]
    rep = evaluate(cfg, [(stream, placements)], [], [0.3, 0.7, 0.9], tolerance_s=0.2)
    rows = {r["threshold"]: r for r in rep["thresholds"]}
    assert rows[0.3]["false_reject_rate"] == 0.75
    assert rows[0.3]["misses"] == {"below_threshold": 1, "outranked": 1, "refractory": 1}
    # level 180 at 0.7: the word "b" outranked is now below it too; "b" still hits
    assert rows[0.7]["misses"] == {"below_threshold": 3, "outranked": 0, "refractory": 0}
    assert rows[0.9]["misses"] == {"below_threshold": 4, "outranked": 0, "refractory": 0}
    # each miss by itself, with its clip and cause, and the misses per speaker
    missed = missed_placements(cfg, [(stream, placements)], 0.3, tolerance_s=0.2)
    assert [(m["source"], m["cause"]) for m in missed] == [
        ("d/a/s1_NO_01.flac", "below_threshold"),
        ("d/a/s2_NO_01.flac", "outranked"),
        ("d/a/s2_NO_02.flac", "refractory"),
    ]
    assert misses_by_speaker([(stream, placements)], missed) == {
        "s1": {"placed": 2, "missed": 1},
        "s2": {"placed": 2, "missed": 2},
    }
    free = StreamScores(np.full((100, 3), -128, np.int8), np.arange(100) * 0.1, 3600.0)
    rep = evaluate(cfg, [(stream, placements)], [free], [0.3, 0.7], tolerance_s=0.2)
    assert rep["at_target"]["threshold"] == 0.3 and rep["at_target"]["missed"] == missed


def _tone_clip(rng: np.random.Generator, freq: float) -> np.ndarray:
    clip = np.zeros(SR, np.float32)
    clip[4000:10400] = tone(rng, freq, 6400)
    return clip


def _clips(tmp: Path) -> tuple[list[tuple[str, str]], list[str]]:
    rng = np.random.default_rng(3)
    kw, other = [], []
    for i in range(6):
        for label in ("high", "low", "_unknown_"):
            path = tmp / f"{label}_{i}.wav"
            sf.write(path, _tone_clip(rng, TONES[label]), SR, subtype="PCM_16")
            if label.startswith("_"):
                other.append(str(path))
            else:
                kw.append((str(path), label))
    return kw, other


def test_built_stream_puts_keywords_where_its_labels_say(tmp_path: Path) -> None:
    kw, other = _clips(tmp_path)
    noise = tmp_path / "noise.wav"
    sf.write(noise, 0.05 * np.random.default_rng(0).standard_normal(3 * SR), SR)
    recipe = StreamRecipe(keywords=kw, distractors=other, noise_files=[str(noise)])
    placed = write_stream(tmp_path / "s.flac", recipe, seed=5)
    assert sorted(p.keyword for p in placed) == sorted(label for _, label in kw)
    audio, sr = sf.read(tmp_path / "s.flac")
    assert sr == SR
    for p in placed:  # the tone's own frequency dominates inside the word, not outside
        seg = audio[int(p.start * SR) : int(p.end * SR)]
        spec = np.abs(np.fft.rfft(seg))
        peak = np.fft.rfftfreq(seg.size, 1 / SR)[np.argmax(spec)]
        assert abs(peak - TONES[p.keyword]) < 60, (p, peak)
        assert 0.3 < p.end - p.start <= 0.42  # the 0.4 s tone but its faint Hann-window ends
    # the same seed gives the same stream; a keyword-free one has no keywords
    assert write_stream(tmp_path / "t.flac", recipe, seed=5) == placed
    assert (tmp_path / "t.flac").read_bytes() == (tmp_path / "s.flac").read_bytes()
    assert write_stream(tmp_path / "free.wav", recipe, seed=6, duration_s=20.0) == []
    assert sf.info(tmp_path / "free.wav").frames == 20 * SR
    write_labels(tmp_path / "s.csv", placed)
    assert read_labels(tmp_path / "s.csv", ["high", "low"]) == [
        Placement(p.keyword, round(p.start, 4), round(p.end, 4), p.source) for p in placed
    ]
    assert sorted(p.source for p in placed) == sorted(path for path, _ in kw)


def test_labels_csv_keeps_sources_and_reads_without_them(tmp_path: Path) -> None:
    placed = [Placement("a", 1.0, 1.5, "x/spk,1_NO_01.flac"), Placement("b", 3.0, 3.25, "")]
    write_labels(tmp_path / "with.csv", placed)
    assert read_labels(tmp_path / "with.csv") == placed  # a comma in a path is quoted
    (tmp_path / "hand.csv").write_text("keyword,start,end\na,1.0,1.5\n")
    assert read_labels(tmp_path / "hand.csv") == [Placement("a", 1.0, 1.5)]
    write_labels(tmp_path / "none.csv", [Placement("a", 1.0, 1.5)])
    assert (tmp_path / "none.csv").read_text().splitlines()[0] == "keyword,start,end"


def test_trim_speech_finds_the_word() -> None:
    clip = _tone_clip(np.random.default_rng(0), 1000.0)  # a Hann-shaped tone at 4000..10400
    trimmed, s0, s1 = trim_speech(clip, margin=800)
    assert s0 == 800 and trimmed.size == s1 + 800  # the margins, inside the clip
    assert 0.8 * 6400 <= s1 - s0 <= 6400


@pytest.mark.parametrize(
    "text, problem",
    [
        ("word,start,end\nhigh,1,2\n", "missing column(s) keyword"),
        ("keyword,start,end\nhigh,1,2\nsnake,3,4\n", "labels.csv:3: keyword 'snake' is not"),
        ("keyword,start,end\nhigh,one,2\n", "labels.csv:2: expected keyword,start,end"),
        ("keyword,start,end\nhigh,3,2\n", "labels.csv:2: bad placement"),
        ("", "empty labels CSV"),
    ],
)
def test_bad_labels_csv_is_one_line_naming_the_file(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(TfkwsError, match="labels.csv") as err:
        read_labels(path, ["high", "low"])
    assert problem in str(err.value) and "\n" not in str(err.value)


def test_chunked_features_equal_one_pass_for_a_stateless_frontend(tmp_path: Path) -> None:
    from tfkws.features.config import FeatureConfig
    from tfkws.features.extract import features_to_int8
    from tfkws.features.stream import stream_features
    from tfkws.streaming.long_audio import stream_frames_chunked

    rng = np.random.default_rng(1)
    audio = (0.05 * rng.standard_normal(12 * SR + 77)).astype(np.float32)
    audio[SR : 2 * SR] += _tone_clip(rng, 1500.0)
    path = tmp_path / "a.wav"
    sf.write(path, audio, SR, subtype="FLOAT")
    q = lambda x: features_to_int8(x, 0.1, -128)  # noqa: E731
    whole = q(stream_features(audio, STATELESS))
    got = stream_frames_chunked(path, STATELESS, q, chunk_s=1.7, warmup_s=0.5)
    np.testing.assert_array_equal(got, whole)
    # the adaptive frontend restarts each chunk: its warm-up brings it back near one pass
    whole = q(stream_features(audio, FeatureConfig()))
    near = []
    for warmup in (0.0, 5.0):
        got = stream_frames_chunked(path, FeatureConfig(), q, chunk_s=2.0, warmup_s=warmup)
        assert got.shape == whole.shape
        near.append(np.mean(np.abs(got.astype(int) - whole.astype(int)) <= 1))
    assert near[0] < 0.9 and near[1] > 0.99, near
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    with pytest.raises(TfkwsError, match="bad.wav: cannot read audio"):
        stream_frames_chunked(bad, STATELESS, q)


def test_litert_windows_match_tflm_windows() -> None:
    from firmware_gen_models import tiny_model

    from tfkws.streaming.sliding_window import run_sliding_window, run_sliding_window_litert

    model = tiny_model("conv")
    frames = np.random.default_rng(1).integers(-128, 128, (60, 10)).astype(np.int8)
    ref = run_sliding_window(model, frames, hop=3)
    got = run_sliding_window_litert(model, frames, hop=3, batch=7)
    np.testing.assert_array_equal(got.end_frames, ref.end_frames)
    assert np.abs(got.scores.astype(int) - ref.scores.astype(int)).max() <= 1


def test_stream_eval_cli_on_built_streams(
    tone_kws_model: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    from tfkws.cli.main import main

    data = tone_kws_model.parent / "data"
    noise = tmp_path / "noise.wav"
    sf.write(noise, 0.01 * np.random.default_rng(0).standard_normal(20 * SR), SR)
    out = tmp_path / "eval"
    argv = [
        "stream-eval",
        f"--model={tone_kws_model}",
        f"--data={data}",
        f"--noise_dir={noise}",
        f"--out={out}",
        "--synth_words=0",
        "--fa_hours=0.01",
        "--runtime=litert",
    ]
    code = main(argv)
    printed, err = capsys.readouterr()
    assert code == 0, err
    rep = json.loads((out / "stream_eval.json").read_text())
    assert rep["keywords_placed"] == 16  # the val split's high and low clips
    assert rep["keyword_free_hours"] == pytest.approx(0.01, abs=0.002)
    rows = rep["thresholds"]
    # at a low threshold the keywords are found near their ends: placements and times line up
    # (misaligned times would miss nearly all). Not every one: the tiny model's weights differ
    # with the CPU's float kernels (AVX2 / AVX-512), and at 0.3 a wrong keyword leading early
    # in a word can fire first and its refractory time hide the right one
    assert rows[0]["threshold"] == 0.3 and rows[0]["false_reject_rate"] <= 2 / 16
    frr = [r["false_reject_rate"] for r in rows]
    fa = [r["false_accepts"] for r in rows]
    assert frr == sorted(frr) and fa == sorted(fa, reverse=True)  # the DET trade-off
    assert fa[0] > 0 and frr[-1] > 0.5  # both ends of it are reached
    for r in rows:  # every false reject has one cause
        assert sum(r["misses"].values()) == round(16 * r["false_reject_rate"]), r
    # the tiny tone model: at 0 false accepts in 36 s of noise and unknown tones, most keywords
    best = rep["at_target"]
    assert best["false_accepts"] == 0 and best["false_reject_rate"] <= 0.25, best
    assert (out / "det.png").read_bytes()[:4] == b"\x89PNG"
    assert "at <= 0.5 FA/h: threshold" in printed
    assert f"false rejects at {best['threshold']:g}: " in printed
    # each miss there by itself, with the clip it came from; misses per speaker add up
    assert len(best["missed"]) == round(16 * best["false_reject_rate"])
    assert all(Path(m["source"]).is_file() for m in best["missed"])
    by_speaker = best["by_speaker"].values()
    assert sum(v["placed"] for v in by_speaker) == 16
    assert sum(v["missed"] for v in by_speaker) == len(best["missed"])
    assert "false rejects by speaker: " in printed
    # per-keyword thresholds: one per keyword, tuned on half, measured on the other half, and
    # printed as the tfkws detect flag that sets them
    pk = rep["per_keyword"]
    assert set(pk["thresholds"]) == {"high", "low"}
    assert pk["held_out"]["placements"] + pk["tuning"]["placements"] == 16
    assert pk["tuning"]["false_accepts"] <= pk["tuning_budget_false_accepts"]
    assert f"tfkws detect --thresholds {pk['thresholds_flag']}" in printed
    # the built stream read back as a labelled stream gives the same false rejects (in TFLM)
    out2 = tmp_path / "eval2"
    streams = out / "streams"
    argv2 = ["stream-eval", f"--model={tone_kws_model}", f"--out={out2}"]
    argv2 += [f"--audio={streams / 'keywords.flac'}", f"--labels={streams / 'keywords.csv'}"]
    assert main(argv2) == 0
    rep2 = json.loads((out2 / "stream_eval.json").read_text())
    pairs = zip(rep["thresholds"], rep2["thresholds"], strict=True)
    assert max(abs(a["false_reject_rate"] - b["false_reject_rate"]) for a, b in pairs) <= 1 / 16
    assert rep2["keyword_free_hours"] == 0 and rep2["at_target"] is None
    assert "per_keyword" not in rep2  # nothing keyword-free to tune on


def test_stream_eval_errors_are_one_line(
    tone_kws_model: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    from tfkws.cli.main import main

    base = ["stream-eval", f"--model={tone_kws_model}", f"--out={tmp_path / 'o'}"]
    audio = tmp_path / "a.wav"
    sf.write(audio, np.zeros(3 * SR, np.float32), SR)
    labels = tmp_path / "lab.csv"
    labels.write_text("keyword,start,end\nsnake,1,2\n")
    for extra, problem in [
        ([f"--audio={audio}"], "--audio needs --labels"),
        ([], "either --data"),
        ([f"--audio={audio}", f"--labels={labels}"], "lab.csv:2: keyword 'snake'"),
        ([f"--audio={tmp_path / 'no.wav'}", f"--labels={tmp_path / 'no.csv'}"], "not found"),
    ]:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert problem in err and len(err.strip().splitlines()) == 1, err
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"junk")
    labels.write_text("keyword,start,end\nhigh,1,2\n")
    assert main([*base, f"--audio={bad}", f"--labels={labels}"]) == 2
    err = capsys.readouterr().err
    assert "bad.wav: cannot read audio" in err and len(err.strip().splitlines()) == 1


def test_synthetic_distractor_words() -> None:
    from tfkws.streaming.stream_eval import synthetic_words

    words = synthetic_words(["cup", "town", "light"], 4, SR, seed=0)
    assert len(words) == 4 and all(w.dtype == np.float32 and w.size > SR // 10 for w in words)
    again = synthetic_words(["cup", "town", "light"], 4, SR, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(words, again, strict=True))


def test_one_miss_in_twenty_is_exactly_five_percent() -> None:
    """The target reads 'at most 5 %': 1 of 20 (3 of 60) must not come out as 5.0000000000004 %."""
    labels = ["_unknown_", "a"]
    cfg = make_config(labels, 1 / 256, -128, softmax=False, window=1, refractory=5)
    lv = np.zeros((400, 2), np.int64)
    placements = []
    for i in range(20):
        lv[20 * i + 5 : 20 * i + 8, 1] = 50 if i == 7 else 250
        placements.append(Placement("a", 2.0 * i + 0.5, 2.0 * i + 0.8))
    stream = StreamScores((lv - 128).astype(np.int8), np.arange(400) * 0.1, 40.0)
    rep = evaluate(cfg, [(stream, placements)], [], [0.5], tolerance_s=0.2)
    assert rep["thresholds"][0]["false_reject_rate"] == 0.05
