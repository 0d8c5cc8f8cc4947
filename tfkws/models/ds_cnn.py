"""DS-CNN keyword spotter (Zhang et al. 2017, "Hello Edge"), sized as ARM's ML-KWS-for-MCU.

Convolutions carry no bias because a BatchNorm follows each one; ``tfkws.folding`` folds the
BatchNorms into the kernels before int8 conversion. The model ends in logits (no softmax):
training uses ``from_logits=True`` and the int8 graph keeps the widest output range.

``rep=True`` trains every conv as a RepCNN-style multi-branch block (``RepConvBlock``: the
preset kernel plus smaller kernels, a 1x1 and an identity where shapes allow, each with its own
BatchNorm) that folds into exactly the preset's conv: the same deployed DS-CNN (layers,
parameters, MACs, arena), a richer model to train (RepCNN gained 0.75 points over its
uni-branch twin on Arabic Speech Commands, ``benchmarks/results/repcnn.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tf_keras as keras

from tfkws.errors import TfkwsError
from tfkws.layers.rep_conv_block import RepConvBlock
from tfkws.models.registry import register_model

# size -> (channels, DS blocks, first-conv stride, first-DS stride), from ARM's model_size_info:
# S: 64 ch, conv 10x4 /2x2, 4 DS; M: 172 ch, conv 10x4 /2x1, 4 DS (first /2x2); L: 276 ch, 5 DS.
SIZES: dict[str, tuple[int, int, tuple[int, int], tuple[int, int]]] = {
    "s": (64, 4, (2, 2), (1, 1)),
    "m": (172, 4, (2, 1), (2, 2)),
    "l": (276, 5, (2, 1), (2, 2)),
}


def block_dilations(
    model: str, time_dilation: Sequence[int] | None, blocks: int, first_strided: bool
) -> list[int]:
    """Each DS block's time dilation (1 when not given), checked: one value >= 1 per block, and
    none on a strided first block (Keras cannot stride and dilate at once)."""
    dilations = [int(d) for d in (time_dilation or [1] * blocks)]
    if len(dilations) != blocks or min(dilations, default=1) < 1:
        raise TfkwsError(f"{model} time_dilation needs {blocks} values >= 1, got {time_dilation}")
    if dilations and dilations[0] > 1 and first_strided:
        raise TfkwsError(f"{model}: the strided first DS block cannot be dilated")
    return dilations


def _conv_bn_relu(x: Any, layer: keras.layers.Layer, name: str, momentum: float) -> Any:
    x = layer(x)
    x = keras.layers.BatchNormalization(momentum=momentum, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _pad_frequency(x: Any, kernel: int, stride: int, dilation: int, name: str) -> Any:
    """Zero-pad frequency (axis 2) as ``same`` padding would, time not at all."""
    size = int(x.shape[2])
    span = (kernel - 1) * dilation + 1
    total = max((-(-size // stride) - 1) * stride + span - size, 0)
    if not total:
        return x
    pad = ((0, 0), (total // 2, total - total // 2))
    return keras.layers.ZeroPadding2D(pad, name=f"{name}_fpad")(x)


def _rep_relu(x: Any, block: RepConvBlock) -> Any:
    return keras.layers.ReLU(name=f"{block.name}_relu")(block(x))


def build_ds_cnn(
    input_shape: tuple[int, int],
    num_classes: int,
    batch_size: int | None = None,
    size: str = "s",
    dropout: float = 0.2,
    channels: int | None = None,
    num_blocks: int | None = None,
    first_kernel: tuple[int, int] = (10, 4),
    bn_momentum: float = 0.9,
    rep: bool = False,
    time_dilation: tuple[int, ...] | None = None,
    time_padding: str = "same",
) -> keras.Model:
    """DS-CNN: conv 10x4 + BN/ReLU, depthwise-separable blocks, global average pool, logits.

    ``channels`` / ``num_blocks`` override the size preset (tiny models for tests).
    ``bn_momentum`` 0.9 (not Keras's 0.99) so BN statistics settle in short runs too.
    ``rep``: multi-branch blocks for training that fold into this same network (module doc).
    ``time_dilation``: each DS block's depthwise dilation along time (e.g. 1,2,4,8; with ``rep``
    too): the same parameters, a receptive field over the whole clip instead of about half.
    ``time_padding``: ``same`` (Hello Edge) or ``valid``: convolutions pad frequency only, so the
    model streams exactly (``tfkws.streaming.external_state``; time shrinks layer by layer).
    """
    key = str(size).lower()
    if key not in SIZES:
        raise TfkwsError(f"ds_cnn size must be one of {', '.join(SIZES)}, got {size!r}")
    preset_ch, preset_blocks, conv_stride, ds_stride = SIZES[key]
    ch = int(channels or preset_ch)
    blocks = int(num_blocks if num_blocks is not None else preset_blocks)
    if ch <= 0 or blocks < 0 or num_classes <= 0:
        raise TfkwsError("ds_cnn needs channels > 0, num_blocks >= 0 and num_classes > 0")
    if not 0.0 <= float(dropout) < 1.0:
        raise TfkwsError(f"ds_cnn dropout must be in [0, 1), got {dropout}")
    dilations = block_dilations("ds_cnn", time_dilation, blocks, tuple(ds_stride) != (1, 1))
    if time_padding not in ("same", "valid"):
        raise TfkwsError(f"ds_cnn time_padding must be same or valid, got {time_padding!r}")
    valid = time_padding == "valid"

    frames, feats = (int(d) for d in input_shape)
    inputs = keras.Input(shape=(frames, feats), batch_size=batch_size, name="features")
    x = keras.layers.Reshape((frames, feats, 1), name="reshape")(inputs)
    k0 = tuple(int(k) for k in first_kernel)
    if rep:  # the preset kernel, its half along each axis, a 1x1 (no identity: 1 -> ch)
        half = (max(k0[0] // 2, 1), max(k0[1] // 2, 1))
        if valid:
            x = _pad_frequency(x, k0[1], conv_stride[1], 1, "conv0")
        x = _rep_relu(
            x,
            RepConvBlock(
                ch,
                [k0, half],
                strides=conv_stride,
                momentum=bn_momentum,
                padding=time_padding,
                name="conv0",
            ),
        )
    else:
        if valid:
            x = _pad_frequency(x, k0[1], conv_stride[1], 1, "conv0")
        x = _conv_bn_relu(
            x,
            keras.layers.Conv2D(
                ch,
                k0,
                strides=conv_stride,
                padding=time_padding,
                use_bias=False,
                name="conv0",
            ),
            "conv0",
            bn_momentum,
        )
    if dropout:
        x = keras.layers.Dropout(dropout, name="conv0_dropout")(x)
    for i in range(1, blocks + 1):
        stride = ds_stride if i == 1 else (1, 1)
        if rep:  # 3x3, 1x3, 3x1, 1x1 (+ identity at stride 1); pointwise 1x1 (+ identity)
            dw = [(3, 3), (1, 3), (3, 1)]
            if valid:
                x = _pad_frequency(x, 3, stride[1], 1, f"ds{i}_dw")
            x = _rep_relu(
                x,
                RepConvBlock(
                    None,
                    dw,
                    strides=stride,
                    dilation_rate=(dilations[i - 1], 1),
                    depthwise=True,
                    momentum=bn_momentum,
                    padding=time_padding,
                    name=f"ds{i}_dw",
                ),
            )
            x = _rep_relu(x, RepConvBlock(ch, [(1, 1)], momentum=bn_momentum, name=f"ds{i}_pw"))
            continue
        if valid:
            x = _pad_frequency(x, 3, stride[1], 1, f"ds{i}_dw")
        x = _conv_bn_relu(
            x,
            keras.layers.DepthwiseConv2D(
                (3, 3),
                strides=stride,
                dilation_rate=(dilations[i - 1], 1),
                padding=time_padding,
                use_bias=False,
                name=f"ds{i}_dw",
            ),
            f"ds{i}_dw",
            bn_momentum,
        )
        x = _conv_bn_relu(
            x,
            keras.layers.Conv2D(ch, 1, use_bias=False, name=f"ds{i}_pw"),
            f"ds{i}_pw",
            bn_momentum,
        )
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="pool_dropout")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"ds_cnn_{key}")


_DEFAULTS: dict[str, Any] = {
    "dropout": 0.2,
    "channels": None,
    "num_blocks": None,
    "first_kernel": (10, 4),
    "bn_momentum": 0.9,
    "rep": False,
    "time_dilation": None,
    "time_padding": "same",
}


@register_model("ds_cnn", size="s", **_DEFAULTS)
def ds_cnn(
    input_shape: tuple[int, int], num_classes: int, batch_size: int | None = None, **params: Any
) -> keras.Model:
    """DS-CNN (Hello Edge), size s/m/l via ``size``; default s (64 ch, 4 DS blocks)."""
    return build_ds_cnn(input_shape, num_classes, batch_size, **params)


def _alias(size: str) -> None:
    def builder(
        input_shape: tuple[int, int],
        num_classes: int,
        batch_size: int | None = None,
        **params: Any,
    ) -> keras.Model:
        return build_ds_cnn(input_shape, num_classes, batch_size, size=size, **params)

    builder.__doc__ = f"DS-CNN-{size.upper()} (Hello Edge / ARM ML-KWS-for-MCU preset)."
    register_model(f"ds_cnn_{size}", **_DEFAULTS)(builder)


for _size in SIZES:
    _alias(_size)
