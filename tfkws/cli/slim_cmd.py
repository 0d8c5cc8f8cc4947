"""``tfkws slim``: work with a trained slimmable supernet.

``tfkws slim extract --run RUN --width W --out M.tflite`` cuts width W out of the supernet as a
plain model, folds its BatchNorms, quantises it to int8 and writes .tflite + metadata (as
``tfkws export`` does for an ordinary run).

``tfkws slim select --run RUN (--target T[,T...] | --max_arena B --max_flash B) --out_dir DIR``
exports every width, measures its TFLM accuracy, arena, flash and MACs, and copies the most
accurate width that fits the budget to DIR/selected.tflite (exit 1 when none fits).

``tfkws slim qat --run RUN --width W --out NEW_RUN [--epochs N --lr LR]`` fine-tunes width W's
sub-network with int8 fake-quant (as ``tfkws qat`` does a float run) into a new run folder
that ``tfkws export --run NEW_RUN`` converts.
"""

from __future__ import annotations

from absl import flags

from tfkws.cli import common
from tfkws.errors import TfkwsError
from tfkws.quantization.ptq import PTQ_CLIPS, REPRESENTATIVE_CLIPS

ACTIONS = ("extract", "select", "qat")
USAGE = (
    "usage: tfkws slim extract --run RUN --width W [--out M.tflite] | tfkws slim select --run RUN "
    "(--target T[,T...] | --max_arena BYTES --max_flash BYTES) --out_dir DIR | "
    "tfkws slim qat --run RUN --width W --out NEW_RUN [--epochs N]"
)


def define_flags(fv: flags.FlagValues) -> None:
    common.define_path("run", None, "Run folder of a trained slimmable supernet.", fv)
    flags.DEFINE_float("width", None, "extract/qat: width (one of the supernet's).", flag_values=fv)
    common.define_path(
        "out",
        None,
        "extract: output .tflite (default RUN/model_w<W>_int8.tflite); qat: new run folder.",
        fv,
    )
    flags.DEFINE_integer(
        "num_calibration",
        REPRESENTATIVE_CLIPS,
        "Representative clips drawn from the training split; int8 PTQ calibrates on "
        f"{PTQ_CLIPS} of them.",
        flag_values=fv,
    )
    common.define_path("data", None, "Dataset path if it moved since training.", fv)
    flags.DEFINE_integer("seed", 0, "Seed for the representative subset.", flag_values=fv)
    flags.DEFINE_multi_string(
        "target",
        [],
        "select: firmware_gen target(s) every width must fit (comma list).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "max_arena", None, "select: RAM limit for the recommended arena (bytes).", flag_values=fv
    )
    flags.DEFINE_integer(
        "max_flash", None, "select: flash limit for model + TFLM runtime (bytes).", flag_values=fv
    )
    common.define_path("out_dir", None, "select: output folder.", fv)
    flags.DEFINE_string(
        "split",
        None,
        "select: split to measure accuracy on (default validation, else all).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "max_clips", 0, "select: evaluate a seeded random subset (0 = every clip).", flag_values=fv
    )
    flags.DEFINE_integer("epochs", 3, "qat: QAT epochs.", flag_values=fv)
    flags.DEFINE_float(
        "lr",
        None,
        "qat: peak learning rate (default: the supernet run's --lr / 100).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "batch_size", None, "qat: batch size (default: the supernet run's).", flag_values=fv
    )
    flags.DEFINE_bool(
        "resume", False, "qat: continue the run in --out from its last checkpoint.", flag_values=fv
    )
    common.define_distill_flags(fv, "qat: ")


def run(fv: flags.FlagValues) -> int:
    return run_with_args(fv, [])


def run_with_args(fv: flags.FlagValues, args: list[str]) -> int:
    if len(args) != 1 or args[0] not in ACTIONS:
        got = " ".join(args) or "no action"
        raise TfkwsError(f"expected one action ({', '.join(ACTIONS)}), got {got}; {USAGE}")
    from tfkws.cli import fast_mode

    if args[0] in ("select", "extract"):
        fv.num_calibration = fast_mode.calibration(fv.num_calibration)
    if args[0] == "select":
        return _select(fv)
    if args[0] == "qat":
        return _qat(fv)
    if not fv.run or fv.width is None:
        raise TfkwsError(f"slim extract needs --run and --width; {USAGE}")
    from pathlib import Path

    from tfkws.slimmable.extract import export_width

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


def _select(fv: flags.FlagValues) -> int:
    from tfkws.slimmable.select import budget_targets, select_width

    budget_targets(fv.target, fv.max_arena, fv.max_flash)  # argument errors before any work
    if not fv.run or not fv.out_dir:
        raise TfkwsError(f"slim select needs --run and --out_dir; {USAGE}")
    from tfkws.cli import fast_mode

    max_clips = fv.max_clips
    if fast_mode.fast():
        max_clips = fast_mode.capped(max_clips, fast_mode.FAST_EVAL_CLIPS)
        fast_mode.announce(f"widths scored on at most {max_clips} clips")
    doc = select_width(
        fv.run,
        fv.out_dir,
        targets=fv.target,
        max_arena=fv.max_arena,
        max_flash=fv.max_flash,
        data=fv.data,
        split=fv.split,
        max_clips=max_clips,
        seed=fv.seed,
        num_calibration=fv.num_calibration,
    )
    for r in doc["widths"]:
        print(
            f"width {r['width']:<5g} accuracy {100 * r['accuracy']:6.2f} %  arena "
            f"{r['arena_recommended_bytes']:>8,} B  flash {r['flash_bytes']:>8,} B  "
            f"{r['macs']:>10,} MACs  {'fits' if r['fits'] else 'does not fit'}"
            f"{'  <- selected' if r['chosen'] else ''}"
        )
    print(f"selected: width {doc['selected']['width']:g} -> {fv.out_dir}/selected.tflite")
    print(f"table: {fv.out_dir}/widths.md, plot: {fv.out_dir}/pareto.png")
    return 0


def _qat(fv: flags.FlagValues) -> int:
    from tfkws.cli.qat_cmd import finetune_and_report

    if not fv.run or fv.width is None or not fv.out:
        raise TfkwsError(f"slim qat needs --run, --width and --out; {USAGE}")
    return finetune_and_report(fv, width=fv.width)
