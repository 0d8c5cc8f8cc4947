"""Float vs post-training int8 vs QAT int8, per model family, measured in TFLM.

For every family: a trained float run folder (the other benchmarks' runs by default: DS-CNN-S
from ``asc_dscnn.py``, RepCNN and BC-ResNet-1/-3 from ``repcnn.py``, a width cut from the
``slimmable.py`` supernet), then

* float: the float Keras model's validation accuracy (the run's ``results.json``);
* PTQ: ``tfkws export`` (fold -> int8 with a representative set) -> accuracy in TFLM;
* QAT: ``tfkws qat`` (fold -> fake-quant fine-tuning) -> ``tfkws export`` -> accuracy in TFLM.

Writes ``results/qat.json`` and ``results/qat.md``.

    python benchmarks/qat.py                      # needs the float runs (see above)
    python benchmarks/qat.py --families ds_cnn --qat_epochs 1 --max_clips 200 --out /tmp/q
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

from tfkws.quantization.ptq import PTQ_CLIPS

# family -> (row name, float run folder relative to benchmarks/runs, slimmable width or None)
FAMILIES: dict[str, tuple[str, str, float | None]] = {
    "ds_cnn": ("DS-CNN-S", "asc_dscnn/ds_cnn_sizes", None),
    "repcnn": ("RepCNN (folded)", "repcnn/repcnn", None),
    "bc_resnet": ("BC-ResNet-1", "repcnn/bc_resnet_width1", None),
    "bc_resnet3": ("BC-ResNet-3", "repcnn/bc_resnet_width3", None),
    "slimmable": ("Slimmable DS-CNN, width 0.55", "slimmable/supernet", 0.55),
}


def _float_accuracy(run_dir: Path, width: float | None, data: str) -> float:
    if width is None:
        return float(json.loads((run_dir / "results.json").read_text())["val"]["accuracy"])
    sys.path.insert(0, str(Path(__file__).parent))
    from slimmable import float_width_accuracy

    from tfkws.data.dataset import open_dataset

    return float_width_accuracy(run_dir, open_dataset(data))[width]


def bench_family(family: str, args: argparse.Namespace) -> dict[str, Any]:
    from tfkws.cli.main import main as tfkws
    from tfkws.verification.evaluate import evaluate_tflite

    row, rel, width = FAMILIES[family]
    src = common.WORK / rel
    if not (src / "results.json").exists():
        raise SystemExit(f"{src}: no trained float run; run the benchmark that makes it first")
    work = Path(args.work_dir) / family
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    def accuracy(path: Path) -> float:
        rep = evaluate_tflite(
            path,
            str(args.data),
            split="validation",
            max_clips=args.max_clips or None,
            seed=args.seed,
        )
        return float(rep["accuracy"])

    ptq = work / "ptq.tflite"
    qat_run = work / "qat_run"
    qat = work / "qat.tflite"
    if width is None:
        cmd_ptq = ["export", "--run", str(src), "--out", str(ptq)]
        cmd_qat = ["qat", "--run", str(src), "--out", str(qat_run)]
    else:
        cmd_ptq = ["slim", "extract", "--run", str(src), "--width", str(width), "--out", str(ptq)]
        cmd_qat = ["slim", "qat", "--run", str(src), "--width", str(width), "--out", str(qat_run)]
    cmd_ptq += ["--num_calibration", str(args.num_calibration), "--seed", str(args.seed)]
    cmd_qat += ["--epochs", str(args.qat_epochs), f"--verbose={args.verbose >= 2}"]
    if args.qat_lr:
        cmd_qat += ["--lr", str(args.qat_lr)]
    distill = args.qat_distill and width is None  # a supernet is no plain teacher
    if distill:  # QAT learns from the float model it starts from, too
        cmd_qat += ["--teacher", str(src)]
    if qat_run.exists() and not args.resume:
        shutil.rmtree(qat_run)
    elif qat_run.exists():
        cmd_qat.append("--resume")
    for cmd in (cmd_ptq, cmd_qat, ["export", "--run", str(qat_run), "--out", str(qat)]):
        if tfkws(cmd) != 0:
            raise SystemExit(f"tfkws {' '.join(cmd)} failed")
    qat_results = json.loads((qat_run / "results.json").read_text())
    return {
        "family": family,
        "row": row,
        "float_run": str(src),
        "width": width,
        "float_val_accuracy": _float_accuracy(src, width, str(args.data)),
        "ptq_int8_tflm_val_accuracy": accuracy(ptq),
        "qat_int8_tflm_val_accuracy": accuracy(qat),
        "qat_fake_quant_val_accuracy": float(qat_results["val"]["accuracy"]),
        # Fake-quant val accuracy as calibrated, before any step; kept if no epoch beat it.
        "qat_start_val_accuracy": qat_results.get("qat_start_val_accuracy"),
        "qat_kept_start": qat_results.get("qat_kept_start"),
        "qat_start_ranges": "ptq_clips",  # rows without it: 4 augmented training batches
        "qat_epochs": args.qat_epochs,
        "qat_lr": args.qat_lr,
        "qat_distill": distill,
        "qat_train_seconds": qat_results["train_seconds"],
        "ptq_bytes": ptq.stat().st_size,
        "qat_bytes": qat.stat().st_size,
        "seconds": round(time.time() - t0, 1),
    }


def _recipe(r: dict[str, Any]) -> str:
    """QAT epochs and peak learning rate of a row (None: the float run's lr / 100)."""
    lr = r.get("qat_lr")
    if lr is None and "--qat_lr" in r["command"]:  # rows written before qat_lr was recorded
        lr = float(r["command"].split("--qat_lr")[1].split()[0].strip("="))
    recipe = f"{r['qat_epochs']} ep, lr {lr:g}" if lr else f"{r['qat_epochs']} ep, lr float/100"
    ranges = "PTQ clips" if r.get("qat_start_ranges") == "ptq_clips" else "train batches"
    kept = ", start kept" if r.get("qat_kept_start") else ""
    distill = ", distilled from the float model" if r.get("qat_distill") else ""
    return f"{recipe}{distill}, start ranges: {ranges}{kept}"


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    lines = [
        "# QAT benchmark: float vs PTQ int8 vs QAT int8",
        "",
        "Produced by "
        + ", ".join(sorted({f"`{r['command']}`" for r in results["rows"]}))
        + " (each row records its command).",
        "",
        "| family | float val | PTQ int8 TFLM | QAT int8 TFLM | QAT - float | QAT - PTQ "
        "| QAT fine-tune |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        f, p, q = (
            100 * r[k]
            for k in (
                "float_val_accuracy",
                "ptq_int8_tflm_val_accuracy",
                "qat_int8_tflm_val_accuracy",
            )
        )
        lines.append(
            f"| {r['row']} | {f:.2f} % | {p:.2f} % | {q:.2f} % "
            f"| {q - f:+.2f} pt | {q - p:+.2f} pt | {_recipe(r)} |"
        )
    subset = f" (at most {s['max_clips']} clips)" if s["max_clips"] else ""
    lines += [
        "",
        f"Data: `{s['data']}`, val.csv{subset}. Float: the trained float model (Keras) on val. "
        f"PTQ: `tfkws export` (BN/branches folded, int8 calibrated on {PTQ_CLIPS} of "
        f"{s['num_calibration']} representative training clips). QAT: `tfkws qat` (or "
        "`tfkws slim qat` for a supernet width): fake-quant fine-tuning of the folded graph from "
        "the float weights (epochs and peak lr in the last column, cosine schedule; the "
        'default lr is now the float run\'s / 100; "start kept": no epoch beat the calibrated '
        "fake-quant start on val, so QAT returned the start, which `tfkws export` writes as the "
        "float run's PTQ model (calibrated on the same clips, it is that model); start ranges: "
        "from PTQ's calibration clips, or, in rows measured before that, from 4 augmented "
        "training batches), then `tfkws export`. Both int8 models run in the TFLM Python "
        "interpreter (`tfkws eval`'s path). Float runs: "
        + ", ".join(f"`{Path(r['float_run']).relative_to(common.REPO)}`" for r in results["rows"])
        + ".",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(p, epochs=0)
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--qat_epochs", type=int, default=3)
    p.add_argument("--qat_lr", type=float, default=None)
    p.add_argument(
        "--qat_distill",
        action="store_true",
        help="QAT also distils from the float run it fine-tunes (not for supernet widths)",
    )
    p.add_argument(
        "--merge", action="store_true", help="keep rows of other families from results/qat.json"
    )
    args = p.parse_args(argv)
    args.work_dir = args.work_dir or common.WORK / "qat"
    families = args.families.split(",")
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        p.error(f"unknown families {unknown}; known: {sorted(FAMILIES)}")
    rows = [bench_family(f, args) | {"command": common.command_line()} for f in families]
    previous = Path(args.out) / "qat.json"
    if args.merge and previous.exists():  # keep the other families' rows (run separately)
        kept = [r for r in json.loads(previous.read_text())["rows"] if r["family"] not in families]
        rows = sorted(kept + rows, key=lambda r: list(FAMILIES).index(r["family"]))
    extra = {"qat_epochs": args.qat_epochs, "qat_lr": args.qat_lr, "qat_distill": args.qat_distill}
    common.write_results("qat", args, markdown, extra, rows=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
