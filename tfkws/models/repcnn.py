"""RepCNN (Kundu et al. 2024, arXiv 2406.02652) and its uni-branch twin.

A small temporal CNN: the (frames, features) matrix is treated as a 1-D signal over time with the
features as channels, so every conv is a (k, 1) kernel along time. That keeps activations tiny
(frames x channels), which is where RepCNN's low peak memory and latency come from.

``repcnn`` trains every conv as a ``RepConvBlock`` (several kernel sizes, a 1x1, an identity where
shapes allow, each with BN); ``fold_model`` turns each block into one conv. ``repcnn_unibranch``
is the same network trained directly as ``Conv2D -> BN -> ReLU`` with the largest kernel: once
both are folded, their layers, parameter counts and TFLite op lists are identical, so any accuracy
difference comes from the training-time parameterisation alone.

``time_padding="valid"`` (both builders) pads nothing along time, so each layer shortens the
sequence by ``(kernel - 1)`` rows (then divides it by its stride) and the global pool averages
what is left: a model that streams exactly (``tfkws.streaming.external_state``), at the price
of never seeing the clip's edges through zero padding (the input must cover the receptive field:
43 frames for the defaults). ``same`` (the paper's) keeps every layer's length.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tf_keras as keras

from tfkws.errors import ModelError
from tfkws.layers.rep_conv_block import RepConvBlock
from tfkws.layers.strided_depthwise_conv import StridedDepthwiseConv2D
from tfkws.models.registry import register_model

_DEFAULT_CHANNELS = (32, 32, 32, 48, 48)
_DEFAULT_STRIDES = (1, 1, 2, 1, 1)


def _check(
    channels: Sequence[int], strides: Sequence[int], dropout: float, time_padding: str
) -> None:
    if time_padding not in ("same", "valid"):
        raise ModelError(f"repcnn: time_padding must be same or valid, got {time_padding!r}")
    if not channels:
        raise ModelError("repcnn: 'channels' must list at least one layer")
    if len(channels) != len(strides):
        raise ModelError(
            f"repcnn: 'channels' ({len(channels)}) and 'strides' ({len(strides)}) differ in length"
        )
    if not 0.0 <= dropout < 1.0:
        raise ModelError(f"repcnn: 'dropout' must be in [0, 1), got {dropout}")


def _input(input_shape: tuple[int, int], batch_size: int | None) -> tuple[Any, Any]:
    if len(input_shape) != 2:
        raise ModelError(f"repcnn: input_shape must be (frames, features), got {input_shape}")
    frames, feats = (int(v) for v in input_shape)
    inputs = keras.Input(shape=(frames, feats), batch_size=batch_size, name="features")
    # Features become channels: a (frames, 1, feats) image convolved along time only.
    return inputs, keras.layers.Reshape((frames, 1, feats), name="to_time_channels")(inputs)


def _head(x: Any, num_classes: int, dropout: float) -> Any:
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    return keras.layers.Dense(num_classes, name="logits")(x)


@register_model(
    "repcnn",
    channels=_DEFAULT_CHANNELS,
    strides=_DEFAULT_STRIDES,
    kernel_sizes=(7, 5, 3),
    use_1x1=True,
    use_identity=True,
    separable=False,
    dropout=0.1,
    time_padding="same",
)
def build_repcnn(
    input_shape: tuple[int, int],
    num_classes: int,
    batch_size: int | None = None,
    channels: Sequence[int] = _DEFAULT_CHANNELS,
    strides: Sequence[int] = _DEFAULT_STRIDES,
    kernel_sizes: Sequence[int] = (7, 5, 3),
    use_1x1: bool = True,
    use_identity: bool = True,
    separable: bool = False,
    dropout: float = 0.1,
    time_padding: str = "same",
) -> keras.Model:
    """RepCNN: multi-branch temporal CNN for training, folded to a plain CNN for export.

    Each layer is a ``RepConvBlock`` with time kernels ``kernel_sizes`` (plus a 1x1 and, where
    stride is 1 and channels match, an identity), then ReLU; ``separable`` makes each layer a
    depthwise block then a pointwise block. Stride ``s`` subsamples time. ``time_padding``:
    ``same`` or ``valid`` (streams exactly; module doc).
    """
    _check(channels, strides, dropout, time_padding)
    kernels = [(int(k), 1) for k in kernel_sizes]
    inputs, x = _input(input_shape, batch_size)
    identity = None if use_identity else False
    for i, (ch, s) in enumerate(zip(channels, strides, strict=True)):
        if separable:
            x = RepConvBlock(
                kernel_sizes=kernels,
                use_1x1=use_1x1,
                use_identity=identity,
                strides=(int(s), 1),
                depthwise=True,
                padding=time_padding,
                name=f"block{i}_dw",
            )(x)
            x = keras.layers.ReLU(name=f"block{i}_dw_relu")(x)
            x = RepConvBlock(
                int(ch), kernel_sizes=[(1, 1)], use_identity=identity, name=f"block{i}_pw"
            )(x)
        else:
            x = RepConvBlock(
                int(ch),
                kernel_sizes=kernels,
                use_1x1=use_1x1,
                use_identity=identity,
                strides=(int(s), 1),
                padding=time_padding,
                name=f"block{i}",
            )(x)
        x = keras.layers.ReLU(name=f"block{i}_relu")(x)
    return keras.Model(inputs, _head(x, num_classes, dropout), name="repcnn")


@register_model(
    "repcnn_unibranch",
    channels=_DEFAULT_CHANNELS,
    strides=_DEFAULT_STRIDES,
    kernel_size=7,
    separable=False,
    dropout=0.1,
    time_padding="same",
)
def build_repcnn_unibranch(
    input_shape: tuple[int, int],
    num_classes: int,
    batch_size: int | None = None,
    channels: Sequence[int] = _DEFAULT_CHANNELS,
    strides: Sequence[int] = _DEFAULT_STRIDES,
    kernel_size: int = 7,
    separable: bool = False,
    dropout: float = 0.1,
    time_padding: str = "same",
) -> keras.Model:
    """RepCNN's uni-branch twin: Conv-BN-ReLU, kernel = RepCNN's largest; same deployed graph."""
    _check(channels, strides, dropout, time_padding)
    inputs, x = _input(input_shape, batch_size)
    k = (int(kernel_size), 1)
    for i, (ch, s) in enumerate(zip(channels, strides, strict=True)):
        if separable:
            x = StridedDepthwiseConv2D(
                k,
                strides=(int(s), 1),
                padding=time_padding,
                use_bias=False,
                depthwise_initializer="he_normal",
                name=f"block{i}_dw",
            )(x)
            x = keras.layers.BatchNormalization(name=f"block{i}_dw_bn")(x)
            x = keras.layers.ReLU(name=f"block{i}_dw_relu")(x)
            x = keras.layers.Conv2D(
                int(ch),
                1,
                padding="same",
                use_bias=False,
                kernel_initializer="he_normal",
                name=f"block{i}_pw",
            )(x)
            x = keras.layers.BatchNormalization(name=f"block{i}_pw_bn")(x)
        else:
            x = keras.layers.Conv2D(
                int(ch),
                k,
                strides=(int(s), 1),
                padding=time_padding,
                use_bias=False,
                kernel_initializer="he_normal",
                name=f"block{i}",
            )(x)
            x = keras.layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = keras.layers.ReLU(name=f"block{i}_relu")(x)
    return keras.Model(inputs, _head(x, num_classes, dropout), name="repcnn_unibranch")
