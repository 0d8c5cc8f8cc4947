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
* the conformer's layers (``tfkws.layers.conformer_block``): ``LowRankDense`` by its two Dense
  factors (two FULLY_CONNECTED), a Dense or ``Activation`` of swish by a linear Dense and a
  ``SigmoidGate`` (FULLY_CONNECTED, LOGISTIC, MUL), ``DotProductAttention`` by Reshape /
  Permute, the ``1/sqrt(head size)`` ``ScaleBy`` (MUL), BatchMatMul, Softmax, and
  ``Rescaling`` without offset by ``ScaleBy``.

A layer called in several places (weight sharing) is replaced by one set of new layers called
in each of those places, so its weights stay one variable under QAT and in the int8 file; the
weightless op layers of each call get their own names (``_call1``, ``_call2`` ...) and ranges.
Multi-head attention and the class token must still be called once.

The result computes the same function in float (to rounding); anything else is copied.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tf_keras as keras

from tfkws.errors import ModelError
from tfkws.folding.fold import rebuild
from tfkws.layers.dot_product_attention import DotProductAttention
from tfkws.layers.low_rank_dense import LowRankDense
from tfkws.layers.slimmable_tokens import ClassTokenPosition
from tfkws.quantization.int8_layers import (
    BatchMatMul,
    ChannelAffine,
    ChannelMean,
    ClassTokenPositionQAT,
    InverseSqrt,
    MeanSquare,
    ScaleBy,
    SigmoidGate,
)


def _cannot(layer: keras.layers.Layer, why: str) -> ModelError:
    return ModelError(
        f"layer {layer.name!r} ({type(layer).__name__}) cannot be quantization-aware trained: {why}"
    )


def _layer_norm(
    layer: keras.layers.LayerNormalization, x: Any, affine: ChannelAffine | None, call: str
) -> tuple[Any, ChannelAffine]:
    """The op-level LayerNorm of ``x``; ``affine``: the shared ChannelAffine of an earlier call
    (None on the first), ``call``: the name suffix of this call's weightless op layers."""
    rank = len(x.shape)
    if [a % rank for a in layer.axis] != [rank - 1]:
        raise _cannot(layer, f"only a LayerNorm over the last axis is decomposed, not {layer.axis}")
    n, p = layer.name, f"{layer.name}{call}"
    mean = ChannelMean(name=f"{p}_mean")(x)
    centred = keras.layers.Subtract(name=f"{p}_centre")([x, mean])
    var = MeanSquare(name=f"{p}_variance")(centred)
    inv_std = InverseSqrt(layer.epsilon, name=f"{p}_inv_std")(var)
    normed = keras.layers.Multiply(name=f"{p}_normalize")([centred, inv_std])
    if affine is not None:
        return affine(normed), affine
    channels = int(x.shape[-1])
    gamma = layer.gamma.numpy() if layer.scale else np.ones(channels, np.float32)
    beta = layer.beta.numpy() if layer.center else np.zeros(channels, np.float32)
    affine = ChannelAffine(name=n)
    out = affine(normed)
    affine.set_weights([gamma, beta])
    return out, affine


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


def _is_swish(activation: Any) -> bool:
    return getattr(activation, "__name__", "") in ("swish", "silu")


def _linear_copy(layer: keras.layers.Dense, x: Any, name: str) -> tuple[Any, keras.layers.Dense]:
    """A linear Dense with ``layer``'s weights, applied to ``x``."""
    new = keras.layers.Dense.from_config({**layer.get_config(), "activation": None, "name": name})
    out = new(x)
    new.set_weights(layer.get_weights())
    return out, new


def _low_rank(layer: LowRankDense, x: Any) -> tuple[Any, list[keras.layers.Dense]]:
    """``LowRankDense`` as its factors: Dense U (no bias), then Dense V (bias), both linear."""
    u = keras.layers.Dense(layer.rank, use_bias=False, name=f"{layer.name}_u")
    v = keras.layers.Dense(layer.units, use_bias=layer.use_bias, name=f"{layer.name}_v")
    out = v(u(x))
    u.set_weights([layer.u_kernel.numpy()])
    v.set_weights([layer.v_kernel.numpy()] + ([layer.bias.numpy()] if layer.use_bias else []))
    return out, [u, v]


def _dot_product_attention(layer: DotProductAttention, inputs: list[Any], call: str) -> Any:
    """Weight-free attention core as op layers: the graph PTQ converts it to."""
    q, k, v = inputs
    tokens, heads, head_dim, n = layer.tokens, layer.num_heads, layer.head_dim, layer.name + call

    def heads_of(t: Any, p: str, order: tuple[int, int, int]) -> Any:
        t = keras.layers.Reshape((tokens, heads, head_dim), name=f"{n}_{p}_heads")(t)
        return keras.layers.Permute(order, name=f"{n}_{p}_transpose")(t)

    qh = ScaleBy(1.0 / math.sqrt(head_dim), name=f"{n}_scale")(heads_of(q, "query", (2, 1, 3)))
    scores = BatchMatMul(name=f"{n}_scores")([qh, heads_of(k, "key", (2, 3, 1))])
    probs = keras.layers.Softmax(axis=-1, name=f"{n}_softmax")(scores)
    context = BatchMatMul(name=f"{n}_context")([probs, heads_of(v, "value", (2, 1, 3))])
    context = keras.layers.Permute((2, 1, 3), name=f"{n}_merge_transpose")(context)
    return keras.layers.Reshape((tokens, layer.width), name=f"{n}_merge")(context)


def decompose_for_qat(model: keras.Model) -> keras.Model:
    """``model`` with LayerNorm, attention, class token and the conformer's composite layers as
    op-level layers (module doc); shared layers stay shared."""

    seen: set[int] = set()
    calls: dict[int, int] = {}
    replaced: dict[int, Any] = {}  # id(old layer) -> its new weight layer(s), built on 1st call

    def call_suffix(layer: keras.layers.Layer) -> str:
        k = calls.get(id(layer), 0)
        calls[id(layer)] = k + 1
        return f"_call{k}" if k else ""

    def handler(node: Any, args: tuple, kwargs: dict, copy: Any) -> Any:
        layer = node.layer
        x = args[0] if args else kwargs.get("inputs")
        if isinstance(layer, keras.layers.MultiHeadAttention) or type(layer) is ClassTokenPosition:
            if id(layer) in seen:  # its op-level layers would need one name per call
                raise _cannot(layer, "it is called more than once (shared); call it once")
            seen.add(id(layer))
        if isinstance(layer, keras.layers.LayerNormalization):
            out, replaced[id(layer)] = _layer_norm(
                layer, x, replaced.get(id(layer)), call_suffix(layer)
            )
            return out
        if type(layer) is LowRankDense:
            if not (_is_swish(layer.activation) or layer.activation.__name__ == "linear"):
                raise _cannot(layer, "only a linear or swish LowRankDense is decomposed")
            call = call_suffix(layer)
            if id(layer) in replaced:
                u, v = replaced[id(layer)]
                out = v(u(x))
            else:
                out, replaced[id(layer)] = _low_rank(layer, x)
            if _is_swish(layer.activation):
                out = SigmoidGate(name=f"{layer.name}{call}_swish")(out)
            return out
        if type(layer) is keras.layers.Dense and _is_swish(layer.activation):
            call = call_suffix(layer)
            if id(layer) in replaced:
                out = replaced[id(layer)](x)
            else:
                out, replaced[id(layer)] = _linear_copy(layer, x, layer.name)
            return SigmoidGate(name=f"{layer.name}{call}_swish")(out)
        if type(layer) is keras.layers.Activation and _is_swish(layer.activation):
            return SigmoidGate(name=f"{layer.name}{call_suffix(layer)}")(x)
        if type(layer) is keras.layers.Rescaling and float(layer.offset) == 0.0:
            return ScaleBy(float(layer.scale), name=f"{layer.name}{call_suffix(layer)}")(x)
        if type(layer) is DotProductAttention:
            return _dot_product_attention(layer, x, call_suffix(layer))
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
