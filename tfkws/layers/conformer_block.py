"""Conformer block (Gulati et al. 2020) as reusable module objects wired into a functional graph.

A block is ``x + 1/2 FFN(x)``, ``+ MHSA``, ``+ Conv``, ``+ 1/2 FFN``, then LayerNorm; each module
starts with its own LayerNorm (pre-norm) and ends in a residual add:

* feed-forward: LN -> Dense(ff_dim, swish) -> Dropout -> Dense(dim) -> Dropout -> x 0.5;
* self-attention: LN -> query / key / value Dense -> ``DotProductAttention`` -> Dense -> Dropout
  (positions are a ``LearnedPosition`` table added once before the first block);
* convolution: LN -> Dense(2 dim) -> GLU -> depthwise conv over time -> BatchNorm -> swish ->
  Dense(dim) -> Dropout.

Modules and blocks are plain Python objects that own Keras layers and apply them when called,
not Keras layers themselves: weight sharing (arXiv 2303.08343) is calling the same object -- and
so the same Keras layers -- in several places. A shared Keras layer object is what
``tfkws.folding.fold.rebuild`` keeps shared in every copy (fold, batch-1 export) and what the
TFLite converter stores once; a composite Keras layer holding shared sub-layers would not survive
``from_config``. Weightless layers (Add, Dropout, attention core ...) are created per call.
Every Dense can be low rank (``rank`` > 0), its U factor drawn from a ``FactorBank`` to share it.
"""

from __future__ import annotations

from typing import Any

import tf_keras as keras

from tfkws.layers.dot_product_attention import DotProductAttention
from tfkws.layers.gated_linear_unit import GatedLinearUnit
from tfkws.layers.low_rank_dense import FactorBank, projection

LN_EPSILON = 1e-5


def _drop(x: Any, rate: float, name: str) -> Any:
    return keras.layers.Dropout(rate, name=name)(x) if rate else x


class FeedForwardModule:
    """Half-step feed-forward module; calling it returns ``x + 0.5 * FFN(LN(x))``."""

    def __init__(
        self,
        dim: int,
        ff_dim: int,
        name: str,
        rank: int = 0,
        bank: FactorBank | None = None,
        dropout: float = 0.0,
    ) -> None:
        self.name = name
        self.norm = keras.layers.LayerNormalization(epsilon=LN_EPSILON, name=f"{name}_ln")
        self.up = projection(ff_dim, f"{name}_up", rank, bank, "ffn_up", activation="swish")
        self.down = projection(dim, f"{name}_down", rank, bank, "ffn_down")
        self.dropout = float(dropout)

    def __call__(self, x: Any, at: str) -> Any:
        h = _drop(self.up(self.norm(x)), self.dropout, f"{at}_drop1")
        h = _drop(self.down(h), self.dropout, f"{at}_drop2")
        h = keras.layers.Rescaling(0.5, name=f"{at}_half")(h)
        return keras.layers.Add(name=f"{at}_add")([x, h])


class AttentionModule:
    """Multi-head self-attention module; ``share_query_key`` makes the key projection the query's
    (one weight matrix, symmetric scores), a level-3 sub-component share."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        name: str,
        rank: int = 0,
        bank: FactorBank | None = None,
        dropout: float = 0.0,
        share_query_key: bool = False,
    ) -> None:
        self.name = name
        self.num_heads = int(num_heads)
        self.norm = keras.layers.LayerNormalization(epsilon=LN_EPSILON, name=f"{name}_ln")
        self.query = projection(dim, f"{name}_query", rank, bank, "attn_query")
        self.key = (
            self.query
            if share_query_key
            else projection(dim, f"{name}_key", rank, bank, "attn_key")
        )
        self.value = projection(dim, f"{name}_value", rank, bank, "attn_value")
        self.output = projection(dim, f"{name}_output", rank, bank, "attn_output")
        self.dropout = float(dropout)

    def __call__(self, x: Any, at: str) -> Any:
        h = self.norm(x)
        q = self.query(h)
        k = q if self.key is self.query else self.key(h)
        v = self.value(h)
        h = DotProductAttention(self.num_heads, name=f"{at}_attention")([q, k, v])
        h = _drop(self.output(h), self.dropout, f"{at}_drop")
        return keras.layers.Add(name=f"{at}_add")([x, h])


class ConvolutionModule:
    """Convolution module; the depthwise conv runs over time as a ``(kernel, 1)`` 2-D conv."""

    def __init__(
        self,
        dim: int,
        kernel_size: int,
        name: str,
        rank: int = 0,
        bank: FactorBank | None = None,
        dropout: float = 0.0,
    ) -> None:
        self.name = name
        self.dim = int(dim)
        self.norm = keras.layers.LayerNormalization(epsilon=LN_EPSILON, name=f"{name}_ln")
        self.pointwise1 = projection(2 * dim, f"{name}_pw1", rank, bank, "conv_pw1")
        self.depthwise = keras.layers.DepthwiseConv2D(
            (int(kernel_size), 1), padding="same", use_bias=False, name=f"{name}_dw"
        )
        self.batch_norm = keras.layers.BatchNormalization(name=f"{name}_bn")
        self.pointwise2 = projection(dim, f"{name}_pw2", rank, bank, "conv_pw2")
        self.dropout = float(dropout)

    def __call__(self, x: Any, at: str) -> Any:
        tokens = int(x.shape[1])
        h = GatedLinearUnit(name=f"{at}_glu")(self.pointwise1(self.norm(x)))
        h = keras.layers.Reshape((tokens, 1, self.dim), name=f"{at}_to_2d")(h)
        h = self.batch_norm(self.depthwise(h))
        h = keras.layers.Activation("swish", name=f"{at}_swish")(h)
        h = keras.layers.Reshape((tokens, self.dim), name=f"{at}_to_1d")(h)
        h = _drop(self.pointwise2(h), self.dropout, f"{at}_drop")
        return keras.layers.Add(name=f"{at}_add")([x, h])


class ConformerBlock:
    """FFN/2 -> MHSA -> Conv -> FFN/2 -> LayerNorm, from (possibly shared) module objects.

    ``ffn2`` may be ``ffn1`` itself (the two halves share weights, a level-3 share).
    """

    def __init__(
        self,
        ffn1: FeedForwardModule,
        attention: AttentionModule,
        convolution: ConvolutionModule,
        ffn2: FeedForwardModule,
        name: str,
    ) -> None:
        self.name = name
        self.ffn1, self.attention, self.convolution, self.ffn2 = ffn1, attention, convolution, ffn2
        self.norm = keras.layers.LayerNormalization(epsilon=LN_EPSILON, name=f"{name}_ln")

    def __call__(self, x: Any, at: str) -> Any:
        x = self.ffn1(x, f"{at}_ffn1")
        x = self.attention(x, f"{at}_attn")
        x = self.convolution(x, f"{at}_conv")
        x = self.ffn2(x, f"{at}_ffn2")
        return self.norm(x)
