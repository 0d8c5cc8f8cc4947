"""The model each training phase fits: float (sandwich-wrapped for a slimmable supernet), QAT
(folded and fake-quantised from the float phase's best weights) and either one distilling from
teacher runs. ``tfkws.training.trainer`` composes them; each is one small step here so a new
kind of training adds a step rather than growing the trainer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tf_keras as keras
from absl import logging

from tfkws.errors import TfkwsError
from tfkws.models.catalog import build_model
from tfkws.runs.config import TrainConfig
from tfkws.runs.model import qat_graph
from tfkws.training.sandwich import wrap_slimmable


def float_model(
    cfg: TrainConfig, input_shape: Any, num_classes: int, sync_bn: bool = False
) -> keras.Model:
    """The float phase's model: ``cfg.model`` freshly built, wrapped for sandwich training when
    it is a slimmable supernet (``tfkws.training.sandwich``).

    ``sync_bn`` (several replicas): BatchNorm normalises with the global batch's statistics
    (``synchronized=True``), as one device training the whole batch does, not each replica's.
    """
    model = build_model(cfg.model, input_shape, num_classes, cfg.model_params)
    if sync_bn:
        model = synchronized_batch_norm(model)
    return wrap_slimmable(model, seed=cfg.seed)


def synchronized_batch_norm(model: keras.Model) -> keras.Model:
    """``model`` with every Keras BatchNormalization synchronised across replicas (same weights,
    same layer names). A model Keras cannot clone keeps per-replica BatchNorm, with a warning."""
    bn = keras.layers.BatchNormalization
    if not any(type(layer) is bn for layer in model.layers):
        return model

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if type(layer) is bn:
            config.update(synchronized=True, fused=False)
        return type(layer).from_config(config)

    try:
        synced = keras.models.clone_model(model, clone_function=clone)
    except (ValueError, TypeError, NotImplementedError) as err:
        logging.warning("BatchNorm stays per replica: cannot clone %s (%s)", model.name, err)
        return model
    synced.set_weights(model.get_weights())
    return synced


def qat_from_float(
    cfg: TrainConfig,
    input_shape: Any,
    num_classes: int,
    weights: Path | None,
    calibration: np.ndarray | None = None,
) -> keras.Model:
    """The QAT phase's model: the float model (``weights`` loaded if given), folded and wrapped
    for QAT as ``tfkws.runs.model.qat_graph`` reloads it.

    ``calibration`` clips start the int8 ranges at the float model's (see ``qat_model``).
    """
    model = build_model(cfg.model, input_shape, num_classes, cfg.model_params)
    if weights is not None:
        if not weights.exists():
            raise TfkwsError(f"{weights}: missing; QAT starts from the best float weights")
        model.load_weights(str(weights))
    return qat_graph(model, cfg, calibration=calibration)


def with_teachers(
    model: keras.Model, cfg: TrainConfig, teacher: Callable[[], keras.Model]
) -> keras.Model:
    """``model`` wrapped to learn from ``teacher()`` (``cfg.teachers``) too
    (``tfkws.training.distill``)."""
    from tfkws.layers.slimmable_base import slimmable_layers
    from tfkws.training.distill import DistillModel

    if slimmable_layers(model):
        raise TfkwsError(
            f"model {cfg.model!r} is a slimmable supernet: it already distils its widths from "
            "the largest; --teacher is for plain models"
        )
    logging.info(
        "distilling from %d teacher run(s), weight %g, temperature %g",
        len(cfg.teachers),
        cfg.distill_weight,
        cfg.distill_temperature,
    )
    return DistillModel(model, teacher(), cfg.distill_weight, cfg.distill_temperature)
