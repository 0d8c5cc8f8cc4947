"""``LearnedPosition``: adds a learned ``[tokens, channels]`` position table to every clip.

The conformer's relative positions need gathers of a position-dependent table per head; a learned
absolute table is one int8 ADD of a constant (TFLM builtin), which is why tfkws uses it.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras as keras

from tfkws.errors import ModelError


@keras.utils.register_keras_serializable(package="tfkws")
class LearnedPosition(keras.layers.Layer):
    """``x + P`` for ``x`` of shape ``[batch, tokens, channels]`` (``P`` broadcast over batch)."""

    def build(self, input_shape: Any) -> None:
        shape = tf.TensorShape(input_shape)
        if shape.rank != 3 or shape[1] is None or shape[2] is None:
            raise ModelError(f"{self.name}: expects (batch, tokens, channels), got {shape}")
        init = keras.initializers.RandomNormal(stddev=0.02)
        self.position = self.add_weight("position", (1, int(shape[1]), int(shape[2])), None, init)
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return inputs + self.position

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        return tf.TensorShape(input_shape)
