"""Layers repeated in a row exported as one TFLite WHILE loop: the block's ops are stored once.

A weight-shared model that applies the same block ``n`` times in a row (the conformer's
``repeat``, level 1 of arXiv 2303.08343) stores that block's weights once, but an unrolled graph
still holds its operators, tensors and quantisation parameters ``n`` times: on the repeat=2
Conformer that graph overhead was about a third of the compacted file. Exported as a WHILE loop
whose body is the block, the flatbuffer holds the block once and TFLM (``while.cc``) runs it
``n`` times. The converter keeps the loop-carried activation in float (one int8 scale cannot
fit every iteration of a residual stream), so the body starts with QUANTIZE and ends with
DEQUANTIZE; everything inside stays int8.

A ``RepeatSpan`` names the layer whose (last) output enters the repeated block and the layer
whose first output leaves its first application; the model's builder says where its spans are
(``tfkws.models.registry.register_repeats``). ``loop_repeats`` returns a model that computes
exactly what the (folded) model does -- the export checks it -- with the spans as loops.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow as tf
import tf_keras as keras

from tfkws.errors import ModelError


@dataclasses.dataclass(frozen=True)
class RepeatSpan:
    """``after``'s last output -> the block -> ``last``'s first output; the block runs ``times``
    in a row (so ``last``'s last output is the block's ``times``-th application)."""

    after: str
    last: str
    times: int


def _outputs(layer: keras.layers.Layer, model: keras.Model) -> list[Any]:
    """``layer``'s output tensors in ``model``, one per call, in call order."""
    in_model = {id(n) for nodes in model._nodes_by_depth.values() for n in nodes}
    return [tf.nest.flatten(n.outputs)[0] for n in layer._inbound_nodes if id(n) in in_model]


def _node_of(tensor: Any) -> Any:
    layer, node_index, _ = tensor._keras_history
    return layer._inbound_nodes[node_index]


def _path(start: Any, end: Any) -> list[Any]:
    """The nodes that compute ``end`` from ``start``, in an order that runs them."""
    seen: set[int] = set()
    order: list[Any] = []
    stack: list[tuple[Any, bool]] = [(end, False)]
    while stack:  # iterative post-order: deep graphs do not hit Python's recursion limit
        tensor, expanded = stack.pop()
        if tensor is start:
            continue
        node = _node_of(tensor)
        if node.is_input:
            raise ModelError(f"repeat loop: {end.name} does not depend on {start.name} only")
        if expanded:
            if id(node) not in seen:
                seen.add(id(node))
                order.append(node)
            continue
        if id(node) in seen:
            continue
        stack.append((tensor, True))
        stack.extend((t, False) for t in reversed(node.keras_inputs))
    return order


def _replay(nodes: list[Any], start: Any, end: Any, value: tf.Tensor) -> tf.Tensor:
    """Run ``nodes`` (inference) on ``value`` fed at ``start``; the value at ``end``."""
    if start is end:
        return value
    values = _Refill({str(id(start)): value})
    for node in nodes:
        args, kwargs = node.map_arguments(values)
        kwargs = {k: v for k, v in kwargs.items() if k != "training"}
        out = node.layer(*args, training=False, **kwargs)
        values.update(zip(node.flat_output_ids, tf.nest.flatten(out), strict=True))
    return dict.__getitem__(values, str(id(end)))


class _Refill(dict):
    """Tensor id -> value. ``Node.map_arguments`` pops each input from a list once per use; a
    replay reads values any number of times, so every lookup returns a fresh one-element list."""

    def __getitem__(self, key: str) -> list[Any]:
        return [dict.__getitem__(self, key)]


class RepeatLoops(keras.layers.Layer):
    """Runs ``model`` with each span's block as a ``tf.while_loop`` (export only: not saved)."""

    def __init__(self, model: keras.Model, spans: list[RepeatSpan], **kwargs: Any) -> None:
        super().__init__(name=kwargs.pop("name", f"{model.name}_loops"), **kwargs)
        self.model = model
        self.spans = list(spans)
        self.pieces = _pieces(model, self.spans)

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        (stem, start, end), *rest = self.pieces
        h = _replay(stem, start, end, x)
        for (block, b_in, b_out, times), (link, l_in, l_out) in zip(
            rest[::2], rest[1::2], strict=True
        ):

            def body(i: tf.Tensor, h: tf.Tensor, block=block, b_in=b_in, b_out=b_out) -> Any:
                return i + 1, _replay(block, b_in, b_out, h)

            _, h = tf.while_loop(lambda i, h, n=times: i < n, body, (tf.constant(0), h))
            h = _replay(link, l_in, l_out, h)
        return h


def _pieces(model: keras.Model, spans: list[RepeatSpan]) -> list[tuple]:
    """[stem, (block, link) per span]: node lists with their start and end tensors; a link goes
    from one span's last application to the next span's input (or to the model's output)."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(f"repeat loop: {model.name} needs one input and one output")
    if not spans:
        raise ModelError("repeat loop: no repeated block to loop")
    pieces: list[tuple] = []
    current = model.inputs[0]
    for span in spans:
        try:
            enter = _outputs(model.get_layer(span.after), model)[-1]
            leaves = _outputs(model.get_layer(span.last), model)
        except (ValueError, IndexError) as err:
            raise ModelError(f"repeat loop: {model.name} has no layer for {span}") from err
        if len(leaves) < span.times or span.times < 2:
            raise ModelError(f"repeat loop: {span.last} is not applied {span.times} times")
        pieces.append((_path(current, enter), current, enter))  # the stem, or a link
        pieces.append((_path(enter, leaves[0]), enter, leaves[0], span.times))
        current = leaves[span.times - 1]
    pieces.append((_path(current, model.outputs[0]), current, model.outputs[0]))
    return pieces


def loop_repeats(model: keras.Model, spans: list[RepeatSpan]) -> keras.Model:
    """``model`` (batch-1, folded) with every span's repeated block as one WHILE loop."""
    shape = model.inputs[0].shape
    inputs = keras.Input(batch_size=shape[0], shape=shape[1:], name=model.inputs[0].name)
    outputs = RepeatLoops(model, spans)(inputs)
    return keras.Model(inputs, outputs, name=f"{model.name}_looped")
