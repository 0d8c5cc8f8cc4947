"""Turn a trained functional Keras model into its inference-only, export-ready equivalent.

``fold_model`` rebuilds the graph node by node (the way Keras itself runs a functional model),
so residual adds, shared layers and nested models keep their wiring while:

* layers that define ``fold_layer()`` (re-parameterisable multi-branch blocks) are replaced by
  the single layer it returns;
* Dropout / noise layers, identities at inference, are removed;
* a BatchNormalization that is the only consumer of a Conv / DepthwiseConv2D / Dense output is
  folded into that layer's kernel and bias (bias created when absent).

Every other layer is copied (``from_config`` + weights), so the result shares no state with the
original. ``with_batch_size`` uses the same machinery to give a model a static batch (TFLM needs
batch 1: a dynamic batch adds SHAPE/REDUCE_PROD ops TFLM lacks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf
import tf_keras as keras

from tfkws.errors import ModelError
from tfkws.folding.batchnorm import folded_layer, is_foldable_bn, is_foldable_linear

# ``rebuild``'s default batch size: keep each input's own (a sentinel, since None is "dynamic").
KEEP_BATCH: Any = object()

# Identity at inference (SpatialDropout*D subclass Dropout).
_INFERENCE_IDENTITY = (
    keras.layers.Dropout,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
)

# handler(node, args, kwargs, copy) -> outputs, or None to copy the layer as it is.
Handler = Callable[[Any, tuple, dict, Callable[[keras.layers.Layer], Any]], Any]


class _Lookup(dict):
    """Tensor map for ``Node.map_arguments``, which pops from a per-id list."""

    def __getitem__(self, key: str) -> list:
        return [dict.__getitem__(self, key)]


def _require_functional(model: Any) -> None:
    if not isinstance(model, keras.Model) or not getattr(model, "_is_graph_network", False):
        raise ModelError(
            f"model {getattr(model, 'name', model)!r} is not a functional tf_keras model; "
            "folding and export need the functional API (keras.Input -> layers -> keras.Model)"
        )


def _new_inputs(model: keras.Model, batch_size: Any) -> list[Any]:
    new = []
    for x in model.inputs:
        shape = tuple(x.shape)
        batch = shape[0] if batch_size is KEEP_BATCH else batch_size
        new.append(
            keras.Input(
                shape=shape[1:], batch_size=batch, dtype=x.dtype, name=x._keras_history.layer.name
            )
        )
    return new


def _copier(
    cache: dict[int, Any], nested: Callable[[keras.Model], keras.Model]
) -> Callable[[keras.layers.Layer], Any]:
    """Returns ``copy(layer)`` -> a callable that applies a fresh copy of ``layer`` (weights too).

    One copy per layer object, so layers shared between nodes stay shared.
    """

    def copy(layer: keras.layers.Layer) -> Any:
        key = id(layer)
        if key not in cache:
            if isinstance(layer, keras.Model) and getattr(layer, "_is_graph_network", False):
                cache[key] = (nested(layer), None)
            else:
                try:
                    fresh = layer.__class__.from_config(layer.get_config())
                except (NotImplementedError, TypeError, ValueError) as err:
                    raise ModelError(
                        f"layer {layer.name!r} ({type(layer).__name__}) cannot be copied: "
                        f"its get_config/from_config fails ({err})"
                    ) from err
                cache[key] = (fresh, layer.get_weights())
        fresh, weights = cache[key]

        def apply(*args: Any, **kwargs: Any) -> Any:
            out = fresh(*args, **kwargs)
            if weights is not None:
                fresh.set_weights(weights)
                cache[key] = (fresh, None)  # weights set once, on the first call
            return out

        return apply

    return copy


def rebuild(
    model: keras.Model, handler: Handler | None, batch_size: Any = KEEP_BATCH
) -> keras.Model:
    """Re-run ``model``'s graph on new inputs, letting ``handler`` replace nodes.

    The one graph-rewriting engine of tfkws: folding, QAT wrapping, decomposition and slimmable
    width extraction are each a ``handler(node, args, kwargs, copy)`` returning the node's new
    outputs, or None to copy its layer (weights too). ``batch_size`` gives the inputs a static
    batch (``KEEP_BATCH``: as they are).
    """
    _require_functional(model)
    inputs = _new_inputs(model, batch_size)
    tensors = _Lookup()
    for old, new in zip(model.inputs, inputs, strict=True):
        tensors[str(id(old))] = new

    copy = _copier({}, lambda m: rebuild(m, handler))
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input or any(t not in tensors for t in node.flat_input_ids):
                continue
            args, kwargs = node.map_arguments(tensors)
            outputs = handler(node, args, kwargs, copy) if handler else None
            if outputs is None:
                outputs = copy(node.layer)(*args, **kwargs)
            for x_id, y in zip(node.flat_output_ids, tf.nest.flatten(outputs), strict=True):
                tensors[x_id] = y

    outputs = [dict.__getitem__(tensors, str(id(x))) for x in model.outputs]
    return keras.Model(
        tf.nest.pack_sequence_as(model._nested_inputs, inputs),
        tf.nest.pack_sequence_as(model._nested_outputs, outputs),
        name=model.name,
    )


def with_batch_size(model: keras.Model, batch_size: int | None) -> keras.Model:
    """Copy of ``model`` (same weights) whose inputs have batch ``batch_size`` (1 for export)."""
    return rebuild(model, None, batch_size)


def _first_arg(args: tuple, kwargs: dict) -> Any:
    return args[0] if args else kwargs["inputs"]


def _block_replacer() -> Handler:
    replaced: dict[int, keras.layers.Layer] = {}  # one replacement per (possibly shared) layer

    def handler(node: Any, args: tuple, kwargs: dict, copy: Any) -> Any:
        layer = node.layer
        if isinstance(layer, _INFERENCE_IDENTITY):
            return _first_arg(args, kwargs)
        fold = getattr(layer, "fold_layer", None)
        if not callable(fold):
            return None
        if id(layer) not in replaced:
            new = fold()
            if not isinstance(new, keras.layers.Layer):
                raise ModelError(
                    f"layer {layer.name!r}: fold_layer() returned {type(new).__name__}, not a Layer"
                )
            replaced[id(layer)] = new
        return replaced[id(layer)](*args, **kwargs)

    return handler


def _bn_pairs(model: keras.Model) -> dict[int, keras.layers.Layer]:
    """``{id(linear layer): bn}`` for each BN that can be folded into its producer.

    A shared pair folds too (a weight-shared conformer's conv module): when every call of the
    BN reads a call of the same linear layer, every call of that layer feeds only the BN, and
    neither is used outside this graph, folding changes each use the same way.
    """
    usage = model._tensor_usage_count
    calls: dict[int, list[Any]] = {}
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            if not node.is_input:
                calls.setdefault(id(node.layer), []).append(node)
    pairs: dict[int, keras.layers.Layer] = {}
    for nodes in calls.values():
        bn = nodes[0].layer
        if len(bn._inbound_nodes) != len(nodes):
            continue  # also called outside this graph
        producers = set()
        ok = True
        for node in nodes:
            if len(node.keras_inputs) != 1 or node.call_kwargs.get("training") is True:
                ok = False
                break
            x = node.keras_inputs[0]
            if not is_foldable_bn(bn, len(x.shape)) or usage.get(str(id(x)), 0) != 1:
                ok = False  # not a BN, or something else also reads the un-normalised output
                break
            producers.add(x._keras_history.layer)
        if not ok or len(producers) != 1:
            continue
        producer = producers.pop()
        if not is_foldable_linear(producer):
            continue
        if len(producer._inbound_nodes) != len(nodes) or len(calls[id(producer)]) != len(nodes):
            continue  # a use of the layer without the BN would change too
        pairs[id(producer)] = bn
    return pairs


def _fold_batchnorms(model: keras.Model) -> keras.Model:
    pairs = _bn_pairs(model)
    folded_bns = {id(bn) for bn in pairs.values()}
    made: dict[int, tuple[keras.layers.Layer, list[Any] | None]] = {}  # one per shared layer

    def handler(node: Any, args: tuple, kwargs: dict, copy: Any) -> Any:
        layer = node.layer
        if id(layer) in folded_bns:
            return _first_arg(args, kwargs)
        if id(layer) in pairs:
            if id(layer) not in made:
                made[id(layer)] = folded_layer(layer, pairs[id(layer)])
            new, weights = made[id(layer)]
            out = new(*args, **kwargs)
            if weights is not None:
                new.set_weights(weights)
                made[id(layer)] = (new, None)
            return out
        if isinstance(layer, keras.Model):
            return _fold_batchnorms(layer)(*args, **kwargs)
        return None

    return rebuild(model, handler)


def fold_model(model: keras.Model) -> keras.Model:
    """New inference model: ``fold_layer`` blocks replaced, Dropout dropped, BNs folded.

    Outputs match ``model(x, training=False)`` to float rounding. BatchNorms that cannot be
    folded (after an activation, a shared layer, or a tensor with other readers) are kept.
    """
    return _fold_batchnorms(rebuild(model, _block_replacer()))


def count_layers(model: keras.Model, kind: type) -> int:
    """Number of layers of ``kind`` in ``model``, nested models included (for reports)."""
    n = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            n += count_layers(layer, kind)
        elif isinstance(layer, kind):
            n += 1
    return n
