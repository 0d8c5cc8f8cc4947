"""``StridedDepthwiseConv2D``: a Keras ``DepthwiseConv2D`` that also runs with unequal strides.

TensorFlow's CPU kernel for depthwise convolution refuses strides such as (1, 2) ("only supports
equal length strides"), yet KWS models stride time and frequency separately (BC-ResNet strides
frequency only). With unequal strides this layer computes the stride-1 convolution and keeps
every s-th output, starting at the offset that reproduces TensorFlow's own padding for the strided
convolution, so its outputs equal a real strided depthwise conv exactly (same weights, same
config, same output shape). With equal strides it is the plain Keras layer.

The price is paid only where the strides differ: the stride-1 conv computes s_h * s_w times the
outputs it keeps, and TFLite sees DEPTHWISE_CONV_2D (bias fused) + STRIDED_SLICE (both TFLM int8
builtins).
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras


def strided_offset(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """Index of the stride-1 output that the first strided output equals, along one axis.

    'same' with stride s pads ``max((ceil(n/s)-1)*s + span - n, 0) // 2`` in front; with stride 1
    it pads ``(span-1) // 2``; 'valid' pads nothing either way.
    """
    if padding == "valid":
        return 0
    span = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    pad_strided = max((out - 1) * stride + span - size, 0) // 2
    return (span - 1) // 2 - pad_strided


@keras.utils.register_keras_serializable(package="tfkws")
class StridedDepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """``DepthwiseConv2D`` whose strides may differ per axis on every device (see module doc)."""

    def _unequal(self) -> bool:
        return self.strides[0] != self.strides[1]

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        if not self._unequal():
            return super().call(inputs)
        if self.data_format != "channels_last":
            raise ValueError(f"{self.name}: unequal strides need data_format='channels_last'")
        rows, cols = inputs.shape[1], inputs.shape[2]
        if rows is None or cols is None:
            raise ValueError(f"{self.name}: unequal strides need static input rows and columns")
        outputs = keras.backend.depthwise_conv2d(
            inputs,
            self.depthwise_kernel,
            strides=(1, 1),
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
        )
        # Bias before the slice (same values): TFLite fuses it into DEPTHWISE_CONV_2D, so no
        # separate ADD needs an int8 range of its own (QAT has none for it).
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation_rate
        r0 = strided_offset(rows, kh, sh, dh, self.padding)
        c0 = strided_offset(cols, kw, sw, dw, self.padding)
        out_rows, out_cols = self.compute_output_shape(inputs.shape)[1:3]
        outputs = outputs[
            :, r0 : r0 + (out_rows - 1) * sh + 1 : sh, c0 : c0 + (out_cols - 1) * sw + 1 : sw, :
        ]
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs
