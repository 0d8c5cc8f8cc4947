"""Class token + learned position embedding for keyword transformers, slimmable and plain.

``SlimmableTokens`` prepends a learned class token to the patch embeddings and adds a learned
position embedding, zeroing the inactive channels; ``extract(i)`` gives ``ClassTokenPosition``,
the plain (non-slimmable) layer holding the live slice (CONCATENATION + ADD in TFLite).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf
import tf_keras as keras

from tfkws.errors import ModelError
from tfkws.layers.slimmable_base import DEFAULT_WIDTHS, PlainApply, SlimmableLayer


def _prepend_and_add(x: tf.Tensor, cls: tf.Tensor, pos: tf.Tensor) -> tf.Tensor:
    token = tf.broadcast_to(cls[None, None, :], [tf.shape(x)[0], 1, cls.shape[0]])
    return tf.concat([token, x], axis=1) + pos[None]


def _init() -> keras.initializers.Initializer:
    """A fresh initializer per weight (an unseeded instance repeats its values)."""
    return keras.initializers.TruncatedNormal(stddev=0.02)


def _check(shape: tf.TensorShape, name: str) -> tuple[int, int]:
    if shape.rank != 3 or shape[1] is None or shape[2] is None:
        raise ModelError(
            f"{name}: expects (batch, tokens, channels) with static sizes, got {shape}"
        )
    return int(shape[1]), int(shape[2])


@keras.utils.register_keras_serializable(package="tfkws")
class ClassTokenPosition(keras.layers.Layer):
    """``[B, T, D] -> [B, T + 1, D]``: learned class token first, plus learned positions."""

    def build(self, input_shape: Any) -> None:
        tokens, dim = _check(tf.TensorShape(input_shape), self.name)
        self.cls = self.add_weight("cls", (dim,), initializer=_init())
        self.pos = self.add_weight("pos", (tokens + 1, dim), initializer=_init())
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return _prepend_and_add(inputs, self.cls, self.pos)

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        s = tf.TensorShape(input_shape)
        return tf.TensorShape([s[0], None if s[1] is None else s[1] + 1, s[2]])


@keras.utils.register_keras_serializable(package="tfkws")
class SlimmableTokens(SlimmableLayer):
    """``ClassTokenPosition`` whose live channels follow the width."""

    def __init__(
        self, widths: Sequence[float] = DEFAULT_WIDTHS, divisor: int = 1, **kwargs: Any
    ) -> None:
        super().__init__(widths=widths, divisor=divisor, **kwargs)

    def build(self, input_shape: Any) -> None:
        tokens, self.channels = _check(tf.TensorShape(input_shape), self.name)
        self.cls = self.add_weight("cls", (self.channels,), initializer=_init())
        self.pos = self.add_weight("pos", (tokens + 1, self.channels), initializer=_init())
        self._create_width_index()
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        y = _prepend_and_add(inputs, self.cls, self.pos)
        return y * self.channel_mask(self.channels, y.dtype)

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        s = tf.TensorShape(input_shape)
        return tf.TensorShape([s[0], None if s[1] is None else s[1] + 1, s[2]])

    def extract(self, index: int) -> PlainApply:
        c = self.live(self.channels, index)
        layer = ClassTokenPosition(name=self.name)
        return PlainApply(layer, [self.cls.numpy()[:c], self.pos.numpy()[:, :c]])
