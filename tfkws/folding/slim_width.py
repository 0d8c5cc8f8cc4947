"""Cut one width out of a slimmable supernet as a plain functional Keras model.

The supernet's graph is replayed node by node (``tfkws.folding.fold.rebuild``): every
slimmable layer is replaced by the ordinary Keras layer(s) its ``extract(index)`` returns
(Conv2D, DepthwiseConv2D, Dense, BatchNormalization, LayerNormalization, MultiHeadAttention,
holding that width's weight slices and its own BN / LN parameters); every other layer is copied.
The result has no slimmable layer, so it folds (``fold_model``), converts to int8
(``to_int8_tflite``) and runs in TFLM like any other model, and in inference mode its outputs
equal the supernet's at that width. A graph rewrite like folding, so it lives beside it: QAT of
one width and the run loader use it below the export pipelines.
"""

from __future__ import annotations

from typing import Any

import tf_keras as keras

from tfkws.errors import ModelError
from tfkws.folding.fold import KEEP_BATCH, rebuild
from tfkws.layers.slimmable_base import (
    SlimmableLayer,
    model_macs,
    model_widths,
    relative_costs,
    width_index,
)


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
