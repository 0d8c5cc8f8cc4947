"""Cut one width out of a slimmable supernet as a plain functional Keras model.

The supernet's graph is replayed node by node (``tfkws.folding.fold``'s rebuild machinery):
every slimmable layer is replaced by the ordinary Keras layer(s) its ``extract(index)`` returns
(Conv2D, DepthwiseConv2D, Dense, BatchNormalization, LayerNormalization, MultiHeadAttention,
holding that width's weight slices and its own BN / LN parameters); every other layer is copied.
The result has no slimmable layer, so it folds (``fold_model``), converts to int8
(``to_int8_tflite``) and runs in TFLM like any other model, and in inference mode its outputs
equal the supernet's at that width.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import tf_keras as keras
from absl import logging

from tfkws.conversion.export import ExportResult
from tfkws.errors import ModelError, TfkwsError
from tfkws.folding.fold import KEEP_BATCH, rebuild
from tfkws.layers.slimmable_base import (
    SlimmableLayer,
    model_macs,
    model_widths,
    relative_costs,
    set_width,
    slimmable_layers,
    width_index,
)
from tfkws.quantization.ptq import REPRESENTATIVE_CLIPS


def extract_width(supernet: keras.Model, width: float, batch_size: Any = KEEP_BATCH) -> keras.Model:
    """Plain model of ``supernet`` at ``width`` (one of its widths); the supernet is untouched.

    ``batch_size`` gives the new model a static batch (1 for export); default: keep the
    supernet's.
    """
    index = width_index(model_widths(supernet), width)
    replaced: dict[int, Any] = {}

    def handler(node: Any, args: tuple, kwargs: dict, copy: Any) -> Any:
        layer = node.layer
        if not isinstance(layer, SlimmableLayer):
            return None
        if id(layer) not in replaced:
            replaced[id(layer)] = layer.extract(index)
        kwargs = {k: v for k, v in kwargs.items() if k != "training"}
        return replaced[id(layer)](*args, **kwargs)

    model = rebuild(supernet, handler, batch_size)
    tag = f"{float(width):.4g}".replace(".", "_")
    plain = keras.Model(model.inputs, model.outputs, name=f"{supernet.name}_w{tag}")
    left = [la.name for la in plain.layers if isinstance(la, SlimmableLayer)]
    if left:
        raise ModelError(f"extract_width: slimmable layer(s) {', '.join(left)} were not replaced")
    return plain


def width_params(supernet: keras.Model) -> dict[float, int]:
    """Parameter count of every width's extracted sub-network (BN statistics included)."""
    return {w: int(extract_width(supernet, w).count_params()) for w in model_widths(supernet)}


def export_width(
    run_dir: str | os.PathLike,
    width: float,
    out_path: str | os.PathLike,
    num_calibration: int = REPRESENTATIVE_CLIPS,
    seed: int = 0,
    data: str | None = None,
) -> ExportResult:
    """``tfkws export`` for one width of a trained supernet: extract, fold, int8, metadata.

    The folded sub-network is checked against the supernet run at ``width`` before conversion.
    """
    from tfkws.conversion.export import ptq_clips, representative_features, write_export
    from tfkws.conversion.tflite_convert import to_int8_tflite
    from tfkws.folding.fold import fold_model
    from tfkws.training.trainer import load_trained_model

    out_path = Path(out_path)
    if out_path.suffix != ".tflite":
        raise TfkwsError(f"{out_path}: output must end in .tflite")
    supernet, run = load_trained_model(run_dir, batch_size=1)
    if not slimmable_layers(supernet):
        raise TfkwsError(f"{run_dir}: model {run.train.model!r} is not a slimmable supernet")
    set_width(supernet, width)
    folded = fold_model(extract_width(supernet, width, batch_size=1))
    rep = ptq_clips(representative_features(run, num_calibration, seed, data), seed)
    logging.info("width %s: calibration on %d training clips", width, len(rep))
    probe = rep[: min(64, len(rep))]
    ref = np.concatenate([supernet(c[None], training=False).numpy() for c in probe])
    got = np.concatenate([folded(c[None], training=False).numpy() for c in probe])
    diff = float(np.max(np.abs(ref - got)))
    if diff > 1e-4 * max(float(np.max(np.abs(ref))), 1.0):
        raise TfkwsError(
            f"{run_dir}: width {width} sub-network differs from the supernet (max abs diff "
            f"{diff:.3g})"
        )
    tflite = to_int8_tflite(folded, rep, num_calibration=None, seed=seed)
    return write_export(
        run_dir,
        run,
        out_path,
        tflite,
        int(folded.count_params()),
        diff,
        int(len(rep)),
        "ptq",
        extra={"slim": width_metadata(supernet, width)},
    )


def width_metadata(supernet: keras.Model, width: float) -> dict[str, Any]:
    """The ``slim`` block of an exported width's metadata: which width of which supernet."""
    widths = model_widths(supernet)
    index = width_index(widths, width)
    return {
        "width": float(widths[index]),
        "width_index": index,
        "widths": list(widths),
        "supernet_params": int(supernet.count_params()),
        "macs": model_macs(supernet, index),
        "relative_macs": float(relative_costs(supernet)[index]),
    }
