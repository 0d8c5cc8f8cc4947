"""Rewrite transformer layers into op-level layers before QAT (see ``int8_layers``).

``decompose_for_qat`` replays a (folded) functional model and replaces:

* ``LayerNormalization`` (last axis) by ChannelMean -> Subtract -> MeanSquare -> InverseSqrt ->
  Multiply -> ChannelAffine: MEAN, SUB, MUL, MEAN, ADD, RSQRT, MUL, MUL, ADD in int8, every
  intermediate tensor fake-quantised. (Centring before squaring keeps the int8 variance exact
  for tokens with a large mean, which SQUARED_DIFFERENCE against a separately rounded mean does
  not.)
* ``MultiHeadAttention`` used as self-attention without masks by Dense query/key/value (the
  1/sqrt(head size) scale folded into the query weights, as the converter folds it), Reshape /
  Permute into heads, BatchMatMul scores, Softmax, BatchMatMul context, Permute / Reshape, Dense
  output: FULLY_CONNECTED, RESHAPE, TRANSPOSE, BATCH_MATMUL, SOFTMAX -- the ops PTQ produces.
* ``ClassTokenPosition`` by ``ClassTokenPositionQAT`` (same weights, its concatenation exposed).

The result computes the same function in float (to rounding); anything else is copied.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tf_keras as keras

from tfkws.errors import ModelError
from tfkws.folding.fold import rebuild
from tfkws.layers.slimmable_tokens import ClassTokenPosition
from tfkws.quantization.int8_layers import (
    BatchMatMul,
    ChannelAffine,
    ChannelMean,
    ClassTokenPositionQAT,
    InverseSqrt,
    MeanSquare,
)


def _cannot(layer: keras.layers.Layer, why: str) -> ModelError:
    return ModelError(
        f"layer {layer.name!r} ({type(layer).__name__}) cannot be quantization-aware trained: {why}"
    )


def _layer_norm(layer: keras.layers.LayerNormalization, x: Any) -> Any:
    rank = len(x.shape)
    if [a % rank for a in layer.axis] != [rank - 1]:
        raise _cannot(layer, f"only a LayerNorm over the last axis is decomposed, not {layer.axis}")
    channels = int(x.shape[-1])
    gamma = layer.gamma.numpy() if layer.scale else np.ones(channels, np.float32)
    beta = layer.beta.numpy() if layer.center else np.zeros(channels, np.float32)
    n = layer.name
    mean = ChannelMean(name=f"{n}_mean")(x)
    centred = keras.layers.Subtract(name=f"{n}_centre")([x, mean])
    var = MeanSquare(name=f"{n}_variance")(centred)
    inv_std = InverseSqrt(layer.epsilon, name=f"{n}_inv_std")(var)
    normed = keras.layers.Multiply(name=f"{n}_normalize")([centred, inv_std])
    affine = ChannelAffine(name=n)
    out = affine(normed)
    affine.set_weights([gamma, beta])
    return out


def _dense(name: str, kernel: np.ndarray, bias: np.ndarray | None, x: Any) -> Any:
    dense = keras.layers.Dense(kernel.shape[1], use_bias=bias is not None, name=name)
    out = dense(x)
    dense.set_weights([kernel] + ([bias] if bias is not None else []))
    return out


def _attention(layer: keras.layers.MultiHeadAttention, args: tuple, kwargs: dict) -> Any:
    kwargs = {k: v for k, v in kwargs.items() if v is not None and k != "training"}
    query = args[0] if args else kwargs.pop("query")
    value = args[1] if len(args) > 1 else kwargs.pop("value", None)
    key = args[2] if len(args) > 2 else kwargs.pop("key", None)
    if value is not query or key not in (None, query) or len(args) > 3 or kwargs:
        raise _cannot(layer, "only self-attention (query = key = value, no mask) is decomposed")
    if layer._attention_axes not in (None, (1,)) or layer._output_shape is not None:
        raise _cannot(layer, "only attention over the tokens, output width = input width")
    shape = tuple(query.shape)
    if len(shape) != 3 or shape[1] is None:
        raise _cannot(layer, f"expects [batch, tokens, dim] with static tokens, got {shape}")
    tokens, dim = int(shape[1]), int(shape[2])
    heads, head_dim = layer._num_heads, layer._key_dim
    if (layer._value_dim or head_dim) != head_dim:
        raise _cannot(layer, "value_dim must equal key_dim")
    width = heads * head_dim
    w = {
        p: getattr(layer, f"_{p}_dense").get_weights() for p in ("query", "key", "value", "output")
    }
    bias = layer._use_bias
    scale = 1.0 / math.sqrt(float(head_dim))
    n = layer.name

    def project(p: str, factor: float = 1.0) -> Any:
        kernel = w[p][0].reshape(dim, width) * factor
        b = w[p][1].reshape(width) * factor if bias else None
        return _dense(f"{n}_{p}", kernel, b, query)

    def heads_of(t: Any, p: str, order: tuple[int, int, int]) -> Any:
        t = keras.layers.Reshape((tokens, heads, head_dim), name=f"{n}_{p}_heads")(t)
        return keras.layers.Permute(order, name=f"{n}_{p}_transpose")(t)

    q = heads_of(project("query", scale), "query", (2, 1, 3))  # [B, H, T, hd]
    k = heads_of(project("key"), "key", (2, 3, 1))  # [B, H, hd, T]
    v = heads_of(project("value"), "value", (2, 1, 3))  # [B, H, T, hd]
    scores = BatchMatMul(name=f"{n}_scores")([q, k])
    probs = keras.layers.Softmax(axis=-1, name=f"{n}_softmax")(scores)
    context = BatchMatMul(name=f"{n}_context")([probs, v])
    context = keras.layers.Permute((2, 1, 3), name=f"{n}_merge_transpose")(context)
    context = keras.layers.Reshape((tokens, width), name=f"{n}_merge")(context)
    out_kernel = w["output"][0].reshape(width, -1)
    return _dense(n, out_kernel, w["output"][1] if bias else None, context)


def decompose_for_qat(model: keras.Model) -> keras.Model:
    """``model`` with LayerNorm, self-attention and class token as op-level layers (module doc)."""

    seen: set[int] = set()

    def handler(node: Any, args: tuple, kwargs: dict, copy: Any) -> Any:
        layer = node.layer
        kinds = (keras.layers.LayerNormalization, keras.layers.MultiHeadAttention)
        if isinstance(layer, kinds) or type(layer) is ClassTokenPosition:
            if id(layer) in seen:  # its op-level layers would need one name per call
                raise _cannot(layer, "it is called more than once (shared); call it once")
            seen.add(id(layer))
        if isinstance(layer, keras.layers.LayerNormalization):
            return _layer_norm(layer, args[0] if args else kwargs["inputs"])
        if isinstance(layer, keras.layers.MultiHeadAttention):
            return _attention(layer, args, kwargs)
        if type(layer) is ClassTokenPosition:
            new = ClassTokenPositionQAT(name=layer.name)
            out = new(args[0] if args else kwargs["inputs"])
            cls, pos = layer.get_weights()
            new.set_weights([cls[None, None], pos[None]])
            return out
        return None

    return rebuild(model, handler)
