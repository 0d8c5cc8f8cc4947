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
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from tfkws import __version__, atomic  # noqa: E402
from tfkws.data.dataset import KwsDataset, open_dataset  # noqa: E402
from tfkws.features.config import FeatureConfig  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "arabic_speech_commands"
DEFAULT_NOISE = REPO.parent / "shared" / "data" / "speech_commands_noise"

# (row name, registered model, params). The twin must mirror RepCNN's channels/strides/kernel.
MODELS: list[tuple[str, str, dict[str, Any]]] = [
    ("RepCNN (multi-branch, folded)", "repcnn", {}),
    ("Uni-branch twin", "repcnn_unibranch", {}),
    ("BC-ResNet-1", "bc_resnet", {"width": 1}),
    ("BC-ResNet-3", "bc_resnet", {"width": 3}),
]


def subsample(ds: KwsDataset, max_clips: int | None, seed: int) -> KwsDataset:
    """At most ``max_clips`` examples per split, chosen by ``seed`` (for smoke runs)."""
    if not max_clips:
        return ds
    rng = np.random.default_rng(seed)
    splits = {}
    for name, examples in ds.splits.items():
        if len(examples) > max_clips:
            pick = sorted(rng.choice(len(examples), max_clips, replace=False))
            examples = [examples[i] for i in pick]
        splits[name] = examples
    return dataclasses.replace(ds, splits=splits)


def tflm_latency_ms(tflite: bytes, runs: int, seed: int) -> dict[str, float]:
    """Median / min wall time of one ``invoke`` in the TFLM Python interpreter (host CPU)."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(tflite)
    shape = interp.get_input_details(0)["shape"]
    x = np.random.default_rng(seed).integers(-128, 128, size=shape, dtype=np.int8)
    interp.set_input(x, 0)
    for _ in range(3):  # warm-up
        interp.invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        interp.invoke()
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "runs": runs}


def deployed_cost(tflite: bytes, latency_runs: int, seed: int) -> dict[str, Any]:
    from firmware_gen.arena import measure_arena
    from firmware_gen.layers import layer_table
    from firmware_gen.model import parse_model

    info = parse_model(tflite)
    rows = layer_table(info)
    arena = measure_arena(tflite)
    return {
        "macs": int(sum(r["macs"] for r in rows)),
        "weight_bytes": int(sum(r["weight_bytes"] for r in rows)),
        "flash_bytes": len(tflite),
        "arena_bytes": int(arena.min_bytes),
        "latency": tflm_latency_ms(tflite, latency_runs, seed),
        "operators": len(rows),
    }


def bench_one(
    row: str, model: str, params: dict[str, Any], ds: KwsDataset, args: argparse.Namespace
) -> dict[str, Any]:
    from tfkws.conversion.export import export_run
    from tfkws.folding.fold import fold_model
    from tfkws.training.run_config import TrainConfig
    from tfkws.training.trainer import load_trained_model, train
    from tfkws.verification.evaluate import evaluate_tflite

    tag = model + "".join(f"_{k}{v}" for k, v in sorted(params.items()))
    run_dir = Path(args.work_dir) / tag
    cfg = TrainConfig(
        model=model,
        model_params=params,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
    )
    t0 = time.time()
    trained = train(
        ds,
        FeatureConfig(),
        cfg,
        run_dir,
        resume=args.resume,
        data_path=str(args.data),
        noise_dir=str(args.noise_dir) if args.noise_dir else None,
        test_split=None,
        verbose=args.verbose,
    )
    keras_model, _ = load_trained_model(run_dir)
    trainable = int(sum(int(np.prod(w.shape)) for w in keras_model.trainable_weights))
    deployed_params = int(fold_model(keras_model).count_params())
    tflite_path = run_dir / f"{tag}.tflite"
    exported = export_run(
        run_dir, tflite_path, num_calibration=args.num_calibration, seed=args.seed
    )
    tflite = tflite_path.read_bytes()
    evaluation = evaluate_tflite(
        tflite_path, str(args.data), split="validation", max_clips=args.max_clips, seed=args.seed
    )
    return {
        "row": row,
        "model": model,
        "model_params": params,
        "trained_params": trainable,
        "deployed_params": deployed_params,
        "float_val_accuracy": trained["val"]["accuracy"],
        "int8_tflm_val_accuracy": evaluation["accuracy"],
        "val_clips": int(evaluation["num_clips"]),
        "fold_max_abs_diff": exported.fold_max_abs_diff,
        "ops": exported.ops,
        **deployed_cost(tflite, args.latency_runs, args.seed),
        "tflite": str(tflite_path),
        "seconds": round(time.time() - t0, 1),
    }


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
    return "# RepCNN benchmark\n\n" + head + "\n".join(lines) + "\n" + note


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    noise = DEFAULT_NOISE if DEFAULT_NOISE.exists() else None
    p.add_argument("--noise_dir", type=Path, default=noise)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--work_dir", type=Path, default=None, help="run folders (OUT/repcnn_runs)")
    p.add_argument("--models", default="all", help="comma-separated row indices of MODELS, or all")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch_size", type=int, default=100)
    p.add_argument("--learning_rate", type=float, default=0.005)
    p.add_argument("--num_calibration", type=int, default=400)
    p.add_argument("--max_clips", type=int, default=0, help="subsample each split (smoke runs)")
    p.add_argument("--latency_runs", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--verbose", type=int, default=2)
    args = p.parse_args(argv)
    args.work_dir = args.work_dir or args.out / "repcnn_runs"

    ds = open_dataset(args.data, noise_dir=args.noise_dir)
    ds = subsample(ds, args.max_clips, args.seed)
    picked = MODELS if args.models == "all" else [MODELS[int(i)] for i in args.models.split(",")]
    rows = [bench_one(row, model, params, ds, args) for row, model, params in picked]
    results = {
        "benchmark": "repcnn",
        "tfkws_version": __version__,
        "settings": {
            "data": str(args.data),
            "noise_dir": str(args.noise_dir) if args.noise_dir else None,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "num_calibration": args.num_calibration,
            "max_clips": args.max_clips,
            "latency_runs": args.latency_runs,
            "seed": args.seed,
            "features": FeatureConfig().to_dict(),
        },
        "rows": rows,
    }
    atomic.write_json(args.out / "repcnn.json", results)
    atomic.write_text(args.out / "repcnn.md", markdown(results))
    print(markdown(results))
    print(json.dumps({r["row"]: r["int8_tflm_val_accuracy"] for r in rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
