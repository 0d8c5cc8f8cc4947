"""``DotProductAttention``: the weight-free core of multi-head self-attention.

Takes already projected queries, keys and values ``[batch, tokens, heads * head_dim]`` and returns
the merged heads' context. Keeping the projections outside (as Dense / ``LowRankDense`` layers in
the functional graph) is what lets a model share them -- query with key, or across layers -- by
reusing layer objects. In int8 TFLite: RESHAPE, TRANSPOSE, BATCH_MATMUL, MUL, SOFTMAX, all TFLM
builtins (the ``1 / sqrt(head_dim)`` scale is a constant MUL the converter may fold).
"""

from __future__ import annotations

import math
from typing import Any

import tensorflow as tf
import tf_keras as keras

from tfkws.errors import ModelError


@keras.utils.register_keras_serializable(package="tfkws")
class DotProductAttention(keras.layers.Layer):
    """Scaled dot-product attention of ``num_heads`` heads over ``[query, key, value]``."""

    def __init__(self, num_heads: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if int(num_heads) < 1:
            raise ModelError(f"{self.name}: num_heads must be >= 1, got {num_heads}")
        self.num_heads = int(num_heads)

    def build(self, input_shape: Any) -> None:
        shapes = [tf.TensorShape(s) for s in input_shape]
        if len(shapes) != 3 or any(s.rank != 3 or s[1] is None or s[2] is None for s in shapes):
            raise ModelError(
                f"{self.name}: expects [query, key, value] of static shape, got {shapes}"
            )
        if len({tuple(s[1:]) for s in shapes}) != 1:
            raise ModelError(f"{self.name}: query, key and value shapes differ: {shapes}")
        self.tokens, self.width = int(shapes[0][1]), int(shapes[0][2])
        if self.width % self.num_heads:
            raise ModelError(
                f"{self.name}: width {self.width} is not a multiple of {self.num_heads} heads"
            )
        self.head_dim = self.width // self.num_heads
        super().build(input_shape)

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        split = [-1, self.tokens, self.num_heads, self.head_dim]
        q, k, v = (tf.reshape(t, split) for t in inputs)
        q = tf.transpose(q, [0, 2, 1, 3]) * (1.0 / math.sqrt(self.head_dim))
        k = tf.transpose(k, [0, 2, 3, 1])
        v = tf.transpose(v, [0, 2, 1, 3])
        probs = tf.nn.softmax(tf.matmul(q, k), axis=-1)
        context = tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3])
        return tf.reshape(context, [-1, self.tokens, self.width])

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        return tf.TensorShape(input_shape[0])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_heads": self.num_heads}
