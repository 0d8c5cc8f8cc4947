"""Small Keras layers that each compute what one or two int8 TFLite ops compute, for QAT.

tfmot fake-quantises a layer's weights and its output, nothing inside it. LayerNorm, multi-head
attention and the keyword transformer's class token convert to chains of int8 ops (MEAN, SUB,
MUL, RSQRT, BATCH_MATMUL, SOFTMAX, CONCATENATION, ADD ...) whose intermediate tensors each get an
int8 range, so they cannot be wrapped whole: ``tfkws.quantization.decompose`` rewrites them into
these layers, one per op (or op pair), so every tensor the int8 graph has is a layer output or a
layer's ``inner_activation`` and carries a fake-quant range. In float every layer here is exact.

A layer with an ``inner_activation`` (identity in float) has one int8 tensor inside it;
``qat_intermediate(inputs)`` returns that tensor's float value so QAT can start its range at the
float model's min/max (``tfkws.quantization.qat._init_ranges``).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras as keras
from tensorflow_model_optimization.python.core.keras.utils import smart_cond


def _linear() -> Any:
    return keras.activations.get("linear")


@keras.utils.register_keras_serializable(package="tfkws")
class ChannelMean(keras.layers.Layer):
    """Mean over the last axis, kept as a size-1 axis (TFLite MEAN)."""

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(inputs, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        return tf.TensorShape(input_shape)[:-1].concatenate([1])


@keras.utils.register_keras_serializable(package="tfkws")
class MeanSquare(keras.layers.Layer):
    """``mean(x * x)`` over the last axis (MUL, then MEAN): the variance of centred ``x``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inner_activation = _linear()

    def qat_intermediate(self, inputs: tf.Tensor) -> tf.Tensor:
        return inputs * inputs

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(self.inner_activation(inputs * inputs), axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        return tf.TensorShape(input_shape)[:-1].concatenate([1])


def _rsqrt_for_training(x: tf.Tensor) -> tf.Tensor:
    """``rsqrt`` that is +inf at ``x <= 0`` with a zero (not NaN) gradient there."""
    positive = x > 0.0
    y = tf.math.rsqrt(tf.where(positive, x, tf.ones_like(x)))
    return tf.where(positive, y, tf.fill(tf.shape(x), float("inf")))


@keras.utils.register_keras_serializable(package="tfkws")
class InverseSqrt(keras.layers.Layer):
    """``1 / sqrt(x + epsilon)`` (ADD, then RSQRT).

    Under fake-quant ``x + epsilon`` can round to exactly 0 (a variance below half an int8
    step); int8 RSQRT then outputs its largest value, and so does the fake-quant model: +inf,
    which the output quantizer (``ReciprocalOutputQuantizer``) clamps to its range. In training
    the +inf carries a zero gradient instead of ``0 * inf = NaN``; the inference graph, which
    the converter sees, is a plain RSQRT.
    """

    def __init__(self, epsilon: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.inner_activation = _linear()

    def qat_intermediate(self, inputs: tf.Tensor) -> tf.Tensor:
        return inputs + self.epsilon

    def call(self, inputs: tf.Tensor, training: Any = None) -> tf.Tensor:
        x = self.inner_activation(inputs + self.epsilon)
        if training is None:
            training = keras.backend.learning_phase()
        return smart_cond(training, lambda: _rsqrt_for_training(x), lambda: tf.math.rsqrt(x))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.utils.register_keras_serializable(package="tfkws")
class ChannelAffine(keras.layers.Layer):
    """``x * scale + offset`` per channel of the last axis (MUL, then ADD): LayerNorm's affine."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inner_activation = _linear()

    def build(self, input_shape: Any) -> None:
        channels = int(tf.TensorShape(input_shape)[-1])
        self.scale = self.add_weight("scale", (channels,), initializer="ones")
        self.offset = self.add_weight("offset", (channels,), initializer="zeros")
        super().build(input_shape)

    def qat_intermediate(self, inputs: tf.Tensor) -> tf.Tensor:
        return inputs * self.scale

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return self.inner_activation(inputs * self.scale) + self.offset


@keras.utils.register_keras_serializable(package="tfkws")
class BatchMatMul(keras.layers.Layer):
    """``a @ b`` of two activations ``[..., m, k] x [..., k, n]`` (TFLite BATCH_MATMUL)."""

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        a, b = inputs
        return tf.matmul(a, b)

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        a, b = (tf.TensorShape(s) for s in input_shape)
        return a[:-1].concatenate(b[-1:])


@keras.utils.register_keras_serializable(package="tfkws")
class ClassTokenPositionQAT(keras.layers.Layer):
    """``ClassTokenPosition`` (CONCATENATION, then ADD) with the tensor between them exposed.

    The class token is not fake-quantised on its own: TFLite quantises that constant with the
    concatenation's output range, which ``inner_activation`` applies. Token and positions are
    held with their broadcast axes (``[1, 1, D]``, ``[1, T + 1, D]``) so the int8 graph reads
    them as they are, with no slicing op on a constant.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inner_activation = _linear()

    def build(self, input_shape: Any) -> None:
        shape = tf.TensorShape(input_shape)
        tokens, dim = int(shape[1]), int(shape[2])
        self.cls = self.add_weight("cls", (1, 1, dim), initializer="zeros")
        self.pos = self.add_weight("pos", (1, tokens + 1, dim), initializer="zeros")
        super().build(input_shape)

    def qat_intermediate(self, inputs: tf.Tensor) -> tf.Tensor:
        token = tf.broadcast_to(self.cls, [tf.shape(inputs)[0], 1, self.cls.shape[-1]])
        return tf.concat([token, inputs], axis=1)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return self.inner_activation(self.qat_intermediate(inputs)) + self.pos

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        s = tf.TensorShape(input_shape)
        return tf.TensorShape([s[0], None if s[1] is None else s[1] + 1, s[2]])


@keras.utils.register_keras_serializable(package="tfkws")
class SigmoidGate(keras.layers.Layer):
    """``x * sigmoid(x)`` (swish) as int8 does it: LOGISTIC, then MUL.

    ``gate_activation`` (identity in float) is where QAT rounds the sigmoid onto LOGISTIC's fixed
    int8 grid; the output is the MUL's own int8 tensor.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate_activation = _linear()

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return inputs * self.gate_activation(tf.sigmoid(inputs))


@keras.utils.register_keras_serializable(package="tfkws")
class ScaleBy(keras.layers.Layer):
    """``x * factor`` for a constant ``factor`` (int8 MUL with a constant operand)."""

    def __init__(self, factor: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = float(factor)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return inputs * self.factor

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor}
