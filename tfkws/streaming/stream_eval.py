"""``tfkws stream-eval``: false rejects and false accepts per hour of a model on long streams.

Streams come from a dataset (``build_streams``: its keyword clips placed at known times into
noise and non-keyword speech, plus keyword-free audio; seeded) or from the user (audio + labels
CSV ``keyword,start,end``). Each recording is featurised chunk by chunk (``long_audio``), run
through the int8 model as the device would (sliding window: a full-window Invoke every ``hop``),
and the detector is swept over thresholds (``stream_scoring``). The report says the false reject
rate per threshold, false accepts per hour on the keyword-free audio (and how many hours that
is), and the threshold that meets a target false-accept rate; ``det.png`` is the DET curve.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfkws.errors import TfkwsError
from tfkws.streaming.detect_audio import StreamSettings, detector_config, hop_frames
from tfkws.streaming.stream_build import (
    Placement,
    StreamRecipe,
    read_labels,
    write_labels,
    write_stream,
)
from tfkws.streaming.stream_scoring import (
    DEFAULT_THRESHOLDS,
    DEFAULT_TOLERANCE_S,
    StreamScores,
    evaluate,
)
from tfkws.streaming.threshold_tuning import DEFAULT_MARGIN

RUNTIMES = ("tflm", "litert")
REPORT = "stream_eval.json"
DET_PNG = "det.png"
SYNTH_VOICES = (
    "en-us",
    "en-gb-x-rp",
    "en-us+m3",
    "en-us+f2",
    "en-gb-x-rp+f4",
    "en-gb-scotland+m7",
    "en-029",
)


@dataclasses.dataclass(frozen=True)
class LabelledStream:
    """A recording and its keyword placements."""

    audio: str
    placements: tuple[Placement, ...]


def score_audio(
    model_path: str | os.PathLike,
    audio_path: str | os.PathLike,
    settings: StreamSettings | None = None,
    runtime: str = "tflm",
    progress: bool = True,
) -> StreamScores:
    """The int8 outputs of the exported model on every window of the recording (chunked)."""
    from tfkws.conversion.export import load_metadata
    from tfkws.features.stream import frame_end_seconds
    from tfkws.streaming.long_audio import audio_seconds, stream_frames_chunked
    from tfkws.streaming.sliding_window import run_sliding_window, run_sliding_window_litert
    from tfkws.streaming.step_export import is_step_model
    from tfkws.verification.evaluate import features_for, quantize_input, read_model

    settings = settings or StreamSettings()
    if runtime not in RUNTIMES:
        raise TfkwsError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    model, _ = read_model(model_path)
    meta = load_metadata(model_path)
    if is_step_model(meta):
        twin = meta["streaming"].get("window_model", "its window twin")
        raise TfkwsError(
            f"{model_path}: a streaming step model; stream-eval scores window models (give "
            f"{twin}, whose int8 outputs it equals)"
        )
    fc = features_for(meta)
    hop = hop_frames(settings, fc.window_stride_ms)
    frames = stream_frames_chunked(
        audio_path, fc, lambda x: quantize_input(x, meta), progress=progress
    )
    if frames.shape[0] < fc.num_frames:
        raise TfkwsError(
            f"{audio_path}: shorter than the model's window ({fc.clip_duration_ms} ms)"
        )
    run = run_sliding_window if runtime == "tflm" else run_sliding_window_litert
    windows = run(model, frames, hop, model_path, progress=progress)
    times = np.array([frame_end_seconds(int(e), fc) for e in windows.end_frames])
    return StreamScores(windows.scores, times, audio_seconds(audio_path))


def synthetic_words(
    words: Sequence[str],
    count: int,
    sample_rate: int,
    seed: int,
    voices: Sequence[str] = SYNTH_VOICES,
) -> list[np.ndarray]:
    """``count`` espeak-ng utterances of ``words`` in ``voices`` (``voice`` or
    ``voice+variant``, drawn per utterance), speeds and pitches."""
    from tfkws.data.espeak import synthesize_isolated

    if count <= 0 or not words:
        return []
    rng = np.random.default_rng(seed)
    jobs = []
    for _ in range(count):
        voice, _, variant = voices[int(rng.integers(len(voices)))].partition("+")
        jobs.append(
            {
                "text": str(words[int(rng.integers(len(words)))]),
                "voice": voice,
                "variant": variant or None,
                "rate": int(rng.integers(130, 220)),
                "pitch": int(rng.integers(25, 75)),
            }
        )
    return [x.astype(np.float32) / 32768.0 for x in synthesize_isolated(jobs, sample_rate)]


def dataset_recipe(
    labels: Sequence[str],
    data: str | os.PathLike,
    split: str = "validation",
    english: str | os.PathLike | None = None,
    noise_dir: str | os.PathLike | None = None,
    synth_count: int = 0,
    max_keywords: int = 0,
    seed: int = 0,
    sample_rate: int = 16000,
) -> StreamRecipe:
    """A recipe from a dataset: its clips of the model's keywords (at most ``max_keywords``,
    seeded; 0: all) are the keywords, its other clips distractors; plus every clip under
    ``english`` (a Speech Commands folder: its ``_silence_`` and model-keyword folders left out),
    ``synth_count`` espeak-ng words, and the dataset's and ``noise_dir``'s noise."""
    from tfkws.data.audio import is_audio_file
    from tfkws.data.dataset import open_dataset
    from tfkws.data.synth import UNKNOWN_WORDS

    keywords = {x for x in labels if not x.startswith("_")}
    ds = open_dataset(data, noise_dir=noise_dir)
    examples = [e for e in ds.split(split) if e.path is not None]
    kw = [(e.path, e.label) for e in examples if e.label in keywords]
    if not kw:
        raise TfkwsError(
            f"{data}: no clips of the model's keywords in split {split} "
            f"(model keywords: {', '.join(sorted(keywords))})"
        )
    rng = np.random.default_rng(seed)
    if max_keywords and len(kw) > max_keywords:
        kw = [kw[i] for i in sorted(rng.choice(len(kw), max_keywords, replace=False))]
    distractors: list[str | np.ndarray] = [e.path for e in examples if e.label not in keywords]
    if english is not None:
        root = Path(english)
        if not root.is_dir():
            raise TfkwsError(f"{root}: English clips folder not found")
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            if folder.name in keywords or folder.name == "_silence_":
                continue
            distractors += [str(f) for f in sorted(folder.iterdir()) if is_audio_file(f)]
    words = [w for w in UNKNOWN_WORDS if w not in keywords]
    distractors += synthetic_words(words, synth_count, sample_rate, seed)
    return StreamRecipe(
        keywords=kw,
        distractors=distractors,
        noise_files=list(ds.noise_files),
        sample_rate=sample_rate,
    )


def build_streams(
    recipe: StreamRecipe, out_dir: str | os.PathLike, fa_hours: float, seed: int = 0
) -> tuple[list[LabelledStream], list[str]]:
    """``keywords.flac`` (+ ``keywords.csv``) with every keyword clip once, and
    ``keyword_free.flac`` of ``fa_hours`` hours, in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    placements = write_stream(out / "keywords.flac", recipe, seed)
    write_labels(out / "keywords.csv", placements)
    free = []
    if fa_hours > 0:
        write_stream(out / "keyword_free.flac", recipe, seed + 1, duration_s=fa_hours * 3600)
        free.append(str(out / "keyword_free.flac"))
    return [LabelledStream(str(out / "keywords.flac"), tuple(placements))], free


def read_stream(
    audio: str | os.PathLike, labels_csv: str | os.PathLike, labels: Sequence[str]
) -> LabelledStream:
    """A labelled stream given by the user (audio + ``keyword,start,end`` CSV)."""
    return LabelledStream(str(audio), tuple(read_labels(labels_csv, labels)))


def stream_eval(
    model_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    keyword_streams: Sequence[LabelledStream],
    keyword_free: Sequence[str | os.PathLike],
    settings: StreamSettings | None = None,
    runtime: str = "tflm",
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    target_fa_per_hour: float = 0.5,
    score: Callable[[str], StreamScores] | None = None,
    threshold_margin: float = DEFAULT_MARGIN,
) -> dict[str, Any]:
    """Score the model on the streams; write ``stream_eval.json`` and ``det.png`` to ``out_dir``.

    With keyword-free audio the report also has ``per_keyword``: thresholds per keyword for the
    target false-accept rate, tuned on half the streams and measured on the other half
    (``threshold_tuning``), and the ``--thresholds`` text that gives them to ``tfkws detect``.

    ``score`` (audio path -> scores) replaces the exported model's sliding window, e.g. with a
    streaming step model; the detector then still comes from ``model_path``'s metadata.
    """
    from tfkws import atomic
    from tfkws.conversion.export import load_metadata
    from tfkws.streaming.det_plot import plot_det
    from tfkws.streaming.threshold_tuning import tune_thresholds

    settings = settings or StreamSettings()
    if not keyword_streams:
        raise TfkwsError("stream-eval needs at least one keyword stream")
    meta = load_metadata(model_path)
    config = detector_config(meta, settings)
    score = score or (lambda a: score_audio(model_path, a, settings, runtime))
    scored = [(score(s.audio), s.placements) for s in keyword_streams]
    free = [score(str(a)) for a in keyword_free]
    rep = evaluate(config, scored, free, thresholds, tolerance_s, target_fa_per_hour)
    if free:
        rep["per_keyword"] = tune_thresholds(
            config, scored, free, thresholds, target_fa_per_hour, tolerance_s, threshold_margin
        )
    rep |= {
        "model": str(model_path),
        "runtime": runtime,
        "keyword_streams": [s.audio for s in keyword_streams],
        "keyword_free_audio": [str(a) for a in keyword_free],
        "hop_ms": hop_frames(settings, meta["feature_config"]["window_stride_ms"])
        * meta["feature_config"]["window_stride_ms"],
        "smoothing_ms": settings.smoothing_ms,
        "refractory_ms": settings.refractory_ms,
        "detector_window_steps": config.window,
        "detector_refractory_steps": config.refractory,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_det({Path(model_path).stem: rep}, out / DET_PNG, target_fa_per_hour)
    atomic.write_json(out / REPORT, rep)
    return rep


def summary(rep: dict[str, Any]) -> str:
    """A few lines for the console."""
    lines = [
        f"{rep['keywords_placed']} keywords in {rep['keyword_stream_hours']:.2f} h of keyword "
        f"streams; false accepts on {rep['keyword_free_hours']:.2f} h of keyword-free audio",
        "threshold  false rejects  FA/h (keyword-free)",
    ]
    rows = rep["thresholds"]
    for r in rows[:: max(1, len(rows) // 8)]:
        fa = r["false_accepts_per_hour"]
        fa_text = "-" if fa is None else f"{fa:.2f}"
        lines.append(f"{r['threshold']:9.2f}  {100 * r['false_reject_rate']:12.2f} %  {fa_text}")
    t = rep["at_target"]
    target = rep["target_false_accepts_per_hour"]
    if t is None:
        lines.append(f"no threshold reaches {target:g} false accepts per hour")
    else:
        lines.append(
            f"at <= {target:g} FA/h: threshold {t['threshold']:.2f}, false rejects "
            f"{100 * t['false_reject_rate']:.2f} %, {t['false_accepts_per_hour']:.2f} FA/h"
        )
        lines.append("  " + misses_text(t))
        if t.get("by_speaker"):
            lines.append("  " + speakers_text(t["by_speaker"]))
    pk = rep.get("per_keyword")
    if pk:
        lines.append(per_keyword_summary(pk))
    return "\n".join(lines)


def misses_text(row: dict[str, Any]) -> str:
    """A threshold row's false rejects by cause (``stream_scoring.miss_causes``)."""
    m = row["misses"]
    return (
        f"false rejects at {row['threshold']:g}: {m['below_threshold']} where the model's "
        f"smoothed score for the word stayed below it, {m['outranked']} where another label "
        f"led, {m['refractory']} where the detector was refractory after another detection"
    )


def speaker_cells(by_speaker: dict[str, dict[str, int]], most: int = 12) -> str:
    """``SPEAKER missed/placed`` per speaker, worst first, the first ``most`` of them."""
    worst = sorted(by_speaker.items(), key=lambda kv: (-kv[1]["missed"] / kv[1]["placed"], kv[0]))
    cells = [f"{k} {v['missed']}/{v['placed']}" for k, v in worst]
    return ", ".join(cells[:most]) + (f", ... ({len(cells)} speakers)" if len(cells) > most else "")


def speakers_text(by_speaker: dict[str, dict[str, int]]) -> str:
    """False rejects per speaker, worst first (the misses with their clips: report.json)."""
    return (
        f"false rejects by speaker: {speaker_cells(by_speaker)} "
        "(each miss's clip: at_target.missed in the report)"
    )


def per_keyword_summary(pk: dict[str, Any]) -> str:
    """Per-keyword thresholds vs one threshold, both measured on the held-out half."""

    def point(m: dict[str, Any] | None) -> str:
        if not m or m["false_reject_rate"] is None or m["false_accepts_per_hour"] is None:
            return "nothing held out to measure"
        return (
            f"{100 * m['false_reject_rate']:.2f} % false rejects, "
            f"{m['false_accepts_per_hour']:.2f} FA/h"
        )

    h = pk["held_out"]
    one = (
        f"one threshold ({pk['single_threshold']:g}): {point(pk['single_held_out'])}"
        if pk["single_threshold"] is not None
        else "no single threshold meets it"
    )
    return (
        f"per-keyword thresholds for <= {pk['target_false_accepts_per_hour']:g} FA/h, tuned on "
        f"half the streams, on the other half ({h['placements']} keywords, {h['hours']:.2f} h "
        f"keyword-free): {point(h)}; {one}\n"
        f"  tfkws detect --thresholds {pk['thresholds_flag']}"
    )
