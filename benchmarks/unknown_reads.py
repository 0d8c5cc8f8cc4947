"""Non-keyword speech read as a keyword: English speakers trained on as `_unknown_` vs new ones.

The streaming benchmark's false accepts come from non-keyword speech of speakers and words the
model never saw (`benchmarks/streaming.py`'s test streams use the other half of the English
Speech Commands speakers). This asks how much of that is generalisation: the int8 window model
classifies every English clip of both speaker halves (``streaming.english_speakers``: the
training half, used as `_unknown_` in training, and the held-out half of the streams) and counts
the clips whose top label is a keyword with probability above ``--threshold``. A third row asks
whether the model hears words or voices: the keyword clips of ``--data``'s validation speakers
(never trained on) played backwards (``tfkws.data.reversed_clips``) are no keyword, in voices and
a channel like the keywords'. Writes ``results/unknown_reads.{json,md}``.

    python benchmarks/unknown_reads.py     # the zoo's repcnn_stream_asc window model
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import common
import numpy as np
from streaming import DEFAULT_ENGLISH, english_speakers
from zoo import rel

TRAIN_HALF = "training (`_unknown_` in training)"
HELD_HALF = "held out (test streams)"
DEFAULT_MODEL = common.REPO / "tfkws" / "zoo" / "models" / "repcnn_stream_asc" / "model_int8.tflite"


def reads(model: Path, clips: list[str], threshold: float) -> dict[str, Counter]:
    """Per English word (its folder): how often each label is the top one above ``threshold``
    (``_silence_``/``_unknown_`` at any probability; below it for a keyword: ``(below)``)."""
    from tfkws.conversion.export import load_metadata
    from tfkws.conversion.model_info import inspect_tflite
    from tfkws.data.example import Example
    from tfkws.features.clips import clip_features
    from tfkws.verification.evaluate import features_for, quantize_input
    from tfkws.verification.litert import run_litert

    data = model.read_bytes()
    meta = load_metadata(model)
    info = inspect_tflite(data, model)
    labels = meta["labels"]
    words = sorted({Path(c).parent.name for c in clips})  # the folder as the clip's "label"
    examples = [Example(str(c), Path(c).parent.name) for c in clips]
    x, y = clip_features(examples, words, features_for(meta))
    out = run_litert(data, quantize_input(x, meta), path=model).astype(np.int64)
    found: dict[str, Counter] = {}
    for o, w in zip(out, y, strict=True):
        top = int(np.argmax(o))
        name = labels[top]
        if not name.startswith("_"):
            p = (o[top] - info.output_zero_point) * info.output_scale
            name = name if p > threshold else "(below)"
        found.setdefault(words[w], Counter())[name] += 1
    return found


def reversed_val(args: argparse.Namespace) -> list[Path]:
    """``--reversed_clips`` validation keyword clips of ``--data``, reversed into a work folder
    (one sub-folder per keyword: the folder is the clip's "word" in the table)."""
    from tfkws.data.dataset import open_dataset
    from tfkws.data.reversed_clips import pick_keyword_clips, write_reversed

    val = open_dataset(args.data).split("validation")
    picked = pick_keyword_clips(val, args.reversed_clips, args.seed)
    label = {e.path: e.label for e in val}
    work = common.WORK / "unknown_reads" / f"reversed_val_seed{args.seed}_n{len(picked)}"
    out = []
    for word in sorted({label[p] for p in picked}):
        mine = [p for p in picked if label[p] == word]
        out += [Path(c) for c in write_reversed(mine, work / word)]
    return out


def summary(found: dict[str, Counter]) -> dict[str, Any]:
    total = sum(sum(c.values()) for c in found.values())
    as_keyword = Counter()
    for c in found.values():
        as_keyword.update({k: v for k, v in c.items() if not k.startswith(("_", "("))})
    hits = sum(as_keyword.values())
    return {
        "clips": total,
        "read_as_keyword": hits,
        "share": hits / total if total else None,
        "by_keyword": dict(as_keyword.most_common()),
        "by_word": {w: dict(c.most_common()) for w, c in sorted(found.items())},
    }


def ranked(counts: dict[str, int]) -> list[tuple[str, int]]:
    """Most frequent first, ties by name: the same order from the counts or their JSON."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def markdown(results: dict[str, Any]) -> str:
    t = results["threshold"]
    model = Path(results["model"])
    which = "" if model.parent.name == "repcnn_stream_asc" else f" ({model.parent.name})"
    lines = [
        "# Non-keyword speech read as a keyword: English speakers trained on vs new ones" + which,
        "",
        f"Produced by `{results['command']}` on {results['machine']}. Model: "
        f"`{results['model']}` (int8, LiteRT reference kernels). Each English Speech Commands "
        f"clip of `{results['english']}`, split by speaker as `benchmarks/streaming.py` splits "
        "them: the training half (its `_unknown_` clips in training) and the held-out half (the "
        f"distractors of its test streams). A clip counts when its top label is a keyword with "
        f"probability above {t:g}."
        + (f" Last row: {results['reversed_note']}" if results.get("reversed_note") else ""),
        "",
        f"| clips of | clips | read as a keyword (p > {t:g}) | share | most often read as |",
        "|---|---:|---:|---:|---|",
    ]
    halves = results["halves"]
    rows = {k: halves[k] for k in (TRAIN_HALF, HELD_HALF)} | results.get("reversed", {})
    for name, r in rows.items():
        top = ", ".join(f"{k} {v}" for k, v in ranked(r["by_keyword"])[:5]) or "-"
        lines.append(
            f"| {name} | {r['clips']:,} | {r['read_as_keyword']:,} | "
            f"{100 * r['share']:.2f} % | {top} |"
        )
    held = halves[HELD_HALF]
    lines += [
        "",
        "Held-out English words read as a keyword, per word (word: keyword count):",
        "",
    ]
    for word, c in held["by_word"].items():
        kws = {k: v for k, v in c.items() if not k.startswith(("_", "("))}
        if kws:
            lines.append(f"- {word}: " + ", ".join(f"{k} {v}" for k, v in ranked(kws)))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--english", type=Path, default=DEFAULT_ENGLISH)
    p.add_argument("--threshold", type=float, default=0.8)
    p.add_argument("--out", type=Path, default=common.RESULTS)
    p.add_argument("--name", default="unknown_reads")
    p.add_argument("--data", type=Path, default=common.DEFAULT_DATA)
    p.add_argument("--reversed_clips", type=int, default=600, help="val clips reversed (0: off)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    train, held = english_speakers(args.english)
    halves = {
        TRAIN_HALF: summary(reads(args.model, train, args.threshold)),
        HELD_HALF: summary(reads(args.model, held, args.threshold)),
    }
    extra: dict[str, Any] = {}
    if args.reversed_clips:
        clips = reversed_val(args)
        extra["reversed"] = {
            "Arabic val keywords reversed": summary(reads(args.model, clips, args.threshold))
        }
        extra["reversed_note"] = (
            f"{len(clips):,} keyword clips of `{rel(args.data)}`'s validation split (speakers "
            f"never trained on; seed {args.seed}) played backwards: no keyword, in the keyword "
            "recordings' voices and channel."
        )
    common.write_table(
        args.name,
        args.out,
        markdown,
        model=rel(args.model),
        english=rel(args.english),
        threshold=args.threshold,
        halves=halves,
        **extra,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
