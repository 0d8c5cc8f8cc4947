"""A run's model: rebuilt from its config through the model catalog, its best weights loaded.

Export, QAT fine-tuning, distillation teachers, slimmable extract/select, verify and the
benchmarks all load a trained run here; the trainer builds its QAT graphs with the same
``qat_graph`` so a saved QAT run reloads into exactly the graph it was trained as.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tf_keras as keras

from tfkws.errors import TfkwsError
from tfkws.folding.slim_width import extract_width
from tfkws.models.catalog import build_model
from tfkws.runs.config import RunConfig, TrainConfig
from tfkws.runs.files import BEST_WEIGHTS


def width_model(model: keras.Model, cfg: TrainConfig) -> keras.Model:
    """``model`` itself, or for a QAT run of one supernet width (``cfg.slim_width``) that
    width's plain sub-network, cut out with the supernet's current weights."""
    if cfg.slim_width is None:
        return model
    return extract_width(model, cfg.slim_width)


def qat_graph(
    model: keras.Model, cfg: TrainConfig, calibration: np.ndarray | None = None
) -> keras.Model:
    """The graph a QAT run trains and saves: ``model`` (of one width for ``cfg.slim_width``),
    folded and wrapped with fake-quant; ``calibration`` clips start the int8 ranges at the
    float model's (see ``tfkws.quantization.qat.qat_model``)."""
    from tfkws.quantization.qat import qat_model  # tfmot loads only for QAT runs

    return qat_model(width_model(model, cfg), calibration=calibration)


def load_trained_model(
    run_dir: str | os.PathLike, batch_size: int | None = None
) -> tuple[keras.Model, RunConfig]:
    """Rebuild a run's model from its config and load its best weights.

    A QAT run (``train.qat``) gives its QAT model: folded graph wrapped with fake-quant; of one
    supernet width's sub-network when the run fine-tuned a width (``train.slim_width``).
    """
    run = RunConfig.load(run_dir)
    weights = Path(run_dir) / BEST_WEIGHTS
    if not weights.exists():
        raise TfkwsError(f"{run_dir}: no {BEST_WEIGHTS} (training did not finish an epoch)")
    model = build_model(
        run.train.model,
        run.features.shape,
        len(run.labels),
        run.train.model_params,
        batch_size=batch_size,
    )
    if run.train.qat:  # best weights are those of the folded, fake-quantised graph
        model = qat_graph(model, run.train)
    model.load_weights(str(weights))
    return model, run
