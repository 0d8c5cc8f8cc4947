"""Arena per model: firmware_gen's recommendation vs the searched minimum vs TFLM's recording.

For DS-CNN S/M/L and the other registered models (random weights, int8 with random representative
data: arena sizes depend on shapes, not on weight values), folded as ``tfkws export`` folds them
and converted with a static batch of 1:

- searched minimum: smallest arena (16-byte steps) where TFLM allocates and invokes, found by
  bisection in a child process and checked (min works, min - 16 fails);
- recording: RecordingMicroAllocator's "Arena allocation total" (head + tail) at that size;
- 32-bit estimate and the recommended kTensorArenaSize firmware_gen writes into the header.

    python benchmarks/arena.py            # writes benchmarks/results/arena.{json,md}
    python benchmarks/arena.py --models ds_cnn_s,ds_cnn_m
"""

from __future__ import annotations

import argparse
import traceback
from pathlib import Path

import common  # sets TF_USE_LEGACY_KERAS and puts the repo on sys.path (before TensorFlow)

REPO = common.REPO

from firmware_gen_models import convert  # noqa: E402

from firmware_gen.arena import DEFAULT_MARGIN_PCT, measure_arena  # noqa: E402
from firmware_gen.layers import layer_table, total_macs  # noqa: E402
from firmware_gen.model import parse_model  # noqa: E402
from tfkws import atomic  # noqa: E402

# NAME@W: width W cut out of a slimmable supernet (what tfkws slim extract deploys).
DEFAULT_MODELS = [
    "ds_cnn_s",
    "ds_cnn_m",
    "ds_cnn_l",
    "bc_resnet",
    "repcnn",
    "repcnn_unibranch",
    "slimmable_ds_cnn@0.25",
    "slimmable_ds_cnn@1.0",
    "slimmable_kwt@0.25",
    "slimmable_kwt@1.0",
]
INPUT_SHAPE = (49, 40)
NUM_CLASSES = 12


def measure(name: str) -> dict:
    from tfkws.folding.fold import fold_model
    from tfkws.models.catalog import build_model

    # What tfkws export deploys: BatchNorm and multi-branch blocks folded.
    registered, _, width = name.partition("@")
    model = build_model(registered, INPUT_SHAPE, NUM_CLASSES, {}, batch_size=1)
    if width:
        from tfkws.folding.slim_width import extract_width

        model = extract_width(model, float(width), batch_size=1)
    model = fold_model(model)
    data = convert(model, INPUT_SHAPE, samples=4)
    info = parse_model(data, name)
    arena = measure_arena(data, DEFAULT_MARGIN_PCT, name)
    return {
        "model": name,
        "model_bytes": len(data),
        "macs": total_macs(layer_table(info)),
        "ops": info.op_names,
        "searched_min_bytes": arena.min_bytes,
        "min_minus_16_fails": arena.below_min_fails,
        "recording_total_bytes": arena.recording["total_bytes"],
        "recording_head_bytes": arena.recording["head_bytes"],
        "recording_tail_bytes": arena.recording["tail_bytes"],
        "estimate_32bit_bytes": arena.estimate_32bit_bytes,
        "recommended_bytes": arena.recommended_bytes,
        "probes": arena.probes,
    }


def to_markdown(rows: list[dict], command: str) -> str:
    lines = [
        "# Tensor arena per model (TFLM Python interpreter, x86-64 host)",
        "",
        f"Produced by `{command}`. Random weights, int8, batch 1, input 49x40, 12 classes.",
        "searched min = smallest arena (16-byte steps) where allocation and Invoke succeed, with "
        "min - 16 checked to fail; recording = RecordingMicroAllocator total (head + tail) at that "
        "size; recommended = firmware_gen's kTensorArenaSize "
        f"(max(searched, 32-bit estimate) + {DEFAULT_MARGIN_PCT:g} %).",
        "",
        "| model | model bytes | MACs | searched min | min-16 fails | recording total (head + "
        "tail) | recording vs min | 32-bit estimate | recommended |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | error: {r['error']} | | | | | | | |")
            continue
        diff = r["recording_total_bytes"] - r["searched_min_bytes"]
        lines.append(
            f"| {r['model']} | {r['model_bytes']:,} | {r['macs']:,} | "
            f"{r['searched_min_bytes']:,} | {'yes' if r['min_minus_16_fails'] else 'NO'} | "
            f"{r['recording_total_bytes']:,} ({r['recording_head_bytes']:,} + "
            f"{r['recording_tail_bytes']:,}) | {diff:+,} | {r['estimate_32bit_bytes']:,} | "
            f"{r['recommended_bytes']:,} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(DEFAULT_MODELS))
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    a = p.parse_args()
    rows = []
    for name in [m for m in a.models.split(",") if m]:
        print(f"{name} ...", flush=True)
        try:
            rows.append(measure(name))
        except Exception as e:  # keep the other rows; the table says what failed
            traceback.print_exc()
            rows.append({"model": name, "error": f"{type(e).__name__}: {e}".splitlines()[0]})
        print(rows[-1], flush=True)
    command = "python benchmarks/arena.py" + (
        f" --models {a.models}" if a.models != ",".join(DEFAULT_MODELS) else ""
    )
    atomic.write_json(
        a.out / "arena.json",
        {
            "command": command,
            **common.provenance.current(),
            "input_shape": INPUT_SHAPE,
            "num_classes": NUM_CLASSES,
            "rows": rows,
        },
    )
    atomic.write_text(a.out / "arena.md", to_markdown(rows, command))


if __name__ == "__main__":
    main()
