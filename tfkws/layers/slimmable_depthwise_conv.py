"""``SlimmableDepthwiseConv2D``: a depthwise convolution whose channels follow the width.

A depthwise conv (multiplier 1) maps channel c to channel c, so its live outputs are exactly its
live inputs: ``extract(i)`` keeps the first ``live(channels, i)`` filters. Strides must be equal
on both axes (TensorFlow's CPU depthwise kernel refuses unequal ones); a dilation (any per axis)
needs stride 1, as in Keras.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf
import tf_keras as keras

from tfkws.errors import ModelError
from tfkws.layers.slimmable_base import DEFAULT_WIDTHS, PlainApply, SlimmableLayer, conv_output_hw
from tfkws.layers.slimmable_conv import pair


@keras.utils.register_keras_serializable(package="tfkws")
class SlimmableDepthwiseConv2D(SlimmableLayer):
    """DepthwiseConv2D (multiplier 1, channels last) with switchable width.

    ``slim_input`` False keeps every channel live at all widths (a fixed-size input).
    """

    def __init__(
        self,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] = 1,
        padding: str = "same",
        dilation_rate: int | Sequence[int] = 1,
        use_bias: bool = False,
        slim_input: bool = True,
        depthwise_initializer: Any = "glorot_uniform",
        depthwise_regularizer: Any = None,
        widths: Sequence[float] = DEFAULT_WIDTHS,
        divisor: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(widths=widths, divisor=divisor, **kwargs)
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.strides = pair(strides, "strides")
        if self.strides[0] != self.strides[1]:
            raise ModelError(f"{self.name}: strides must be equal on both axes, got {strides}")
        self.dilation_rate = pair(dilation_rate, "dilation_rate")
        if max(self.dilation_rate) > 1 and max(self.strides) > 1:
            raise ModelError(f"{self.name}: strides > 1 and dilation_rate > 1 cannot be combined")
        if padding not in ("same", "valid"):
            raise ModelError(f"{self.name}: padding must be 'same' or 'valid', got {padding!r}")
        self.padding = padding
        self.use_bias = bool(use_bias)
        self.slim_input = bool(slim_input)
        self.depthwise_initializer = keras.initializers.get(depthwise_initializer)
        self.depthwise_regularizer = keras.regularizers.get(depthwise_regularizer)

    def build(self, input_shape: Any) -> None:
        shape = tf.TensorShape(input_shape)
        if shape.rank != 4 or shape[-1] is None:
            raise ModelError(f"{self.name}: expects (batch, rows, cols, channels), got {shape}")
        self.channels = int(shape[-1])
        self.depthwise_kernel = self.add_weight(
            "depthwise_kernel",
            (*self.kernel_size, self.channels, 1),
            initializer=self.depthwise_initializer,
            regularizer=self.depthwise_regularizer,
        )
        self.bias = (
            self.add_weight("bias", (self.channels,), initializer="zeros")
            if self.use_bias
            else None
        )
        self._out_hw = tuple(self.compute_output_shape(shape)[1:3])
        self._create_width_index()
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        s = self.strides[0]
        y = tf.nn.depthwise_conv2d(
            inputs,
            self.depthwise_kernel,
            (1, s, s, 1),
            self.padding.upper(),
            dilations=self.dilation_rate,
        )
        if self.bias is not None:
            y = y + self.bias
        if self.slim_input:
            y = y * self.channel_mask(self.channels, y.dtype)
        return y

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        shape = tf.TensorShape(input_shape)
        span = [(k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation_rate, strict=True)]
        out = conv_output_hw(shape, span, self.strides, self.padding)
        return tf.TensorShape([shape[0], *out, shape[-1]])

    def live_channels(self, index: int) -> int:
        return self.live(self.channels, index) if self.slim_input else self.channels

    def extract(self, index: int) -> PlainApply:
        c = self.live_channels(index)
        layer = keras.layers.DepthwiseConv2D(
            self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            use_bias=self.use_bias,
            name=self.name,
        )
        weights = [self.depthwise_kernel.numpy()[:, :, :c, :]]
        if self.bias is not None:
            weights.append(self.bias.numpy()[:c])
        return PlainApply(layer, weights)

    def macs(self, index: int) -> int:
        rows, cols = self._out_hw
        if rows is None or cols is None:
            raise ModelError(f"{self.name}: MACs need static input rows and columns")
        k = self.kernel_size[0] * self.kernel_size[1]
        return int(rows * cols * k * self.live_channels(index))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            kernel_size=list(self.kernel_size),
            strides=list(self.strides),
            padding=self.padding,
            dilation_rate=list(self.dilation_rate),
            use_bias=self.use_bias,
            slim_input=self.slim_input,
            depthwise_initializer=keras.initializers.serialize(self.depthwise_initializer),
            depthwise_regularizer=keras.regularizers.serialize(self.depthwise_regularizer)
            if self.depthwise_regularizer
            else None,
        )
        return config
