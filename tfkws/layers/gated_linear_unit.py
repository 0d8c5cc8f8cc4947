"""``GatedLinearUnit``: ``a * sigmoid(b)`` of the two halves of the last axis (the conformer's GLU).

In int8 TFLite: SPLIT (or two STRIDED_SLICE), LOGISTIC, MUL -- all TFLM builtins. The sigmoid
passes through ``gate_activation`` (identity; QAT rounds it there onto LOGISTIC's int8 grid).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras as keras

from tfkws.errors import ModelError


@keras.utils.register_keras_serializable(package="tfkws")
class GatedLinearUnit(keras.layers.Layer):
    """Halves the last axis: the first half gated by the sigmoid of the second."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate_activation = keras.activations.get("linear")

    def build(self, input_shape: Any) -> None:
        channels = tf.TensorShape(input_shape)[-1]
        if channels is None or int(channels) % 2:
            raise ModelError(f"{self.name}: the last axis must be even, got {channels}")
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        a, b = tf.split(inputs, 2, axis=-1)
        return a * self.gate_activation(tf.sigmoid(b))

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        shape = tf.TensorShape(input_shape)
        return shape[:-1].concatenate([shape[-1] // 2])
