"""Pick the width of a slimmable supernet to deploy: the most accurate one that fits the budget.

Every width is cut out as an int8 .tflite (``export_width``) and measured the way it will run:
accuracy in TFLM on the validation split (all clips when the dataset has none), the tensor arena
TFLM needs (``firmware_gen.arena.measure_arena``: host minimum and the recommended size with its
32-bit estimate and margin), flash = model bytes + TFLM runtime code estimate for its ops, and MACs.
A width fits when the recommended arena and the flash fit every target (as ``firmware-gen
--check`` judges it). The most accurate fitting width wins (ties: fewer MACs) and is copied to
``selected.tflite`` + ``selected.metadata.json``; ``widths.json`` / ``widths.md`` hold every
width's numbers and ``pareto.png`` plots accuracy against arena and against MACs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from absl import logging

from tfkws import atomic
from tfkws.errors import TfkwsError
from tfkws.quantization.ptq import REPRESENTATIVE_CLIPS

SELECTED = "selected.tflite"
WIDTHS_DIR = "widths"
FORMAT = "tfkws-slim-select"


class NoWidthFits(TfkwsError):
    """No width of the supernet fits the budget (the CLI exits 1, like ``firmware-gen --check``)."""

    exit_code = 1


def budget_targets(
    targets: Sequence[str] = (), max_arena: int | None = None, max_flash: int | None = None
) -> list[dict]:
    """The limits to check: named firmware_gen targets, plus ``custom`` for explicit limits."""
    from firmware_gen.targets import resolve_targets

    names = [n.strip() for spec in targets for n in str(spec).split(",") if n.strip()]
    if (max_arena is None) != (max_flash is None):
        raise TfkwsError("--max_arena and --max_flash go together (give both limits)")
    if not names and max_arena is None:
        raise TfkwsError(
            "slim select needs a budget: --target T[,T...] or --max_arena BYTES --max_flash BYTES"
        )
    for name, value in (("--max_arena", max_arena), ("--max_flash", max_flash)):
        if value is not None and int(value) <= 0:
            raise TfkwsError(f"{name} must be > 0 bytes (got {value})")
    return resolve_targets(names, ram=max_arena, flash=max_flash)


def _tag(width: float) -> str:
    return f"{float(width):.4g}".replace(".", "_")


def _measure(path: Path, meta: dict, data: str, split: str, max_clips: int, seed: int) -> dict:
    from firmware_gen.arena import measure_arena
    from firmware_gen.runtime_size import runtime_estimate
    from tfkws.verification.evaluate import evaluate_tflite

    tflite = path.read_bytes()
    rep = evaluate_tflite(path, data, split=split, max_clips=max_clips or None, seed=seed)
    arena = measure_arena(tflite, source=path.name)
    runtime = runtime_estimate(list(meta["ops"]))
    slim = meta["slim"]
    return {
        "width": float(slim["width"]),
        "width_index": int(slim["width_index"]),
        "macs": int(slim["macs"]),
        "relative_macs": float(slim["relative_macs"]),
        "params": int(meta["params"]),
        "ops": list(meta["ops"]),
        "accuracy": float(rep["accuracy"]),
        "num_clips": int(rep["num_clips"]),
        "arena_min_bytes": int(arena.min_bytes),
        "arena_32bit_estimate_bytes": int(arena.estimate_32bit_bytes),
        "arena_recommended_bytes": int(arena.recommended_bytes),
        "model_bytes": len(tflite),
        "runtime_code_bytes": int(runtime["bytes"]),
        "flash_bytes": len(tflite) + int(runtime["bytes"]),
    }


def _pick(rows: list[dict]) -> dict | None:
    fitting = [r for r in rows if r["fits"]]
    if not fitting:
        return None
    return min(fitting, key=lambda r: (-r["accuracy"], r["macs"], r["width"]))


def to_markdown(doc: dict) -> str:
    lines = [
        f"# slim select: {doc['run']}",
        "",
        f"- accuracy: int8 in TFLM, {doc['data']} split {doc['split']}"
        + (f" ({doc['max_clips']} clips max)" if doc["max_clips"] else ""),
        "- arena: TFLM host minimum / recommended (32-bit estimate + margin); "
        "flash: model + TFLM runtime code estimate",
        "- budget: "
        + ", ".join(
            f"{t['key']} (RAM {t['sram_bytes']:,} B, flash {t['flash_bytes']:,} B)"
            for t in doc["targets"]
        ),
        "- selected: "
        + (f"width {doc['selected']['width']:g}" if doc["selected"] else "none (no width fits)"),
        "",
        "| width | MACs | rel. MACs | params | accuracy | arena min | arena rec. | model | "
        "flash | fits | chosen |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["widths"]:
        lines.append(
            f"| {r['width']:g} | {r['macs']:,} | {r['relative_macs']:.3f} | {r['params']:,} | "
            f"{100 * r['accuracy']:.2f} % | {r['arena_min_bytes']:,} | "
            f"{r['arena_recommended_bytes']:,} | {r['model_bytes']:,} | {r['flash_bytes']:,} | "
            f"{'yes' if r['fits'] else 'no: ' + r['reason'].replace('|', '/')} | "
            f"{'**yes**' if r['chosen'] else ''} |"
        )
    return "\n".join(lines) + "\n"


def plot_pareto(doc: dict, path: str | os.PathLike) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = doc["widths"]
    ram_limit = min(t["sram_bytes"] for t in doc["targets"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, label in (
        (axes[0], "arena_recommended_bytes", "recommended arena (bytes)"),
        (axes[1], "macs", "MACs per inference"),
    ):
        xs = [r[key] for r in rows]
        ys = [100 * r["accuracy"] for r in rows]
        ax.plot(xs, ys, "-", color="0.7", zorder=1)
        for r, x, y in zip(rows, xs, ys, strict=True):
            ax.scatter([x], [y], color="tab:green" if r["fits"] else "tab:red", zorder=2)
            ax.annotate(f"{r['width']:g}", (x, y), textcoords="offset points", xytext=(4, 4))
        chosen = [r for r in rows if r["chosen"]]
        if chosen:
            ax.scatter(
                [chosen[0][key]],
                [100 * chosen[0]["accuracy"]],
                s=250,
                marker="*",
                color="gold",
                edgecolors="black",
                zorder=3,
                label=f"chosen: width {chosen[0]['width']:g}",
            )
            ax.legend(loc="lower right")
        ax.set_xlabel(label)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
        ax.grid(alpha=0.3)
    axes[0].axvline(ram_limit, color="tab:red", linestyle="--", linewidth=1)
    axes[0].set_ylabel("int8 TFLM accuracy (%)")
    fig.suptitle("slimmable widths (green fits the budget, red does not)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def select_width(
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    targets: Sequence[str] = (),
    max_arena: int | None = None,
    max_flash: int | None = None,
    data: str | None = None,
    split: str | None = None,
    max_clips: int = 0,
    seed: int = 0,
    num_calibration: int = REPRESENTATIVE_CLIPS,
) -> dict:
    """Measure every width of the supernet in ``run_dir``; write ``out_dir``; return the summary.

    Raises ``NoWidthFits`` (exit code 1) when no width fits (``widths.json`` etc. are still
    written, ``selected.tflite`` is not), ``TfkwsError`` for bad arguments.
    """
    from firmware_gen.report import target_fit
    from firmware_gen.runtime_size import runtime_estimate
    from tfkws.conversion.export import load_metadata, metadata_path
    from tfkws.layers.slimmable_base import model_widths, slimmable_layers
    from tfkws.runs.config import RunConfig
    from tfkws.runs.model import load_trained_model
    from tfkws.slimmable.extract import export_width
    from tfkws.verification.evaluate import open_for_model

    limits = budget_targets(targets, max_arena, max_flash)
    if max_clips < 0:
        raise TfkwsError(f"--max_clips must be >= 0 (got {max_clips})")
    run_dir = Path(run_dir)
    run = RunConfig.load(run_dir)
    data = data or run.data
    supernet, _ = load_trained_model(run_dir, batch_size=1)
    if not slimmable_layers(supernet):
        raise TfkwsError(f"{run_dir}: model {run.train.model!r} is not a slimmable supernet")
    widths = list(model_widths(supernet))
    del supernet
    out_dir = Path(out_dir)
    rows: list[dict] = []
    with atomic.output_dir(out_dir) as tmp:
        for width in widths:
            path = tmp / WIDTHS_DIR / f"w{_tag(width)}_int8.tflite"
            path.parent.mkdir(parents=True, exist_ok=True)
            logging.info("slim select: width %g: export", width)
            export_width(
                run_dir, width, path, num_calibration=num_calibration, seed=seed, data=data
            )
            meta = load_metadata(path)
            if split is None:
                split = (
                    "validation" if open_for_model(data, meta).has_split("validation") else "all"
                )
            row = _measure(path, meta, data, split, max_clips, seed)
            fits = [
                target_fit(t, row["arena_recommended_bytes"], row["flash_bytes"]) for t in limits
            ]
            row.update(
                {
                    "file": f"{WIDTHS_DIR}/{path.name}",
                    "fits": all(f["fits"] for f in fits),
                    "reason": "; ".join(
                        f"{f['key']} ({f['reason']})" for f in fits if not f["fits"]
                    ),
                    "targets": {
                        f["key"]: {
                            "fits": f["fits"],
                            "ram_headroom_bytes": f["ram_headroom_bytes"],
                            "flash_headroom_bytes": f["flash_headroom_bytes"],
                        }
                        for f in fits
                    },
                }
            )
            logging.info(
                "slim select: width %g: accuracy %.4f, arena %d (min %d), flash %d, %d MACs, %s",
                width,
                row["accuracy"],
                row["arena_recommended_bytes"],
                row["arena_min_bytes"],
                row["flash_bytes"],
                row["macs"],
                "fits" if row["fits"] else "does not fit",
            )
            rows.append(row)
        best = _pick(rows)
        for r in rows:
            r["chosen"] = r is best
        doc = {
            "format": FORMAT,
            "version": 1,
            "run": str(run_dir.resolve()),
            "data": str(data),
            "split": split,
            "max_clips": int(max_clips),
            "seed": int(seed),
            "targets": [
                {"key": t["key"], "sram_bytes": t["sram_bytes"], "flash_bytes": t["flash_bytes"]}
                for t in limits
            ],
            "runtime_code_basis": runtime_estimate([])["basis"],
            "widths": rows,
            "selected": None,
        }
        if best is not None:
            src = tmp / best["file"]
            shutil.copyfile(src, tmp / SELECTED)
            shutil.copyfile(metadata_path(src), metadata_path(tmp / SELECTED))
            doc["selected"] = {
                "width": best["width"],
                "file": SELECTED,
                "metadata": metadata_path(tmp / SELECTED).name,
            }
        atomic.write_json(tmp / "widths.json", doc)
        atomic.write_text(tmp / "widths.md", to_markdown(doc))
        plot_pareto(doc, tmp / "pareto.png")
    if best is None:
        for stale in (out_dir / SELECTED, metadata_path(out_dir / SELECTED)):
            stale.unlink(missing_ok=True)  # from an earlier select into the same folder
        small = min(rows, key=lambda r: (r["macs"], r["width"]))
        raise NoWidthFits(
            f"no width fits: the smallest, width {small['width']:g} (arena "
            f"{small['arena_recommended_bytes']} bytes recommended, flash {small['flash_bytes']} "
            f"bytes), does not fit {small['reason']}; see {out_dir / 'widths.md'}"
        )
    return doc
