"""``tfkws eval``: accuracy of an int8 .tflite run in TFLM, on a folder or CSV."""

from __future__ import annotations

from absl import flags

from tfkws.cli import common


def define_flags(fv: flags.FlagValues) -> None:
    common.define_path(
        "model", None, "int8 .tflite exported by tfkws (metadata beside it).", fv, required=True
    )
    common.define_path(
        "data", None, "Speech Commands folder, CSV, or folder of CSV lists.", fv, required=True
    )
    flags.DEFINE_string("split", "all", "all, training, validation or testing.", flag_values=fv)
    flags.DEFINE_integer(
        "max_clips", 0, "Evaluate a seeded random subset (0 = every clip).", flag_values=fv
    )
    common.define_path(
        "json", None, "Write the full report (per class, confusion matrix) here.", fv
    )
    common.define_path("plot", None, "Write the confusion matrix PNG here.", fv)


def run(fv: flags.FlagValues) -> int:
    import numpy as np

    from tfkws import atomic
    from tfkws.cli import fast_mode
    from tfkws.verification.evaluate import evaluate_tflite

    max_clips = fv.max_clips
    if fast_mode.fast():
        max_clips = fast_mode.capped(max_clips, fast_mode.FAST_EVAL_CLIPS)
        fast_mode.announce(f"at most {max_clips} clips")
    rep = evaluate_tflite(fv.model, fv.data, split=fv.split, max_clips=max_clips or None)
    print(
        f"accuracy (int8, TFLM): {100 * rep['accuracy']:.2f} % on {rep['num_clips']} clips "
        f"({fv.data}, split {fv.split})"
    )
    for label, pc in rep["per_class"].items():
        if pc["count"]:
            print(f"  {label:<12} {100 * pc['accuracy']:6.2f} %  ({pc['count']} clips)")
    if fv.json:
        atomic.write_json(fv.json, rep)
        print(f"report: {fv.json}")
    if fv.plot:
        from tfkws.training.plots import plot_confusion_matrix

        plot_confusion_matrix(
            np.array(rep["confusion_matrix"]), rep["labels"], fv.plot, title="int8 TFLM"
        )
        print(f"confusion matrix: {fv.plot}")
    return 0
