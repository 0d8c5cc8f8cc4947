"""``tfkws qat``: quantization-aware fine-tuning of a trained float run into a new run folder.

The new run folder is a complete run (``run_config.json`` with ``qat: true``, checkpoints each
epoch, ``--resume``), so ``tfkws export --run`` converts it with its learnt int8 ranges.
"""

from __future__ import annotations

import json

from absl import flags


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string(
        "run", None, "Trained float run folder (tfkws train).", flag_values=fv, required=True
    )
    flags.DEFINE_string("out", None, "New QAT run folder.", flag_values=fv, required=True)
    flags.DEFINE_integer("epochs", 3, "QAT epochs.", flag_values=fv)
    flags.DEFINE_float(
        "lr", None, "Peak learning rate (default: the float run's --lr / 10).", flag_values=fv
    )
    flags.DEFINE_integer(
        "batch_size", None, "Batch size (default: the float run's).", flag_values=fv
    )
    flags.DEFINE_string("data", None, "Dataset path if it moved since training.", flag_values=fv)
    flags.DEFINE_bool(
        "resume", False, "Continue the QAT run in --out from its last checkpoint.", flag_values=fv
    )
    flags.DEFINE_integer("verbose", 2, "Keras fit verbosity (0, 1, 2).", flag_values=fv)


def run(fv: flags.FlagValues) -> int:
    import dataclasses
    import shutil
    from pathlib import Path

    from tfkws.data.dataset import open_dataset
    from tfkws.errors import TfkwsError
    from tfkws.training.run_config import RUN_CONFIG, RunConfig
    from tfkws.training.trainer import BEST_WEIGHTS, FLOAT_BEST_WEIGHTS, train

    src_dir, out = Path(fv.run), Path(fv.out)
    src = RunConfig.load(src_dir)
    if src.train.qat:
        raise TfkwsError(f"{src_dir}: already a QAT run; pass its float source run")
    weights = src_dir / BEST_WEIGHTS
    if not weights.exists():
        raise TfkwsError(f"{src_dir}: no {BEST_WEIGHTS} (training did not finish an epoch)")
    if src_dir.resolve() == out.resolve():
        raise TfkwsError(f"{out}: --out must be a new folder, not the float run")
    if (out / RUN_CONFIG).exists() and not fv.resume:
        raise TfkwsError(f"{out}: already holds a run; pass --resume to continue it")
    if fv.epochs < 1:
        raise TfkwsError(f"--epochs must be >= 1, got {fv.epochs}")
    cfg = dataclasses.replace(
        src.train,
        epochs=fv.epochs,
        batch_size=fv.batch_size or src.train.batch_size,
        qat=True,
        qat_epochs=fv.epochs,
        qat_learning_rate=fv.lr,
        qat_source=str(src_dir.resolve()),
    )
    data = fv.data or src.data
    ds = open_dataset(
        data,
        mode=src.dataset_mode,
        labels=src.labels,
        keywords=tuple(k for k in src.labels if not k.startswith("_")),
        seed=src.train.seed,
        noise_dir=src.noise_dir,
    )
    if list(ds.labels) != list(src.labels):
        raise TfkwsError(
            f"{data}: labels {list(ds.labels)} differ from the float run's {list(src.labels)}"
        )
    out.mkdir(parents=True, exist_ok=True)
    start = out / FLOAT_BEST_WEIGHTS
    if not start.exists():  # the QAT run keeps its own copy of what it started from
        tmp = out / f".{FLOAT_BEST_WEIGHTS}.tmp"
        shutil.copyfile(weights, tmp)
        tmp.replace(start)
    results = train(
        ds,
        src.features,
        cfg,
        out,
        resume=fv.resume,
        data_path=data,
        dataset_mode=src.dataset_mode,
        noise_dir=src.noise_dir,
        verbose=fv.verbose,
    )
    summary = {k: results[k] for k in ("model", "params", "best_val_accuracy", "train_seconds")}
    for split in ("val", "test"):
        if split in results:
            summary[f"{split}_accuracy"] = results[split]["accuracy"]
    print(json.dumps(summary, indent=2))
    print(f"QAT run folder: {out} (tfkws export --run {out} writes the int8 model)")
    return 0
