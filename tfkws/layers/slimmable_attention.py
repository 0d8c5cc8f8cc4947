"""``SlimmableAttention``: multi-head self-attention whose width and head count slice together.

The head size is fixed (``embed_dim / num_heads``); a width keeps the first ``h`` heads and so
the first ``h * head_dim`` embedding channels, which is the live width of the whole residual
stream when every slimmable layer of the model uses ``divisor = head_dim``. Inactive heads
read zero queries, keys and values and so write zeros. ``extract(i)`` is an ordinary Keras
``MultiHeadAttention`` with ``h`` heads (converts to FULLY_CONNECTED / BATCH_MATMUL / SOFTMAX /
TRANSPOSE / RESHAPE, all TFLM int8 builtins).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfkws.errors import ModelError
from tfkws.layers.slimmable_base import DEFAULT_WIDTHS, SlimmableLayer, call_then_set

_PROJ = ("query", "key", "value", "output")


@keras.utils.register_keras_serializable(package="tfkws")
class SlimmableAttention(SlimmableLayer):
    """Self-attention over ``[batch, tokens, embed_dim]``; ``divisor`` is the head size.

    Args:
      num_heads: heads at full width; ``embed_dim`` (the input's last axis) must be a multiple.
      widths: see ``SlimmableLayer``; the divisor is always ``embed_dim // num_heads``.
    """

    def __init__(
        self,
        num_heads: int,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        widths: Sequence[float] = DEFAULT_WIDTHS,
        divisor: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(widths=widths, divisor=divisor, **kwargs)
        if int(num_heads) < 1:
            raise ModelError(f"{self.name}: num_heads must be >= 1, got {num_heads}")
        self.num_heads = int(num_heads)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape: Any) -> None:
        shape = tf.TensorShape(input_shape)
        if shape.rank != 3 or shape[-1] is None:
            raise ModelError(f"{self.name}: expects (batch, tokens, embed_dim), got {shape}")
        self.embed_dim = int(shape[-1])
        if self.embed_dim % self.num_heads:
            raise ModelError(
                f"{self.name}: embed_dim {self.embed_dim} is not a multiple of "
                f"num_heads {self.num_heads}"
            )
        self.head_dim = self.embed_dim // self.num_heads
        if self.divisor != self.head_dim:
            raise ModelError(
                f"{self.name}: divisor must equal the head size {self.head_dim} so that heads "
                f"and embedding slice together, got {self.divisor}"
            )
        self.tokens = None if shape[1] is None else int(shape[1])
        for p in _PROJ:
            init = self.kernel_initializer.__class__.from_config(
                self.kernel_initializer.get_config()
            )
            kernel = self.add_weight(f"{p}_kernel", (self.embed_dim, self.embed_dim), None, init)
            setattr(self, f"{p}_kernel", kernel)
            bias = (
                self.add_weight(f"{p}_bias", (self.embed_dim,), initializer="zeros")
                if self.use_bias
                else None
            )
            setattr(self, f"{p}_bias", bias)
        self._create_width_index()
        super().build(input_shape)

    def _project(self, x: tf.Tensor, name: str, mask: tf.Tensor) -> tf.Tensor:
        y = tf.einsum("btd,de->bte", x, getattr(self, f"{name}_kernel"))
        bias = getattr(self, f"{name}_bias")
        if bias is not None:
            y = y + bias
        return y * mask

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        mask = self.channel_mask(self.embed_dim, inputs.dtype)
        q, k, v = (self._project(inputs, p, mask) for p in _PROJ[:3])
        split = [-1, tf.shape(inputs)[1], self.num_heads, self.head_dim]
        q, k, v = (tf.transpose(tf.reshape(t, split), [0, 2, 1, 3]) for t in (q, k, v))
        scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(self.head_dim)
        attn = tf.nn.softmax(scores, axis=-1)
        heads = tf.transpose(tf.matmul(attn, v), [0, 2, 1, 3])
        merged = tf.reshape(heads, [-1, tf.shape(inputs)[1], self.embed_dim])
        return self._project(merged, "output", mask)

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        return tf.TensorShape(input_shape)

    def live_heads(self, index: int) -> int:
        return self.live(self.embed_dim, index) // self.head_dim

    def extract(self, index: int) -> Any:
        heads = self.live_heads(index)
        d = heads * self.head_dim
        layer = keras.layers.MultiHeadAttention(
            heads, self.head_dim, use_bias=self.use_bias, name=self.name
        )
        w = {p: getattr(self, f"{p}_kernel").numpy()[:d, :d] for p in _PROJ}
        b = {p: getattr(self, f"{p}_bias").numpy()[:d] if self.use_bias else None for p in _PROJ}

        def weights_of(p: str) -> list[np.ndarray]:
            if p == "output":  # [heads, head_dim, d]: head h reads channels h*hd:(h+1)*hd
                out = [w[p].reshape(heads, self.head_dim, d)]
            else:  # [d, heads, head_dim]: head h writes channels h*hd:(h+1)*hd
                out = [w[p].reshape(d, heads, self.head_dim)]
            if self.use_bias:
                out.append(b[p] if p == "output" else b[p].reshape(heads, self.head_dim))
            return out

        done: list[bool] = []

        def set_weights() -> None:
            if not done:
                layer._query_dense.set_weights(weights_of("query"))
                layer._key_dense.set_weights(weights_of("key"))
                layer._value_dense.set_weights(weights_of("value"))
                layer._output_dense.set_weights(weights_of("output"))
                done.append(True)

        def apply(x: Any, **kwargs: Any) -> Any:
            return call_then_set(layer, (x, x), {}, set_weights)

        return apply

    def macs(self, index: int) -> int:
        if self.tokens is None:
            raise ModelError(f"{self.name}: MACs need a static number of tokens")
        d = self.live(self.embed_dim, index)
        return int(4 * self.tokens * d * d + 2 * self.tokens * self.tokens * d)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
