"""Quantization-aware fine-tuning of a trained float run into a new, complete run folder.

Shared by ``tfkws qat`` (an ordinary float run), ``tfkws slim qat`` (one width of a slimmable
supernet) and the benchmarks, which call ``qat_finetune`` in-process. The new run folder holds
``run_config.json`` (``qat: true``, ``qat_source``, and ``slim_width`` for a supernet width),
its own copy of the float weights it started from, checkpoints each epoch (``--resume``), best
weights and results, so ``tfkws export --run`` converts it with its learnt int8 ranges.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

from tfkws.errors import TfkwsError


def _supernet_widths(src: Any) -> tuple[float, ...] | None:
    """The source run's widths if its model is a slimmable supernet, else None."""
    from tfkws.layers.slimmable_base import model_widths, slimmable_layers
    from tfkws.models.catalog import build_model

    model = build_model(
        src.train.model, src.features.shape, len(src.labels), src.train.model_params
    )
    return model_widths(model) if slimmable_layers(model) else None


def qat_finetune(
    src_run: str | os.PathLike,
    out: str | os.PathLike,
    epochs: int = 3,
    lr: float | None = None,
    batch_size: int | None = None,
    data: str | None = None,
    resume: bool = False,
    verbose: int = 1,
    width: float | None = None,
    teachers: list[str] | tuple[str, ...] = (),
    distill_weight: float = 0.5,
    distill_temperature: float = 2.0,
) -> dict[str, Any]:
    """Fine-tune the best float weights of ``src_run`` with int8 fake-quant into run ``out``.

    Args:
      src_run: a trained float run folder (``tfkws train``), not itself a QAT run.
      out: the new QAT run folder (must not hold a run unless ``resume``).
      epochs: QAT epochs.
      lr: peak learning rate; None = the float run's learning rate / 100 (``QAT_LR_FACTOR``).
      batch_size: None = the float run's.
      data: dataset path if it moved since the float run was trained.
      resume: continue the run in ``out`` from its last checkpoint.
      verbose: 0 quiet, 1 a tfkws line per epoch, 2 also Keras's own epoch output.
      width: for a slimmable supernet run (required there, refused otherwise): the width whose
        extracted sub-network is fine-tuned.
      teachers, distill_weight, distill_temperature: knowledge distillation during QAT
        (``tfkws.training.distill``), e.g. from the float run itself; none by default (a float
        run's own teachers are not inherited).

    Returns the trainer's results (``tfkws.training.trainer.train``): ``best_val_accuracy``,
    ``val`` / ``test`` accuracy reports of the best fake-quant model, ``params``,
    ``train_seconds`` ... Raises ``TfkwsError`` (one line) on bad input.
    """
    from tfkws.layers.slimmable_base import width_index
    from tfkws.runs.config import RunConfig
    from tfkws.runs.files import BEST_WEIGHTS, FLOAT_BEST_WEIGHTS, RUN_CONFIG
    from tfkws.training.trainer import train

    src_dir, out = Path(src_run), Path(out)
    src = RunConfig.load(src_dir)
    if src.train.qat:
        raise TfkwsError(f"{src_dir}: already a QAT run; pass its float source run")
    weights = src_dir / BEST_WEIGHTS
    if not weights.exists():
        raise TfkwsError(f"{src_dir}: no {BEST_WEIGHTS} (training did not finish an epoch)")
    if src_dir.resolve() == out.resolve():
        raise TfkwsError(f"{out}: --out must be a new folder, not the float run")
    if (out / RUN_CONFIG).exists() and not resume:
        raise TfkwsError(f"{out}: already holds a run; pass --resume to continue it")
    if epochs < 1:
        raise TfkwsError(f"--epochs must be >= 1, got {epochs}")
    widths = _supernet_widths(src)
    if widths is not None and width is None:
        raise TfkwsError(
            f"{src_dir}: a slimmable supernet ({src.train.model}); fine-tune one width with "
            f"tfkws slim qat --run {src_dir} --width W --out NEW_RUN"
        )
    if widths is None and width is not None:
        raise TfkwsError(
            f"{src_dir}: model {src.train.model!r} is not a slimmable supernet; --width needs "
            "a run of a slimmable model"
        )
    if widths is not None:
        width = float(widths[width_index(widths, width)])
    cfg = dataclasses.replace(
        src.train,
        epochs=epochs,
        batch_size=batch_size or src.train.batch_size,
        qat=True,
        qat_epochs=epochs,
        qat_learning_rate=lr,
        qat_source=str(src_dir.resolve()),
        slim_width=width,
        teachers=list(teachers),
        distill_weight=distill_weight,
        distill_temperature=distill_temperature,
    )
    data = data or src.data
    ds = src.open_dataset(data)
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
    return train(
        ds,
        src.features,
        cfg,
        out,
        resume=resume,
        data_path=data,
        dataset_mode=src.dataset_mode,
        noise_dir=src.noise_dir,
        verbose=verbose,
    )


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """The few numbers the CLIs print from ``qat_finetune``'s results."""
    keys = ("model", "params", "qat_start_val_accuracy", "best_val_accuracy", "qat_kept_start")
    out = {k: results[k] for k in (*keys, "train_seconds") if k in results}
    for split in ("val", "test"):
        if split in results:
            out[f"{split}_accuracy"] = results[split]["accuracy"]
    return out
