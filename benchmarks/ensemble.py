"""Ceiling check: trained runs' accuracy per speaker, their top confusions and their ensemble.

Before chasing an accuracy target, ask how far the strongest models here are from it: if the mean
softmax of several strong, different models barely beats the best of them, distilling them into
one small model (``--teacher``) will not get much further, and the gap is in the data. Float Keras
(each run's best weights) on one split; a speaker is the file name before its first ``_`` (Arabic
Speech Commands' ``<speaker>_NO_<n>``; Speech Commands' ``<speaker>_nohash_<n>``). Writes
``results/<name>.json`` and ``.md``.

    python benchmarks/ensemble.py --runs runs/a/repcnn,runs/b/bc_resnet_width2 --out runs/ens
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from pathlib import Path
from typing import Any

import common
import numpy as np

TOP_CONFUSIONS = 8


def speaker(path: str | None) -> str:
    return os.path.basename(path).split("_", 1)[0] if path else "(generated silence)"


def summary(name: str, probs: np.ndarray, y: np.ndarray, spk: np.ndarray, labels: list[str]):
    pred = probs.argmax(axis=1)
    right = pred == y
    pairs = collections.Counter(
        f"{labels[a]} -> {labels[b]}" for a, b in zip(y, pred, strict=True) if a != b
    )
    return {
        "name": name,
        "accuracy": float(right.mean()),
        "errors": int((~right).sum()),
        "per_speaker": {s: float(right[spk == s].mean()) for s in sorted(set(spk))},
        "top_confusions": pairs.most_common(TOP_CONFUSIONS),
    }


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from tfkws.features.clips import clip_features
    from tfkws.runs.config import RunConfig
    from tfkws.runs.model import load_trained_model

    runs = [r for r in args.runs.split(",") if r]
    if len(runs) < 2:
        sys.exit("ensemble.py: error: --runs needs two or more trained run folders")
    rows, probs = [], []
    first = RunConfig.load(runs[0])  # every run is scored on the first run's clips
    data = str(args.data or first.data)
    examples = first.open_dataset(data, with_noise=False).split(args.split)
    spk = np.array([speaker(e.path) for e in examples])
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # features config -> (x, y)
    for run_dir in runs:
        model, run = load_trained_model(run_dir)
        if run.labels != first.labels:
            sys.exit(f"ensemble.py: error: {run_dir}: labels differ from {runs[0]}'s")
        key = json.dumps(run.features.to_dict(), sort_keys=True)
        if key not in cache:
            cache[key] = clip_features(examples, first.labels, run.features)
        x, y = cache[key]
        p = common.softmax(model.predict(x, batch_size=256, verbose=0))
        name = f"{Path(run_dir).name}: {run.train.model} {json.dumps(run.train.model_params)}"
        rows.append(summary(name, p, y, spk, first.labels) | {"run": run_dir})
        probs.append(p)
    ens = summary(
        f"ensemble of {len(runs)} (mean softmax)", np.mean(probs, 0), y, spk, first.labels
    )
    return {"data": data, "split": args.split, "rows": rows, "ensemble": ens}


def markdown(results: dict[str, Any]) -> str:
    rows = [*results["rows"], results["ensemble"]]
    speakers = list(rows[0]["per_speaker"])
    lines = [
        "# Ceiling check: strongest runs and their ensemble",
        "",
        f"Produced by `{results['command']}`.",
        "",
        "| model | val acc float | errors | " + " | ".join(f"speaker {s}" for s in speakers) + " |",
        "|---|---|---|" + "---|" * len(speakers),
    ]
    for r in rows:
        per = " | ".join(f"{100 * r['per_speaker'][s]:.2f} %" for s in speakers)
        lines.append(f"| {r['name']} | {100 * r['accuracy']:.2f} % | {r['errors']} | {per} |")
    lines += ["", "Most frequent confusions (true -> predicted: clips):", ""]
    for r in rows:
        top = ", ".join(f"{pair}: {n}" for pair, n in r["top_confusions"])
        lines.append(f"- {r['name']}: {top}")
    lines += [
        "",
        f"Split: {results['split']} of `{results['data']}`; float Keras, each run's best weights; "
        "ensemble: mean of the runs' softmax outputs.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", required=True, help="comma-separated trained run folders")
    p.add_argument("--data", type=Path, default=None, help="dataset (default: each run's own)")
    p.add_argument("--split", default="validation")
    p.add_argument("--out", type=Path, default=common.RESULTS)
    p.add_argument("--name", default="ensemble")
    args = p.parse_args()

    common.write_table(args.name, args.out, markdown, **evaluate(args))


if __name__ == "__main__":
    main()
