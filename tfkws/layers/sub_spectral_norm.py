"""SubSpectralNorm (Chang et al. 2021), the normalisation inside BC-ResNet blocks.

Frequency bands have very different statistics, so instead of one BatchNorm per channel it keeps
one per (sub-band, channel): the frequency axis is cut into ``sub_bands`` equal groups.

At inference it is a fixed per-(frequency, channel) affine map. It cannot fold into the preceding
depthwise conv (conv weights are shared across frequency positions, this scale is not), so it is
written as ``x * scale + offset`` with constant ``(freq, channels)`` tensors: int8 ``MUL`` and
``ADD`` in TFLite/TFLM.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfkws.errors import ModelError


@keras.utils.register_keras_serializable(package="tfkws")
class SubSpectralNorm(keras.layers.Layer):
    """BatchNorm with separate statistics per frequency sub-band, for ``(batch, time, freq, ch)``.

    Args:
      sub_bands: number of equal frequency groups (5 in BC-ResNet); must divide the freq size.
      freq_axis: axis of the frequency dimension (2 for the (time, freq, channels) layout).
      momentum, epsilon: as in ``BatchNormalization``.
    """

    def __init__(
        self,
        sub_bands: int = 5,
        freq_axis: int = 2,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if int(sub_bands) < 1:
            raise ModelError(f"SubSpectralNorm: sub_bands must be >= 1, got {sub_bands}")
        if freq_axis not in (1, 2):
            raise ModelError(f"SubSpectralNorm: freq_axis must be 1 or 2, got {freq_axis}")
        self.sub_bands = int(sub_bands)
        self.freq_axis = int(freq_axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

    def build(self, input_shape: Any) -> None:
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 4:
            raise ModelError(f"SubSpectralNorm expects a 4-D input, got {input_shape}")
        freq, ch = input_shape[self.freq_axis], input_shape[-1]
        if freq is None or ch is None or freq % self.sub_bands:
            raise ModelError(
                f"SubSpectralNorm {self.name}: frequency size {freq} is not a known multiple "
                f"of sub_bands={self.sub_bands}"
            )
        self._freq, self._channels = int(freq), int(ch)
        shape = (self.sub_bands, self._channels)
        self.gamma = self.add_weight("gamma", shape, initializer="ones")
        self.beta = self.add_weight("beta", shape, initializer="zeros")
        self.moving_mean = self.add_weight(
            "moving_mean", shape, initializer="zeros", trainable=False
        )
        self.moving_variance = self.add_weight(
            "moving_variance", shape, initializer="ones", trainable=False
        )
        super().build(input_shape)

    def _expand(self, per_band: tf.Tensor) -> tf.Tensor:
        """(sub_bands, ch) -> broadcastable (freq, ch) placed on the frequency axis."""
        full = tf.repeat(per_band, self._freq // self.sub_bands, axis=0)
        return full if self.freq_axis == 2 else full[:, tf.newaxis, :]

    def _affine(self, inputs: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor) -> tf.Tensor:
        scale = self.gamma * tf.math.rsqrt(variance + self.epsilon)
        offset = self.beta - mean * scale
        return inputs * self._expand(scale) + self._expand(offset)

    def inference_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale, offset) of the inference map ``x * scale + offset``, broadcastable to the
        input without batch and time: ``(freq, ch)`` (``(freq, 1, ch)`` for ``freq_axis`` 1)."""
        gamma, beta, mean, var = (np.asarray(w, np.float64) for w in self.get_weights())
        scale = gamma / np.sqrt(var + self.epsilon)
        offset = beta - mean * scale
        band = self._freq // self.sub_bands
        scale, offset = (np.repeat(v, band, axis=0) for v in (scale, offset))
        if self.freq_axis == 1:
            scale, offset = scale[:, None, :], offset[:, None, :]
        return scale.astype(np.float32), offset.astype(np.float32)

    def _train(self, inputs: tf.Tensor) -> tf.Tensor:
        band = self._freq // self.sub_bands
        shape = tf.shape(inputs)
        if self.freq_axis == 2:
            grouped = tf.reshape(inputs, [shape[0], shape[1], self.sub_bands, band, shape[3]])
            axes = [0, 1, 3]
        else:
            grouped = tf.reshape(inputs, [shape[0], self.sub_bands, band, shape[2], shape[3]])
            axes = [0, 2, 3]
        mean, variance = tf.nn.moments(tf.cast(grouped, tf.float32), axes)
        decay = 1.0 - self.momentum
        self.moving_mean.assign_sub((self.moving_mean - mean) * decay)
        self.moving_variance.assign_sub((self.moving_variance - variance) * decay)
        return self._affine(inputs, mean, variance)

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if training is None:
            training = keras.backend.learning_phase()
        return tf.__internal__.smart_cond.smart_cond(
            training,
            lambda: self._train(inputs),
            lambda: self._affine(inputs, self.moving_mean, self.moving_variance),
        )

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        return tf.TensorShape(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            sub_bands=self.sub_bands,
            freq_axis=self.freq_axis,
            momentum=self.momentum,
            epsilon=self.epsilon,
        )
        return config
