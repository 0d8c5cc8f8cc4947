"""DS-CNN on Arabic Speech Commands: trained on train.csv, chosen on val.csv, measured as deployed.

Writes ``results/asc_dscnn.json`` and ``results/asc_dscnn.md``: val accuracy (float, and int8 in
the TFLM interpreter), parameters, ``.tflite`` bytes, minimum arena, TFLM host latency per
inference and training wall time, with the command that produced them.

    python benchmarks/asc_dscnn.py                      # DS-CNN-S, 40 epochs (CPU: ~20 min)
    python benchmarks/asc_dscnn.py --sizes s,m          # more rows
    python benchmarks/asc_dscnn.py --epochs 1 --max_clips 200 --out /tmp/asc-smoke   # smoke test
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import common

from tfkws.cli.common import parse_params
from tfkws.data.dataset import open_dataset


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    subset = f", at most {s['max_clips']} clips per split" if s["max_clips"] else ""
    lines = [
        "# DS-CNN on Arabic Speech Commands",
        "",
        f"Produced by `{results['command']}` on {results['machine']}.",
        "",
        "| model | val acc int8 TFLM | val acc float | params | .tflite bytes | MACs "
        "| arena (B) | TFLM host latency (ms) | training wall time (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['row']} | {100 * r['int8_tflm_val_accuracy']:.2f} % "
            f"| {100 * r['float_val_accuracy']:.2f} % | {r['deployed_params']:,} "
            f"| {r['flash_bytes']:,} | {r['macs']:,} | {r['arena_bytes']:,} "
            f"| {r['latency']['median_ms']:.2f} | {r['train_seconds']:.0f} |"
        )
    lines += [
        "",
        f"Data: `{s['data']}`: train.csv -> training, val.csv -> validation "
        f"({results['val_clips']} clips{subset}), 40 classes, {common.features_note(s)}. "
        f"{s['epochs']} epochs, batch {s['batch_size']}, Adam {s['learning_rate']} with warm-up "
        f"and cosine decay; augmentation: time shift and background noise from "
        f"`{s['noise_dir']}`{common.extra_augment_note(s)}; seed {s['seed']}. The model kept is "
        "the epoch with the best float val accuracy. int8: post-training quantization (400 "
        "training clips), run in the TFLM "
        "Python interpreter. Arena: smallest TFLM arena with which allocation succeeds "
        "(bisected, x86-64 host build). Latency: median `invoke()` of "
        f"{s['latency_runs']} in the TFLM Python interpreter on the host CPU "
        "(reference kernels; relative, not a Cortex-M figure).",
        "",
    ]
    return "\n".join(lines)


def _row(size: str, extra: dict[str, Any]) -> str:
    """'DS-CNN-S', with the extra parameters named ('DS-CNN-S rep=True')."""
    return " ".join([f"DS-CNN-{size.upper()}", *(f"{k}={v}" for k, v in sorted(extra.items()))])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(p, epochs=40)
    p.add_argument("--sizes", default="s", help="DS-CNN sizes (s, m, l), comma-separated")
    p.add_argument(
        "--params",
        default="",
        help="extra DS-CNN parameters for every row, e.g. rep=true (multi-branch, folded)",
    )
    args = p.parse_args(argv)
    args.work_dir = args.work_dir or common.WORK / "asc_dscnn"

    ds = open_dataset(args.data, noise_dir=args.noise_dir)
    ds = common.subsample(ds, args.max_clips, args.seed)
    extra = parse_params(args.params)
    rows = [
        common.bench_one(_row(size, extra), "ds_cnn", {"size": size, **extra}, ds, args)
        for size in args.sizes.split(",")
    ]
    common.write_results("asc_dscnn", args, markdown, val_clips=rows[0]["val_clips"], rows=rows)
    print(json.dumps({r["row"]: r["int8_tflm_val_accuracy"] for r in rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
