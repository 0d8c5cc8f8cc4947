"""``PinnedAffine``: ``x * scale + offset`` with every int8 tensor's range fixed, for pinned graphs.

A per-(frequency, channel) affine map (BC-ResNet's SubSpectralNorm at inference) is two int8 ops,
MUL then ADD; the product between them and both constants need int8 params of their own. In a
graph whose ranges are pinned with ``FixedFakeQuant`` (so a streaming and a non-streaming form
quantize alike), this layer fake-quantizes the constants over their own ranges and the product
over a range measured once; the output's range is the caller's ``FixedFakeQuant`` after it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras


def _fq(x: tf.Tensor, low: float, high: float) -> tf.Tensor:
    return tf.quantization.fake_quant_with_min_max_args(
        x, min=min(low, 0.0), max=max(high, 0.0, min(low, 0.0) + 1e-6), num_bits=8
    )


@keras.utils.register_keras_serializable(package="tfkws")
class PinnedAffine(keras.layers.Layer):
    """``x * scale + offset`` (constants broadcast over batch and time), product range fixed."""

    def __init__(
        self,
        scale: Any,
        offset: Any,
        product_range: tuple[float, float],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.scale = np.asarray(scale, np.float32)
        self.offset = np.asarray(offset, np.float32)
        self.product_range = (float(product_range[0]), float(product_range[1]))

    def call(self, x: tf.Tensor) -> tf.Tensor:
        scale = _fq(tf.constant(self.scale), float(self.scale.min()), float(self.scale.max()))
        offset = _fq(tf.constant(self.offset), float(self.offset.min()), float(self.offset.max()))
        return _fq(x * scale, *self.product_range) + offset

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "scale": self.scale.tolist(),
            "offset": self.offset.tolist(),
            "product_range": list(self.product_range),
        }
