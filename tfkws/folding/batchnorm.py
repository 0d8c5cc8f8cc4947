"""BatchNorm folding arithmetic: merge an inference BatchNorm into the preceding linear layer.

A BN after a linear layer is an affine map per output channel, so it folds exactly into that
layer's kernel and bias; the int8 graph then has one quantised op instead of two.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tf_keras as keras

# Layers whose output channel is the last kernel axis (DepthwiseConv2D is handled apart).
_FOLDABLE = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.Dense)
_TRANSPOSED = (
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)


def is_foldable_linear(layer: keras.layers.Layer) -> bool:
    """True if a following per-channel BatchNorm can be folded into ``layer``'s weights."""
    if isinstance(layer, _TRANSPOSED) or isinstance(layer, keras.layers.SeparableConv2D):
        return False
    if not isinstance(layer, (*_FOLDABLE, keras.layers.DepthwiseConv2D)):
        return False
    if keras.activations.serialize(layer.activation) != "linear":
        return False  # BN after a non-linearity is not affine in the layer's output
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def is_foldable_bn(bn: keras.layers.Layer, output_rank: int) -> bool:
    """True for a channels-last BatchNormalization (per last-axis statistics) in inference."""
    if not isinstance(bn, keras.layers.BatchNormalization):
        return False
    axis = bn.axis if isinstance(bn.axis, (list, tuple)) else [bn.axis]
    axis = [a % output_rank for a in axis]
    if axis != [output_rank - 1]:
        return False
    # Synchronized / renorm / virtual-batch variants share the same inference formula, but
    # virtual batches reshape the input: do not touch them.
    return not getattr(bn, "virtual_batch_size", None)


def bn_scale_shift(bn: keras.layers.BatchNormalization) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(scale, shift)`` so that ``bn(y) == y * scale + shift`` at inference."""
    mean = keras.backend.get_value(bn.moving_mean).astype(np.float64)
    var = keras.backend.get_value(bn.moving_variance).astype(np.float64)
    gamma = keras.backend.get_value(bn.gamma).astype(np.float64) if bn.scale else np.ones_like(mean)
    beta = keras.backend.get_value(bn.beta).astype(np.float64) if bn.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + float(bn.epsilon))
    return scale, beta - mean * scale


def fold_bn_weights(
    layer: keras.layers.Layer, bn: keras.layers.BatchNormalization
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(kernel, bias)`` of ``layer`` with ``bn`` folded in (float32, bias always set)."""
    is_dw = isinstance(layer, keras.layers.DepthwiseConv2D)
    kernel_var = layer.depthwise_kernel if is_dw else layer.kernel
    kernel = keras.backend.get_value(kernel_var).astype(np.float64)
    bias = (
        keras.backend.get_value(layer.bias).astype(np.float64)
        if getattr(layer, "use_bias", False)
        else None
    )
    scale, shift = bn_scale_shift(bn)
    if is_dw:
        # kernel [kh, kw, in, mult]; output channel c = in_index * mult + m.
        kh, kw, cin, mult = kernel.shape
        kernel = kernel * scale.reshape(cin, mult)[None, None]
    else:
        kernel = kernel * scale  # output channels on the last axis
    if bias is None:
        bias = np.zeros(scale.shape, np.float64)
    bias = bias * scale + shift
    return kernel.astype(np.float32), bias.astype(np.float32)


def folded_layer(
    layer: keras.layers.Layer, bn: keras.layers.BatchNormalization
) -> tuple[keras.layers.Layer, list[np.ndarray]]:
    """A fresh, unbuilt copy of ``layer`` with a bias, plus the folded weights to set once built."""
    config: dict[str, Any] = layer.get_config()
    config["use_bias"] = True
    config["bias_initializer"] = "zeros"
    new = layer.__class__.from_config(config)
    kernel, bias = fold_bn_weights(layer, bn)
    return new, [kernel, bias]
