"""``tfkws slim``: work with a trained slimmable supernet.

``tfkws slim extract --run RUN --width W --out M.tflite`` cuts width W out of the supernet as a
plain model, folds its BatchNorms, quantises it to int8 and writes .tflite + metadata (as
``tfkws export`` does for an ordinary run).
"""

from __future__ import annotations

from absl import flags

from tfkws.errors import TfkwsError

ACTIONS = ("extract",)
USAGE = "usage: tfkws slim extract --run RUN --width W [--out M.tflite]"


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("run", None, "Run folder of a trained slimmable supernet.", flag_values=fv)
    flags.DEFINE_float("width", None, "Width to extract (one of the supernet's).", flag_values=fv)
    flags.DEFINE_string(
        "out", None, "Output .tflite (default RUN/model_w<W>_int8.tflite).", flag_values=fv
    )
    flags.DEFINE_integer(
        "num_calibration", 400, "Representative clips from the training split.", flag_values=fv
    )
    flags.DEFINE_string("data", None, "Dataset path if it moved since training.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed for the representative subset.", flag_values=fv)


def run(fv: flags.FlagValues) -> int:
    return run_with_args(fv, [])


def run_with_args(fv: flags.FlagValues, args: list[str]) -> int:
    if len(args) != 1 or args[0] not in ACTIONS:
        got = " ".join(args) or "no action"
        raise TfkwsError(f"expected one action ({', '.join(ACTIONS)}), got {got}; {USAGE}")
    if not fv.run or fv.width is None:
        raise TfkwsError(f"slim extract needs --run and --width; {USAGE}")
    from pathlib import Path

    from tfkws.models.slim_extract import export_width

    out = fv.out or str(Path(fv.run) / f"model_w{fv.width:g}_int8.tflite")
    res = export_width(
        fv.run, fv.width, out, num_calibration=fv.num_calibration, seed=fv.seed, data=fv.data
    )
    slim = res.metadata["slim"]
    print(
        f"width {slim['width']:g}: {res.metadata['params']} params, "
        f"{slim['relative_macs']:.3f} x full-width MACs"
    )
    print(f"int8 model: {res.tflite_path} ({res.tflite_bytes} bytes, ops: {', '.join(res.ops)})")
    print(f"metadata:   {res.metadata_path}")
    print(f"sub-network vs supernet max abs diff: {res.fold_max_abs_diff:.3g}")
    return 0
