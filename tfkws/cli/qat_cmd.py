"""``tfkws qat``: quantization-aware fine-tuning of a trained float run into a new run folder.

The new run folder is a complete run (``run_config.json`` with ``qat: true``, checkpoints each
epoch, ``--resume``), so ``tfkws export --run`` converts it with its learnt int8 ranges. The
work is ``tfkws.training.qat_finetune.qat_finetune``; one width of a slimmable supernet is
fine-tuned with ``tfkws slim qat``.
"""

from __future__ import annotations

import json

from absl import flags

from tfkws.cli import common


def define_flags(fv: flags.FlagValues) -> None:
    common.define_path("run", None, "Trained float run folder (tfkws train).", fv, required=True)
    common.define_path("out", None, "New QAT run folder.", fv, required=True)
    flags.DEFINE_integer("epochs", 3, "QAT epochs.", flag_values=fv)
    flags.DEFINE_float(
        "lr", None, "Peak learning rate (default: the float run's --lr / 100).", flag_values=fv
    )
    flags.DEFINE_integer(
        "batch_size", None, "Batch size (default: the float run's).", flag_values=fv
    )
    common.define_path("data", None, "Dataset path if it moved since training.", fv)
    flags.DEFINE_bool(
        "resume", False, "Continue the QAT run in --out from its last checkpoint.", flag_values=fv
    )
    common.define_distill_flags(fv)


def run(fv: flags.FlagValues) -> int:
    return finetune_and_report(fv, width=None)


def finetune_and_report(fv: flags.FlagValues, width: float | None) -> int:
    """QAT fine-tune from the flags ``tfkws qat`` and ``tfkws slim qat`` share; print a summary."""
    from tfkws.training.qat_finetune import qat_finetune, summary

    results = qat_finetune(
        fv.run,
        fv.out,
        epochs=fv.epochs,
        lr=fv.lr,
        batch_size=fv.batch_size,
        data=fv.data,
        resume=fv.resume,
        verbose=2 if fv.verbose else 1,
        width=width,
        **common.distill_settings(fv),
    )
    head = {} if width is None else {"width": results["slim_width"]}
    print(json.dumps(head | summary(results), indent=2))
    print(f"QAT run folder: {fv.out} (tfkws export --run {fv.out} writes the int8 model)")
    return 0
