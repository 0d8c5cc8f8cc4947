"""Slimmable supernet trained once vs widths trained alone, as deployed (int8, TFLM).

One run trains a slimmable supernet with the sandwich rule, measures every width through the
user path (``tfkws slim select``: extract -> fold -> int8 -> accuracy in the TFLM interpreter,
arena, flash, MACs) plus each width's float accuracy, then trains a few widths alone (a
supernet of exactly that width's channels, heads and units, one width, same epochs) and measures
them the same way. Writes ``results/slimmable.json``, ``results/slimmable.md`` and
``results/slimmable_pareto.png``.

    python benchmarks/slimmable.py                   # full run (CPU-heavy: schedule it)
    python benchmarks/slimmable.py --epochs 1 --max_clips 200 --out /tmp/slim-smoke  # smoke test
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import common
import numpy as np

from tfkws.data.dataset import open_dataset
from tfkws.data.kws_dataset import KwsDataset

MODELS = {
    "slimmable_ds_cnn": "Slimmable DS-CNN",
    "slimmable_tc_cnn": "Slimmable temporal CNN",
    "slimmable_kwt": "Slimmable keyword transformer",
}


def twin_params(model: str, params: dict[str, Any], width: float) -> dict[str, Any]:
    """The supernet's parameters for the sub-network at ``width``, as a one-width model."""
    from tfkws.layers.slimmable_base import active_units
    from tfkws.models.catalog import get_spec

    defaults = get_spec(model).defaults | params
    if model == "slimmable_kwt":  # heads of a fixed size: embedding and MLP slice by head size
        head = defaults["embed_dim"] // defaults["num_heads"]
        dim = active_units(defaults["embed_dim"], width, head)
        return params | {
            "embed_dim": dim,
            "num_heads": dim // head,
            "mlp_dim": active_units(defaults["mlp_dim"], width, head),
            "widths": [1.0],
        }
    full, div = params["channels"], int(defaults["divisor"])  # each layer's live channels
    ch = (
        [active_units(int(c), width, div) for c in full]
        if isinstance(full, list | tuple)
        else active_units(int(full), width, div)
    )
    return params | {"channels": ch, "widths": [1.0]}


def float_width_accuracy(run_dir: Path, ds: KwsDataset) -> dict[float, float]:
    """Float validation accuracy of the trained supernet run at each of its widths."""
    from tfkws.features.clips import clip_features
    from tfkws.layers.slimmable_base import model_widths, set_width
    from tfkws.runs.model import load_trained_model

    model, run = load_trained_model(run_dir)
    x, y = clip_features(list(ds.split("validation")), ds.labels, run.features)
    out = {}
    for w in model_widths(model):
        set_width(model, w)
        pred = np.argmax(model.predict(x, batch_size=256, verbose=0), axis=-1)
        out[float(w)] = float(np.mean(pred == y))
    return out


def train_supernet(
    tag: str, params: dict[str, Any], ds: KwsDataset, args: argparse.Namespace
) -> dict[str, Any]:
    return common.train_run(args.model, params, ds, args, Path(args.work_dir) / tag)


def measure_widths(
    tag: str, trained: dict[str, Any], ds: KwsDataset, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Every width of run ``tag`` through ``slim select`` (int8 in TFLM) + its float accuracy."""
    from tfkws.slimmable.select import select_width

    run_dir = Path(args.work_dir) / tag
    sel_dir = Path(args.work_dir) / f"{tag}_select"
    if sel_dir.exists():
        shutil.rmtree(sel_dir)
    doc = select_width(
        run_dir,
        sel_dir,
        max_arena=1 << 30,
        max_flash=1 << 30,
        data=str(args.data),
        split="validation",
        max_clips=args.max_clips,
        seed=args.seed,
        num_calibration=args.num_calibration,
    )
    floats = float_width_accuracy(run_dir, ds)
    rows = []
    for r in doc["widths"]:
        rows.append(
            {
                "width": r["width"],
                "params": r["params"],
                "macs": r["macs"],
                "relative_macs": r["relative_macs"],
                "float_val_accuracy": floats[r["width"]],
                "int8_tflm_val_accuracy": r["accuracy"],
                "val_clips": r["num_clips"],
                "arena_bytes": r["arena_min_bytes"],
                "model_bytes": r["model_bytes"],
                "flash_bytes": r["flash_bytes"],
                "train_seconds": trained["train_seconds"],
                "tflite": str(sel_dir / r["file"]),
            }
        )
    return rows


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    sup = results["supernet"]
    alone = {round(r["width"], 4): r for r in results["alone"]}
    model = s.get("model", "slimmable_ds_cnn")  # results written before --model existed
    lines = [
        f"# {MODELS[model]} benchmark",
        "",
        f"Produced by `{results['command']}`.",
        "",
        f"Supernet `{model}` {json.dumps(s['supernet_params'])}: {sup['params']:,} parameters "
        f"at full width, {len(results['rows'])} widths, trained once ({s['epochs']} epochs, "
        f"{sup['train_seconds'] / 60:.1f} min). Sandwich-rule training cost: "
        f"{sup['sandwich_cost']['cost_per_step']:.2f} full-width steps per step (MACs of every "
        "width trained, relative to one step of the full model; the paper reports 3.72x for 40 "
        "widths). Alone: the same sub-network (identical channel counts, identical deployed "
        "graph) trained by itself for the same epochs.",
        "",
        "| width | params | MACs | arena (B) | flash (B) | float val | int8 TFLM val "
        "| alone: int8 TFLM val | supernet - alone |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        a = alone.get(round(r["width"], 4))
        twin = f"{100 * a['int8_tflm_val_accuracy']:.2f} %" if a else ""
        delta = (
            f"{100 * (r['int8_tflm_val_accuracy'] - a['int8_tflm_val_accuracy']):+.2f} pt"
            if a
            else ""
        )
        lines.append(
            f"| {r['width']:g} | {r['params']:,} | {r['macs']:,} | {r['arena_bytes']:,} "
            f"| {r['flash_bytes']:,} | {100 * r['float_val_accuracy']:.2f} % "
            f"| {100 * r['int8_tflm_val_accuracy']:.2f} % | {twin} | {delta} |"
        )
    subset = f", at most {s['max_clips']} clips per split" if s["max_clips"] else ""
    lines += [
        "",
        f"Data: `{s['data']}` (train.csv -> training, val.csv -> validation{subset}); batch "
        f"{s['batch_size']}, lr {s['learning_rate']}, seed {s['seed']}; "
        f"{common.features_note(s)}; augmentation: time shift and background noise"
        f"{common.extra_augment_note(s)}. int8 accuracy: the "
        "exported width run in the TFLM Python interpreter (`tfkws slim select`). Arena: "
        "smallest TFLM arena that allocates (bisected, host build). Flash: model + TFLM runtime "
        "code estimate for the model's ops (Cortex-M4 table). Pareto plot: "
        "`slimmable_pareto.png`.",
        "",
    ]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, alone = results["rows"], results["alone"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in (
        (axes[0], "arena_bytes", "TFLM arena (bytes)"),
        (axes[1], "macs", "MACs per inference"),
    ):
        ax.plot(
            [r[key] for r in rows],
            [100 * r["int8_tflm_val_accuracy"] for r in rows],
            "o-",
            label="supernet widths (trained once)",
        )
        for r in rows:
            ax.annotate(f"{r['width']:g}", (r[key], 100 * r["int8_tflm_val_accuracy"]), fontsize=7)
        ax.plot(
            [r[key] for r in alone],
            [100 * r["int8_tflm_val_accuracy"] for r in alone],
            "s",
            color="tab:red",
            label="trained alone",
        )
        ax.set_xlabel(label)
        ax.set_ylabel("int8 TFLM val accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    name = MODELS[results["settings"].get("model", "slimmable_ds_cnn")]
    fig.suptitle(f"{name} on Arabic Speech Commands: accuracy vs cost per width")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    from tfkws.cli.common import parse_params
    from tfkws.layers.slimmable_base import DEFAULT_WIDTHS
    from tfkws.models.catalog import get_spec

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(p, epochs=20)
    p.add_argument("--model", default="slimmable_ds_cnn", choices=sorted(MODELS))
    p.add_argument(
        "--params",
        default="",
        help="more supernet parameters (JSON or key=value), e.g. for slimmable_tc_cnn "
        "'{\"channels\": [64, 64, 64, 96, 96]}'",
    )
    p.add_argument("--channels", type=int, default=64, help="slimmable_ds_cnn: full-width channels")
    p.add_argument("--first_stride", default="2,2", help="first conv stride (DS-CNN-S: 2,2)")
    p.add_argument("--block_stride", type=int, default=1, help="first DS block stride (S: 1)")
    p.add_argument("--widths", default=",".join(map(str, DEFAULT_WIDTHS)))
    p.add_argument(
        "--alone", default="0.25,0.55,1.0", help='widths also trained alone ("" for none)'
    )
    p.add_argument("--random_widths", type=int, default=1, help="sandwich random widths/step")
    args = p.parse_args(argv)
    args.work_dir = args.work_dir or common.WORK / "slimmable"
    widths = [float(w) for w in args.widths.split(",")]
    alone_widths = [float(w) for w in args.alone.split(",") if w.strip()]
    if not set(alone_widths) <= set(widths):
        p.error(f"--alone widths {alone_widths} must be among --widths {widths}")

    ds = open_dataset(args.data, noise_dir=args.noise_dir)
    ds = common.subsample(ds, args.max_clips, args.seed)
    t0 = time.time()
    params: dict[str, Any] = {"widths": widths, "sandwich_random_widths": args.random_widths}
    if args.model == "slimmable_ds_cnn":
        params |= {
            "channels": args.channels,
            "first_stride": [int(v) for v in args.first_stride.split(",")],
            "block_stride": args.block_stride,
        }
    elif args.model == "slimmable_tc_cnn":
        params["channels"] = list(get_spec(args.model).defaults["channels"])
    params |= parse_params(args.params)
    trained = train_supernet("supernet", params, ds, args)
    rows = measure_widths("supernet", trained, ds, args)
    alone = []
    for w in alone_widths:
        tag = f"alone_w{w:g}"
        twin = twin_params(args.model, params, w)
        trained_twin = train_supernet(tag, twin, ds, args)
        (row,) = measure_widths(tag, trained_twin, ds, args)
        sizes = {k: v for k, v in twin.items() if k in ("channels", "embed_dim", "mlp_dim")}
        alone.append(row | {"width": w} | sizes)  # the width it mirrors
    results = common.write_results(
        "slimmable",
        args,
        markdown,
        {"model": args.model, "supernet_params": params, "alone": alone_widths},
        supernet={
            "params": trained["params"],
            "train_seconds": trained["train_seconds"],
            "sandwich_cost": trained["sandwich_cost"],
            "best_val_accuracy": trained["best_val_accuracy"],
        },
        rows=rows,
        alone=alone,
        seconds=round(time.time() - t0, 1),
    )
    plot(results, args.out / "slimmable_pareto.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
