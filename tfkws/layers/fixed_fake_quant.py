"""``FixedFakeQuant``: int8 fake quantization with a fixed range, so two graphs share int8 params.

The streaming and non-streaming forms of a model must quantize every corresponding tensor alike
for their int8 outputs to agree; calibrating each separately gives each its own ranges. Placing
this layer (TensorFlow's ``FakeQuantWithMinMaxArgs``) after every tensor with one range, measured
once, makes the TFLite converter give both graphs the same scale and zero point per tensor.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras as keras


@keras.utils.register_keras_serializable(package="tfkws")
class FixedFakeQuant(keras.layers.Layer):
    """Fake-quantize to 8 bits over ``[low, high]`` (widened to include 0, as TFLite needs)."""

    def __init__(self, low: float, high: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.low = float(min(low, 0.0))
        self.high = float(max(high, 0.0, self.low + 1e-6))

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.quantization.fake_quant_with_min_max_args(
            x, min=self.low, max=self.high, num_bits=8, narrow_range=False
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "low": self.low, "high": self.high}
