"""``SwitchableLayerNorm``: LayerNorm over the live channels only, with gamma/beta per width.

The statistics of a LayerNorm are taken over the feature axis, so at a narrower width they must
be taken over the live channels alone (the zeroed ones would bias mean and variance); each width
also keeps its own affine parameters. ``extract(i)`` is an ordinary ``LayerNormalization`` on the
live channels (TFLM runs it as MEAN / SQUARED_DIFFERENCE / RSQRT ... with a static batch of 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf
import tf_keras as keras

from tfkws.errors import ModelError
from tfkws.layers.slimmable_base import DEFAULT_WIDTHS, PlainApply, SlimmableLayer


@keras.utils.register_keras_serializable(package="tfkws")
class SwitchableLayerNorm(SlimmableLayer):
    """LayerNorm over the last axis, restricted to the live channels; params per width."""

    def __init__(
        self,
        epsilon: float = 1e-5,
        widths: Sequence[float] = DEFAULT_WIDTHS,
        divisor: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(widths=widths, divisor=divisor, **kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape: Any) -> None:
        shape = tf.TensorShape(input_shape)
        if shape.rank is None or shape.rank < 2 or shape[-1] is None:
            raise ModelError(f"{self.name}: expects (batch, ..., channels), got {shape}")
        self.channels = int(shape[-1])
        rows = (len(self.widths), self.channels)
        self.gamma = self.add_weight("gamma", rows, initializer="ones")
        self.beta = self.add_weight("beta", rows, initializer="zeros")
        self._create_width_index()
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        mask = self.channel_mask(self.channels, inputs.dtype)
        n = tf.cast(self.active_count(self.channels), inputs.dtype)
        x = inputs * mask
        mean = tf.reduce_sum(x, axis=-1, keepdims=True) / n
        centred = (x - mean) * mask
        var = tf.reduce_sum(tf.square(centred), axis=-1, keepdims=True) / n
        gamma = tf.gather(self.gamma, self.width_variable)
        beta = tf.gather(self.beta, self.width_variable)
        return (centred * tf.math.rsqrt(var + self.epsilon) * gamma + beta) * mask

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        return tf.TensorShape(input_shape)

    def extract(self, index: int) -> PlainApply:
        c = self.live(self.channels, index)
        layer = keras.layers.LayerNormalization(epsilon=self.epsilon, name=self.name)
        return PlainApply(layer, [self.gamma.numpy()[index, :c], self.beta.numpy()[index, :c]])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(epsilon=self.epsilon)
        return config
