"""RepCNN vs its uni-branch twin vs BC-ResNet, side by side in one run, as deployed (int8, TFLM).

For every model: train (``tfkws.training.train``), export (fold -> int8 -> .tflite + metadata),
then measure what the device would see: validation accuracy of the int8 model in the TFLM
interpreter, parameters (trained and deployed), MACs, minimum TFLM arena (bisected), flash
(flatbuffer bytes) and TFLM host latency per inference. Writes ``results/repcnn.json`` and a
Markdown table ``results/repcnn.md``.

    python benchmarks/repcnn.py                      # full run (CPU-heavy: schedule it)
    python benchmarks/repcnn.py --epochs 1 --max_clips 200 --out /tmp/repcnn-smoke   # smoke test
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import common

from tfkws.data.dataset import open_dataset

# (row name, registered model, params). The twin must mirror RepCNN's channels/strides/kernel.
MODELS: list[tuple[str, str, dict[str, Any]]] = [
    ("RepCNN (multi-branch, folded)", "repcnn", {}),
    ("Uni-branch twin", "repcnn_unibranch", {}),
    ("BC-ResNet-1", "bc_resnet", {"width": 1}),
    ("BC-ResNet-3", "bc_resnet", {"width": 3}),
]


def markdown(results: dict[str, Any]) -> str:
    head = (
        "| model | val acc int8 TFLM | float val acc | trained params | deployed params | MACs "
        "| arena (B) | flash (B) | TFLM host latency (ms) |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['row']} | {100 * r['int8_tflm_val_accuracy']:.2f} % "
        f"| {100 * r['float_val_accuracy']:.2f} % | {r['trained_params']:,} "
        f"| {r['deployed_params']:,} | {r['macs']:,} | {r['arena_bytes']:,} "
        f"| {r['flash_bytes']:,} | {r['latency']['median_ms']:.2f} |"
        for r in results["rows"]
    ]
    s = results["settings"]
    subset = f", at most {s['max_clips']} clips per split" if s["max_clips"] else ""
    note = (
        f"\nData: `{s['data']}` (train.csv -> training, val.csv -> validation{subset}); "
        f"{s['epochs']} epochs, batch {s['batch_size']}, seed {s['seed']}. Accuracy is the int8 "
        "model run in the TFLM Python interpreter. Arena: smallest TFLM arena with which "
        "allocation succeeds (bisected, host build). Latency: median of "
        f"{s['latency_runs']} `invoke()` calls of the TFLM Python interpreter on the host CPU "
        "(reference kernels; relative, not a Cortex-M figure). MACs from the int8 flatbuffer.\n"
    )
    return (
        f"# RepCNN benchmark\n\nProduced by `{results['command']}`.\n\n"
        + head
        + "\n".join(lines)
        + "\n"
        + note
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(p, epochs=30)
    p.add_argument("--models", default="all", help="comma-separated row indices of MODELS, or all")
    args = p.parse_args(argv)
    args.work_dir = args.work_dir or common.WORK / "repcnn"

    ds = open_dataset(args.data, noise_dir=args.noise_dir)
    ds = common.subsample(ds, args.max_clips, args.seed)
    picked = MODELS if args.models == "all" else [MODELS[int(i)] for i in args.models.split(",")]
    rows = [common.bench_one(row, model, params, ds, args) for row, model, params in picked]
    common.write_results("repcnn", args, markdown, rows=rows)
    print(json.dumps({r["row"]: r["int8_tflm_val_accuracy"] for r in rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
