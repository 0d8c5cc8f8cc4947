"""RepCNN vs its uni-branch twin vs BC-ResNet, side by side in one run, as deployed (int8, TFLM).

For every model: train (``tfkws.training.train``), export (fold -> int8 -> .tflite + metadata),
then measure what the device would see: validation accuracy of the int8 model in the TFLM
interpreter, parameters (trained and deployed), MACs, minimum TFLM arena (bisected), flash
(flatbuffer bytes) and TFLM host latency per inference. Writes ``results/repcnn.json`` and a
Markdown table ``results/repcnn.md``.

    python benchmarks/repcnn.py                      # full run (CPU-heavy: schedule it)
    python benchmarks/repcnn.py --models 0,1 --seeds 0,1,2 --resume --merge   # mean ± std
    python benchmarks/repcnn.py --epochs 1 --max_clips 200 --out /tmp/repcnn-smoke   # smoke test
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import common

from tfkws.cli.common import parse_params
from tfkws.data.dataset import open_dataset

# (row name, registered model, params). The twin must mirror RepCNN's channels/strides/kernel.
MODELS: list[tuple[str, str, dict[str, Any]]] = [
    ("RepCNN (multi-branch, folded)", "repcnn", {}),
    ("Uni-branch twin", "repcnn_unibranch", {}),
    ("BC-ResNet-1", "bc_resnet", {"width": 1}),
    ("BC-ResNet-3", "bc_resnet", {"width": 3}),
    ("BC-ResNet-2", "bc_resnet", {"width": 2}),  # appended: --models indices stay as recorded
]
# Table order (BC-ResNet by width).
ROW_ORDER = [MODELS[i][0] for i in (0, 1, 2, 4, 3)]


def _named(row: str, extra: dict[str, Any]) -> str:
    """'RepCNN (multi-branch, folded) channels=[24, 24]': the row with its extra parameters."""
    return " ".join([row, *(f"{k}={v}" for k, v in sorted(extra.items()))])


def _row_rank(r: dict[str, Any]) -> tuple[int, str]:
    """Table order: the MODELS rows in ROW_ORDER, a row with extra parameters after its base."""
    base = next((i for i, name in enumerate(ROW_ORDER) if r["row"].startswith(name)), 99)
    return base, r["row"]


def _pm(values: list[float]) -> str:
    """``mean +/- sample std`` in percent (just the value for one seed)."""
    pct = [100 * v for v in values]
    if len(pct) == 1:
        return f"{pct[0]:.2f} %"
    return f"{statistics.mean(pct):.2f} ± {statistics.stdev(pct):.2f} %"


def _seeds(row: dict[str, Any], key: str) -> list[float]:
    """Per-seed values of ``key`` (rows written before --seeds hold one value)."""
    return row.get(f"{key}_seeds", [row[key]])


def markdown(results: dict[str, Any]) -> str:
    seeds = sorted({seed for r in results["rows"] for seed in r.get("seeds", [0])})
    head = (
        "| model | val acc int8 TFLM | float val acc | trained params | deployed params | MACs "
        "| arena (B) | flash (B) | TFLM host latency (ms) | training wall time (s) |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['row']} | {_pm(_seeds(r, 'int8_tflm_val_accuracy'))} "
        f"| {_pm(_seeds(r, 'float_val_accuracy'))} | {r['trained_params']:,} "
        f"| {r['deployed_params']:,} | {r['macs']:,} | {r['arena_bytes']:,} "
        f"| {r['flash_bytes']:,} | {r['latency']['median_ms']:.2f} "
        f"| {statistics.mean(_seeds(r, 'train_seconds')):.0f} |"
        for r in results["rows"]
    ]
    per_seed = []
    if len(seeds) > 1:
        per_seed = [
            "",
            "Per seed (int8 TFLM / float val accuracy, %):",
            "",
            "| model | " + " | ".join(f"seed {s}" for s in seeds) + " |",
            "|---|" + "---|" * len(seeds),
        ]
        for r in results["rows"]:
            got = dict(
                zip(
                    r.get("seeds", [0]),
                    zip(
                        _seeds(r, "int8_tflm_val_accuracy"),
                        _seeds(r, "float_val_accuracy"),
                        strict=True,
                    ),
                    strict=True,
                )
            )
            cells = [
                f"{100 * got[seed][0]:.2f} / {100 * got[seed][1]:.2f}" if seed in got else "-"
                for seed in seeds
            ]
            per_seed.append(f"| {r['row']} | " + " | ".join(cells) + " |")
    by_row = {r["row"]: r for r in results["rows"]}
    rep, twin = (by_row.get(MODELS[i][0]) for i in (0, 1))
    if rep and twin:
        a = dict(zip(rep.get("seeds", [0]), _seeds(rep, "int8_tflm_val_accuracy"), strict=True))
        b = dict(zip(twin.get("seeds", [0]), _seeds(twin, "int8_tflm_val_accuracy"), strict=True))
        diffs = [100 * (a[k] - b[k]) for k in sorted(a) if k in b]
        if len(diffs) > 1:
            per_seed += [
                "",
                "RepCNN - twin, int8 TFLM, same seed: "
                + ", ".join(f"{d:+.2f}" for d in diffs)
                + f" pt (mean {statistics.mean(diffs):+.2f} pt, "
                f"{sum(d > 0 for d in diffs)} of {len(diffs)} seeds positive).",
            ]
    commands = ", ".join(
        sorted({f"`{r.get('command', results['command'])}`" for r in results["rows"]})
    )
    s = results["settings"]
    subset = f", at most {s['max_clips']} clips per split" if s["max_clips"] else ""
    spread = (
        "; accuracy is the mean ± sample std over the training seeds listed below "
        "(cost columns are identical across seeds)"
        if len(seeds) > 1
        else f", seed {seeds[0]}"
    )
    note = (
        f"\nData: `{s['data']}` (train.csv -> training, val.csv -> validation{subset}); "
        f"{common.features_note(s)}; {s['epochs']} epochs, batch {s['batch_size']}{spread}; "
        f"augmentation: time shift and background noise{common.extra_augment_note(s)}. "
        "Accuracy is the int8 "
        "model run in the TFLM Python interpreter. Arena: smallest TFLM arena with which "
        "allocation succeeds (bisected, host build). Latency: median of "
        f"{s['latency_runs']} `invoke()` calls of the TFLM Python interpreter on the host CPU "
        "(reference kernels; relative, not a Cortex-M figure). MACs from the int8 flatbuffer. "
        "Training wall time: per seed (mean), on a machine shared with other jobs (an upper "
        "bound).\n"
    )
    return (
        f"# RepCNN benchmark\n\nProduced by {commands}.\n\n"
        + head
        + "\n".join(lines)
        + "\n"
        + "".join(line + "\n" for line in per_seed)
        + note
    )


def bench_seeds(
    row: str, model: str, params: dict[str, Any], ds: Any, args: argparse.Namespace
) -> dict[str, Any]:
    """``common.bench_one`` once per seed; seed 0 keeps its run folder, seed n uses seed<n>/."""
    runs = []
    for seed in args.seeds:
        work = args.work_dir if seed == 0 else Path(args.work_dir) / f"seed{seed}"
        runs.append(
            common.bench_one(
                row,
                model,
                params,
                ds,
                argparse.Namespace(**{**vars(args), "seed": seed, "work_dir": work}),
            )
        )
    out = dict(runs[0])
    out["seeds"] = list(args.seeds)
    for key in ("int8_tflm_val_accuracy", "float_val_accuracy", "train_seconds"):
        out[f"{key}_seeds"] = [r[key] for r in runs]
    out["int8_tflm_val_accuracy"] = statistics.mean(out["int8_tflm_val_accuracy_seeds"])
    out["float_val_accuracy"] = statistics.mean(out["float_val_accuracy_seeds"])
    out["tflite_seeds"] = [r["tflite"] for r in runs]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(p, epochs=30)
    p.add_argument("--models", default="all", help="comma-separated row indices of MODELS, or all")
    p.add_argument(
        "--seeds", default="0", help="comma-separated training seeds; accuracy is their mean ± std"
    )
    p.add_argument(
        "--merge", action="store_true", help="keep the other models' rows of results/repcnn.json"
    )
    p.add_argument(
        "--params",
        default="",
        help="model parameters for every picked row, named in the row, e.g. "
        "'{\"channels\": [24, 24, 24, 32, 32]}' (RepCNN and its twin)",
    )
    args = p.parse_args(argv)
    args.seeds = [int(v) for v in args.seeds.split(",")]
    args.work_dir = args.work_dir or common.WORK / "repcnn"

    ds = open_dataset(args.data, noise_dir=args.noise_dir)
    ds = common.subsample(ds, args.max_clips, args.seed)
    picked = MODELS if args.models == "all" else [MODELS[int(i)] for i in args.models.split(",")]
    extra = parse_params(args.params)
    if extra:
        picked = [(_named(row, extra), model, {**p, **extra}) for row, model, p in picked]
    rows = [
        bench_seeds(row, model, params, ds, args) | {"command": common.command_line()}
        for row, model, params in picked
    ]
    previous = Path(args.out) / "repcnn.json"
    if args.merge and previous.exists():  # keep the rows of models not run this time
        done = {r["row"] for r in rows}
        before = json.loads(previous.read_text())
        kept = [{"command": before["command"]} | r for r in before["rows"] if r["row"] not in done]
        rows = sorted(kept + rows, key=_row_rank)
    common.write_results("repcnn", args, markdown, rows=rows)
    print(json.dumps({r["row"]: r["int8_tflm_val_accuracy"] for r in rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
