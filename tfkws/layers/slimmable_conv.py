"""``SlimmableConv2D``: a 2-D convolution whose live output channels switch with the width.

At width index i the layer reads the first ``live(in_channels, i)`` input channels (the others
are zero, zeroed by the previous slimmable layer) and writes the first ``live(filters, i)``
output channels, zeroing the rest (see ``slimmable_base`` for why masking, not slicing).
``extract(i)`` gives the ordinary ``Conv2D`` with exactly that kernel slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfkws.errors import ModelError
from tfkws.layers.slimmable_base import DEFAULT_WIDTHS, PlainApply, SlimmableLayer, conv_output_hw


def pair(value: int | Sequence[int], what: str) -> tuple[int, int]:
    """Keras convention: an int means the same value on both axes."""
    p = (int(value), int(value)) if isinstance(value, int | np.integer) else tuple(value)
    if len(p) != 2 or min(int(v) for v in p) < 1:
        raise ModelError(f"slimmable layer: {what} must be a positive int or a pair, got {value!r}")
    return int(p[0]), int(p[1])


@keras.utils.register_keras_serializable(package="tfkws")
class SlimmableConv2D(SlimmableLayer):
    """Conv2D (channels last) with switchable width.

    Args:
      filters: output channels at full width.
      kernel_size, strides: as in Keras; padding 'same' or 'valid'.
      slim_input: the input channels are slimmed by the previous layer (False for the first
        layer, whose input is the fixed feature map).
      slim_output: slim the output channels (False for a fixed-size output).
      widths, divisor: see ``SlimmableLayer``.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] = 1,
        padding: str = "same",
        use_bias: bool = False,
        slim_input: bool = True,
        slim_output: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        kernel_regularizer: Any = None,
        widths: Sequence[float] = DEFAULT_WIDTHS,
        divisor: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(widths=widths, divisor=divisor, **kwargs)
        if int(filters) < 1:
            raise ModelError(f"{self.name}: filters must be >= 1, got {filters}")
        if padding not in ("same", "valid"):
            raise ModelError(f"{self.name}: padding must be 'same' or 'valid', got {padding!r}")
        self.filters = int(filters)
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.strides = pair(strides, "strides")
        self.padding = padding
        self.use_bias = bool(use_bias)
        self.slim_input = bool(slim_input)
        self.slim_output = bool(slim_output)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape: Any) -> None:
        shape = tf.TensorShape(input_shape)
        if shape.rank != 4 or shape[-1] is None:
            raise ModelError(f"{self.name}: expects (batch, rows, cols, channels), got {shape}")
        self.in_channels = int(shape[-1])
        self.kernel = self.add_weight(
            "kernel",
            (*self.kernel_size, self.in_channels, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        self.bias = (
            self.add_weight("bias", (self.filters,), initializer="zeros") if self.use_bias else None
        )
        self._out_hw = tuple(self.compute_output_shape(shape)[1:3])
        self._create_width_index()
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        y = tf.nn.conv2d(inputs, self.kernel, self.strides, self.padding.upper())
        if self.bias is not None:
            y = y + self.bias
        if self.slim_output:
            y = y * self.channel_mask(self.filters, y.dtype)
        return y

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        shape = tf.TensorShape(input_shape)
        out = conv_output_hw(shape, self.kernel_size, self.strides, self.padding)
        return tf.TensorShape([shape[0], *out, self.filters])

    def live_io(self, index: int) -> tuple[int, int]:
        cin = self.live(self.in_channels, index) if self.slim_input else self.in_channels
        cout = self.live(self.filters, index) if self.slim_output else self.filters
        return cin, cout

    def extract(self, index: int) -> PlainApply:
        cin, cout = self.live_io(index)
        layer = keras.layers.Conv2D(
            cout,
            self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            use_bias=self.use_bias,
            name=self.name,
        )
        weights = [self.kernel.numpy()[:, :, :cin, :cout]]
        if self.bias is not None:
            weights.append(self.bias.numpy()[:cout])
        return PlainApply(layer, weights)

    def macs(self, index: int) -> int:
        cin, cout = self.live_io(index)
        rows, cols = self._out_hw
        if rows is None or cols is None:
            raise ModelError(f"{self.name}: MACs need static input rows and columns")
        return int(rows * cols * self.kernel_size[0] * self.kernel_size[1] * cin * cout)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=list(self.kernel_size),
            strides=list(self.strides),
            padding=self.padding,
            use_bias=self.use_bias,
            slim_input=self.slim_input,
            slim_output=self.slim_output,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer)
            if self.kernel_regularizer
            else None,
        )
        return config
