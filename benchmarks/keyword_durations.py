"""How long a keyword's utterances are, in training and in val.csv, and which val clips the
streaming results missed: are the misses the odd utterances?

    python benchmarks/keyword_durations.py --keywords receive \\
        --missed_in benchmarks/results/streaming_X.json,benchmarks/results/vocabulary_Y.json

Speech duration is the streams' own measure (``tfkws.streaming.stream_build.trim_speech``: from
the first to the last 20 ms frame within 30 dB of the loudest), the span that places a keyword in
a stream and times its end. ``--missed_in`` reads the clips each result missed at its target
(``at_target.missed``: every form of a ``streaming.py`` result, every smoothing row of a
``vocabulary_gating.py`` one) and counts, per val clip, in how many of them it was missed.
Writes ``results/keyword_durations_<words>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

SHORTEST = 10  # val clips listed, shortest first


def speech_ms(path: str | Path, sample_rate: int = 16000) -> float:
    """Milliseconds of speech in a clip, as the streams measure it."""
    from tfkws.data.audio import load_audio
    from tfkws.streaming.stream_build import trim_speech

    _, s0, s1 = trim_speech(load_audio(str(path), sample_rate), margin=0)
    return 1000.0 * (s1 - s0) / sample_rate


def missed_sets(results: list[Path], smoothing_ms: int = 0) -> list[tuple[str, set[str]]]:
    """(result and form/row, the clip paths missed at its target) for each measurement;
    ``smoothing_ms``: only a ``vocabulary_gating.py`` result's row of that smoothing."""
    out = []
    for path in results:
        doc = json.loads(path.read_text())
        parts = [(f, v["at_target"]) for f, v in doc.get("forms", {}).items()]
        parts += [
            (f"{r['smoothing_ms']} ms", r["at_target"])
            for r in doc.get("rows", [])
            if not smoothing_ms or r["smoothing_ms"] == smoothing_ms
        ]
        for label, at in parts:
            # whole paths: Arabic Speech Commands reuses each file name in every word's folder
            names = {
                str(Path(m["source"]).resolve()) for m in at.get("missed", []) if m.get("source")
            }
            out.append((f"{path.stem}: {label}", names))
    return out


def summary(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "clips": int(a.size),
        "min_ms": float(a.min()),
        "p5_ms": float(np.percentile(a, 5)),
        "median_ms": float(np.median(a)),
        "max_ms": float(a.max()),
    }


def measure(
    data: Path, words: list[str], results: list[Path], smoothing_ms: int = 0
) -> dict[str, Any]:
    from tfkws.data.csv_list import read_csv_list
    from tfkws.errors import DatasetError
    from tfkws.progress import Progress

    misses = missed_sets(results, smoothing_ms)
    out: dict[str, Any] = {"words": {}, "measurements": [m[0] for m in misses]}
    try:
        lists = {split: read_csv_list(data / f"{split}.csv") for split in ("train", "val")}
    except DatasetError as e:
        raise SystemExit(f"error: {e}") from None
    for word in words:
        entry: dict[str, Any] = {}
        for split, examples in lists.items():
            rows = [e for e in examples if e.label == word]
            if not rows:
                raise SystemExit(f"{data / f'{split}.csv'}: no clip of {word!r}")
            clips = []
            with Progress(f"{word}: {split}.csv clips", len(rows)) as bar:
                for r in rows:
                    path = Path(r.path).resolve()
                    clips.append(
                        {"clip": path.name, "path": str(path), "speech_ms": speech_ms(path)}
                    )
                    bar.update()
            entry[split] = summary([c["speech_ms"] for c in clips])
            if split == "val":
                for c in clips:
                    path = c.pop("path")
                    c["missed_in"] = sum(path in names for _, names in misses)
                entry["val_clips"] = sorted(clips, key=lambda c: c["speech_ms"])
        out["words"][word] = entry
    return out


def markdown(res: dict[str, Any]) -> str:
    n = len(res["measurements"])
    lines = [
        f"# Speech duration of {', '.join(res['words'])}: training vs val.csv, and the misses",
        "",
        f"Produced by `{res['command']}` on {res['machine']}.",
        "",
        "Speech: from the first to the last 20 ms frame within 30 dB of the clip's loudest "
        "(`trim_speech`, the span the streams place and time). "
        f"Missed in: of {n} measurements (each form or smoothing of the results named below, at "
        "its target threshold), how many missed the clip.",
        "",
    ]
    for word, e in res["words"].items():
        lines += [
            f"## {word}",
            "",
            "| split | clips | shortest | 5th percentile | median | longest |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for split in ("train", "val"):
            s = e[split]
            lines.append(
                f"| {split}.csv | {s['clips']} | {s['min_ms']:.0f} ms | {s['p5_ms']:.0f} ms | "
                f"{s['median_ms']:.0f} ms | {s['max_ms']:.0f} ms |"
            )
        missed = [c for c in e["val_clips"] if c["missed_in"]]
        shown = e["val_clips"][:SHORTEST]
        shown += [c for c in missed if c not in shown]
        lines += [
            "",
            f"val.csv clips: the {SHORTEST} shortest and every other clip missed anywhere:",
            "",
            "| clip | speech | missed in |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| {c['clip']} | {c['speech_ms']:.0f} ms | {c['missed_in']} of {n} |" for c in shown
        ]
        lines.append("")
    lines += ["Measurements:", ""] + [f"- {m}" for m in res["measurements"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=common.DEFAULT_DATA)
    p.add_argument("--keywords", required=True, help="comma-separated words of the dataset")
    p.add_argument("--missed_in", default="", help="comma-separated results JSON files")
    p.add_argument(
        "--smoothing_ms",
        type=int,
        default=0,
        help="only this smoothing's row of a vocabulary_gating.py result (default: every row)",
    )
    p.add_argument("--out", type=Path, default=common.RESULTS)
    p.add_argument("--name", default="", help="default keyword_durations_<words>")
    args = p.parse_args(argv)
    words = [w.strip() for w in args.keywords.split(",") if w.strip()]
    results = [Path(r) for r in args.missed_in.split(",") if r]
    for r in results:
        if not r.is_file():
            raise SystemExit(f"{r}: results file not found")
    res = measure(args.data, words, results, args.smoothing_ms)
    name = args.name or "keyword_durations_" + "_".join(words)
    common.write_table(name, args.out, markdown, **res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
