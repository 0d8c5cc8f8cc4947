"""``SwitchableBatchNorm``: BatchNorm with private statistics and affine parameters per width.

A narrower sub-network sees differently distributed features (fewer channels feed each sum), so
shared BN statistics would fit no width well (Yu et al. 2018, "Slimmable neural networks").
Each width index owns one row of gamma, beta, moving mean and moving variance; training at a
width updates only that width's row. ``extract(i)`` is an ordinary ``BatchNormalization`` with
row i's live channels, which ``fold_model`` then folds into the preceding convolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf
import tf_keras as keras

from tfkws.errors import ModelError
from tfkws.layers.slimmable_base import DEFAULT_WIDTHS, PlainApply, SlimmableLayer


@keras.utils.register_keras_serializable(package="tfkws")
class SwitchableBatchNorm(SlimmableLayer):
    """Channels-last BatchNorm, one set of parameters and statistics per width.

    ``slim_input`` False: all channels live at every width (statistics still switch).
    ``momentum`` / ``epsilon`` as in Keras (moving = moving * momentum + batch * (1 - momentum)).
    """

    def __init__(
        self,
        momentum: float = 0.9,
        epsilon: float = 1e-3,
        slim_input: bool = True,
        widths: Sequence[float] = DEFAULT_WIDTHS,
        divisor: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(widths=widths, divisor=divisor, **kwargs)
        if not 0.0 <= float(momentum) < 1.0:
            raise ModelError(f"{self.name}: momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.slim_input = bool(slim_input)

    def build(self, input_shape: Any) -> None:
        shape = tf.TensorShape(input_shape)
        if shape.rank is None or shape.rank < 2 or shape[-1] is None:
            raise ModelError(f"{self.name}: expects (batch, ..., channels), got {shape}")
        self.channels = int(shape[-1])
        rows = (len(self.widths), self.channels)
        stat = dict(
            trainable=False,
            synchronization=tf.VariableSynchronization.ON_READ,
            aggregation=tf.VariableAggregation.MEAN,
        )
        self.gamma = self.add_weight("gamma", rows, initializer="ones")
        self.beta = self.add_weight("beta", rows, initializer="zeros")
        self.moving_mean = self.add_weight("moving_mean", rows, initializer="zeros", **stat)
        self.moving_variance = self.add_weight("moving_variance", rows, initializer="ones", **stat)
        self._reduce_axes = list(range(shape.rank - 1))
        self._create_width_index()
        super().build(input_shape)

    def _row(self, var: tf.Variable) -> tf.Tensor:
        return tf.gather(var, self.width_variable)

    def _update(self, var: tf.Variable, batch_value: tf.Tensor) -> None:
        idx = self.width_variable.read_value()
        new = self._row(var) * self.momentum + batch_value * (1.0 - self.momentum)
        var.scatter_update(tf.IndexedSlices(new[None], idx[None]))

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if training is None:
            training = keras.backend.learning_phase()
        if isinstance(training, tf.Tensor):
            training = tf.get_static_value(training)
        if training:
            mean, var = tf.nn.moments(inputs, self._reduce_axes)
            self._update(self.moving_mean, mean)
            self._update(self.moving_variance, var)
        else:
            mean, var = self._row(self.moving_mean), self._row(self.moving_variance)
        y = tf.nn.batch_normalization(
            inputs, mean, var, self._row(self.beta), self._row(self.gamma), self.epsilon
        )
        if self.slim_input:
            y = y * self.channel_mask(self.channels, y.dtype)
        return y

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        return tf.TensorShape(input_shape)

    def live_channels(self, index: int) -> int:
        return self.live(self.channels, index) if self.slim_input else self.channels

    def extract(self, index: int) -> PlainApply:
        c = self.live_channels(index)
        layer = keras.layers.BatchNormalization(
            momentum=self.momentum, epsilon=self.epsilon, name=self.name
        )
        weights = [
            v.numpy()[index, :c]
            for v in (self.gamma, self.beta, self.moving_mean, self.moving_variance)
        ]
        return PlainApply(layer, weights)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(momentum=self.momentum, epsilon=self.epsilon, slim_input=self.slim_input)
        return config
