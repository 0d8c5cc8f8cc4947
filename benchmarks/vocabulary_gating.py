"""A model of every word listening for a few of them, on a device vocabulary's streams.

``streaming.py --keywords`` trains a model for a device vocabulary: a few keywords, the dataset's
other words as ``_unknown_``. This is its baseline, without training: a model trained on every
word (default: the zoo's ``repcnn_stream_asc`` window model) whose detector fires only for the
vocabulary, the other keywords blocking like ``_unknown_`` (gates; on the device, the detector
spec's ``gated`` list: ``tfkws detect --thresholds WORD=P,... --gate others``). Scored on the
vocabulary run's streams (the same folder ``streaming.py`` builds for those settings: keywords of
the vocabulary from val.csv speakers between the other words' val.csv clips, English and
espeak-ng speech; keyword-free audio built the same way), sliding window every ``--hop_ms``, one
threshold swept and per-keyword thresholds tuned on half. Writes
``results/vocabulary_gating_kwN_HASH.{json,md}`` (or ``--name``; ``--model`` another window model,
e.g. a vocabulary run's, on other streams: ``--seed``; on several streams' placements and
keyword-free hours together, for a finer false reject rate: ``--seeds 0,1``).

    python benchmarks/vocabulary_gating.py --keywords yes,no,up,down,left,right,stop \\
        --fa_hours 6 --threshold_margin 0.1 --smoothing_ms 120,240,480
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import common
import numpy as np
import streaming
from zoo import rel

DEFAULT_MODEL = common.REPO / "tfkws" / "zoo" / "models" / "repcnn_stream_asc" / "model_int8.tflite"


def gated_settings(meta: dict[str, Any], vocabulary: list[str], ms: int, hop_ms: int) -> Any:
    """Detector settings that fire only for ``vocabulary``: every other label is a gate."""
    from tfkws.streaming.detect_audio import StreamSettings
    from tfkws.streaming.detector import GATE_OTHERS

    missing = [w for w in vocabulary if w not in meta["labels"]]
    if missing:
        raise SystemExit(f"the model has no label {', '.join(missing)}")
    return StreamSettings(
        hop_ms=hop_ms, smoothing_ms=ms, threshold=dict.fromkeys(vocabulary, 0.8), gate=GATE_OTHERS
    )


def score_streams(model: Path, meta: dict[str, Any], kw: list, free: list[str], args) -> tuple:
    """The window model's int8 outputs on every stream (LiteRT), cached beside the streams."""
    from tfkws.streaming.long_audio import stream_frames_chunked
    from tfkws.verification.evaluate import features_for, quantize_input

    data = model.read_bytes()
    fc = features_for(meta)
    hop = args.hop_ms // fc.window_stride_ms
    digest = hashlib.sha256(data).hexdigest()[:12]
    cache = Path(kw[0].audio).parent / f"scores_window_{digest}.npz"

    def score(audio: str) -> Any:
        frames = stream_frames_chunked(audio, fc, lambda x: x, progress=True, dtype=np.float32)
        return streaming.window_scores(data, quantize_input(frames, meta), hop, fc, audio)

    return streaming.cached_scores(cache, data, kw, free, score, True, "sliding window")


def evaluate_gated(meta: dict, vocabulary: list[str], scored: list, free: list, args) -> list:
    """One row per smoothing: one threshold swept, per-keyword thresholds, false accepts by word."""
    from tfkws.streaming.detect_audio import detector_config
    from tfkws.streaming.stream_scoring import evaluate, sweep
    from tfkws.streaming.threshold_tuning import tune_thresholds

    rows = []
    for ms in streaming.smoothing_values(args):
        config = detector_config(meta, gated_settings(meta, vocabulary, ms, args.hop_ms))
        thr = streaming.THRESHOLDS
        rep = evaluate(config, scored, free, thr, target_fa_per_hour=args.target_fa)
        margin = args.threshold_margin
        pk = tune_thresholds(config, scored, free, thr, args.target_fa, margin=margin)
        by_kw = Counter(
            config.labels[i] for fs in free for _, i in sweep(config, fs.scores, [0.8])[0.8]
        )
        rows.append(
            {
                "smoothing_ms": ms,
                "window_steps": config.window,
                "per_keyword": pk,
                "false_accepts_by_keyword_at_0.8": dict(by_kw.most_common()),
                "keywords_placed": rep["keywords_placed"],
                "keyword_free_hours": rep["keyword_free_hours"],
                "thresholds": rep["thresholds"],
            }
            | streaming.operating_points(rep)
        )
    return rows


def markdown(results: dict[str, Any]) -> str:
    s, st = results["settings"], results["streams"]
    words = ", ".join(s["keywords"])
    target = s["target_fa"]
    first = results["rows"][0]
    lines = [
        f"# Listening for {words}: a model of {len(results['labels'])} labels, the others gated",
        "",
        f"Produced by `{results['command']}` on {results['machine']}.",
        "",
        f"Model: `{results['model']}` ({len(results['labels'])} labels), sliding window every "
        f"{s['hop_ms']} ms; its detector fires for {words} only, every other label blocks "
        "while it leads (a gate, as `_silence_`/`_unknown_`). Streams: "
        f"{first['keywords_placed']} placements of val.csv clips of those words"
        + (
            f" (each clip once in each of {len(s['seeds'])} streams, seeds "
            f"{', '.join(map(str, s['seeds']))})"
            if len(s.get("seeds", [])) > 1
            else ""
        )
        + " between the other "
        f"words' val.csv clips ({st['other_word_distractors']:,}), English Speech Commands "
        f"clips of the held-out speakers ({st['english_distractors']:,}) and "
        f"{st['synthetic_distractors']} espeak-ng words over looped noise; false accepts on "
        f"{first['keyword_free_hours']:.2f} h of keyword-free audio built the same way "
        f"(`{st['folder_name']}`, the streams of `streaming.py --keywords` with these settings).",
        "",
        f"| smoothing | false rejects at <= {target:g} FA/h | threshold | FA/h there "
        "| false rejects at 0.8 | FA/h at 0.8 | per-keyword thresholds: false rejects "
        "(held out) | FA/h (held out) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        t, a = r["at_target"], r["at_0.8"]
        held = r["per_keyword"]["held_out"]
        head = (
            f"{100 * t['false_reject_rate']:.2f} % | {t['threshold']:g} "
            f"| {t['false_accepts_per_hour']:.2f}"
            if t
            else "none reaches it | - | -"
        )
        lines.append(
            f"| {r['smoothing_ms']} ms | {head} | {100 * a['false_reject_rate']:.2f} % "
            f"| {a['false_accepts_per_hour']:.2f} | {100 * held['false_reject_rate']:.2f} % "
            f"| {held['false_accepts_per_hour']:.2f} |"
        )
    fa = first["false_accepts_by_keyword_at_0.8"]
    lines += [
        "",
        f"False accepts at 0.8 by keyword ({first['smoothing_ms']} ms): "
        + (", ".join(f"{k} {v}" for k, v in fa.items()) or "none")
        + ". Per-keyword thresholds as in `streaming.py` (tuned on every other placement and "
        f"the first half of the keyword-free audio, margin {s['threshold_margin']:g}, measured "
        "on the rest).",
        *streaming.speakers_note(
            {f"{r['smoothing_ms']} ms": r["at_target"] for r in results["rows"]}
        ),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from tfkws.conversion.export import load_metadata
    from tfkws.data.example import SILENCE_LABEL, UNKNOWN_LABEL

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    streaming.add_args(p)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="int8 window model")
    p.add_argument("--name", default="", help="results name (default: vocabulary_gating_kwN_HASH)")
    p.add_argument(
        "--seeds",
        default="",
        help="comma-separated stream seeds measured together (default: --seed): each keyword "
        "clip placed once per seed's stream, the seeds' keyword-free hours added up",
    )
    args = p.parse_args(argv)
    args.work_dir = args.work_dir or common.WORK / "streaming"
    vocabulary = streaming.vocabulary(args)
    if not vocabulary:
        raise SystemExit("--keywords: name the vocabulary the model listens for")
    t0 = time.time()
    meta = load_metadata(args.model)
    labels = sorted({SILENCE_LABEL, UNKNOWN_LABEL, *vocabulary})
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()] or [args.seed]
    scored, free_scored, folders = [], [], []
    for seed in seeds:  # each seed's streams and scores in its own folder, as streaming.py's
        kw, free, info = streaming.streams(
            labels, argparse.Namespace(**{**vars(args), "seed": seed})
        )
        folders.append(Path(info["folder"]).name)
        one, one_free = score_streams(args.model, meta, kw, free, args)
        scored += one
        free_scored += one_free
    info["folder_name"] = "`, `".join(folders)
    rows = evaluate_gated(meta, vocabulary, scored, free_scored, args)
    name = args.name or "vocabulary_gating" + streaming.vocabulary_suffix(args)
    keep = ("keywords", "fa_hours", "keyword_clips", "synth_words", "target_fa", "hop_ms")
    common.write_table(
        name,
        args.out,
        markdown,
        settings={k: getattr(args, k) for k in keep}
        | {
            "keywords": vocabulary,
            "smoothing_ms": args.smoothing_ms,
            "threshold_margin": args.threshold_margin,
            "seed": args.seed,
            "seeds": seeds,
        },
        model=rel(args.model),
        labels=meta["labels"],
        streams=info,
        rows=rows,
        seconds=round(time.time() - t0, 1),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
