"""Slimmable DS-CNN supernet (Akhtar et al. 2023, "Small-footprint slimmable networks for KWS").

The DS-CNN of ``ds_cnn`` (conv 10x4 + depthwise-separable blocks + average pool + logits) built
from slimmable layers and switchable BatchNorms: one set of weights holds a sub-network per
width in ``widths``; ``tfkws.folding.slim_width.extract_width`` cuts any of them out as a plain
DS-CNN for folding, int8 conversion and TFLM. Train it with the sandwich rule
(``tfkws.training.sandwich``), which the trainer applies to every slimmable model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tf_keras as keras

from tfkws.errors import TfkwsError
from tfkws.layers.slimmable_base import DEFAULT_WIDTHS, check_widths
from tfkws.layers.slimmable_conv import SlimmableConv2D
from tfkws.layers.slimmable_dense import SlimmableDense
from tfkws.layers.slimmable_depthwise_conv import SlimmableDepthwiseConv2D
from tfkws.layers.switchable_batch_norm import SwitchableBatchNorm
from tfkws.models.ds_cnn import block_dilations
from tfkws.models.registry import register_model


def build_slimmable_ds_cnn(
    input_shape: tuple[int, int],
    num_classes: int,
    batch_size: int | None = None,
    channels: int = 172,
    num_blocks: int = 4,
    first_kernel: Sequence[int] = (10, 4),
    first_stride: Sequence[int] = (2, 1),
    block_stride: int = 2,
    widths: Sequence[float] = DEFAULT_WIDTHS,
    divisor: int = 4,
    dropout: float = 0.2,
    bn_momentum: float = 0.9,
    sandwich_random_widths: int = 2,
    time_dilation: Sequence[int] | None = None,
) -> keras.Model:
    """Slimmable DS-CNN supernet: DS-CNN-M layout (172 ch, 4 DS blocks), 8 widths 0.25..1.

    ``block_stride`` strides the first DS block (equal on both axes). ``sandwich_random_widths``
    is read by the trainer (random widths per sandwich step), not by the graph.
    ``time_dilation``: each DS block's depthwise dilation along time, as in ``ds_cnn``.
    """
    ws = check_widths(widths)
    ch, blocks = int(channels), int(num_blocks)
    if ch <= 0 or blocks < 0 or num_classes <= 0:
        raise TfkwsError("slimmable_ds_cnn needs channels > 0, num_blocks >= 0, num_classes > 0")
    dilations = block_dilations("slimmable_ds_cnn", time_dilation, blocks, int(block_stride) > 1)
    slim = dict(widths=list(ws), divisor=int(divisor))

    def bn_relu(x: Any, name: str) -> Any:
        x = SwitchableBatchNorm(momentum=bn_momentum, name=f"{name}_bn", **slim)(x)
        return keras.layers.ReLU(name=f"{name}_relu")(x)

    frames, feats = (int(d) for d in input_shape)
    inputs = keras.Input(shape=(frames, feats), batch_size=batch_size, name="features")
    x = keras.layers.Reshape((frames, feats, 1), name="reshape")(inputs)
    x = SlimmableConv2D(
        ch,
        tuple(first_kernel),
        strides=tuple(first_stride),
        slim_input=False,
        name="conv0",
        **slim,
    )(x)
    x = bn_relu(x, "conv0")
    if dropout:
        x = keras.layers.Dropout(dropout, name="conv0_dropout")(x)
    for i in range(1, blocks + 1):
        stride = int(block_stride) if i == 1 else 1
        x = SlimmableDepthwiseConv2D(
            3, strides=stride, dilation_rate=(dilations[i - 1], 1), name=f"ds{i}_dw", **slim
        )(x)
        x = bn_relu(x, f"ds{i}_dw")
        x = SlimmableConv2D(ch, 1, name=f"ds{i}_pw", **slim)(x)
        x = bn_relu(x, f"ds{i}_pw")
    return slimmable_head(
        inputs,
        x,
        num_classes,
        dropout,
        "pool_dropout",
        slim,
        sandwich_random_widths,
        "slimmable_ds_cnn",
    )


def slimmable_head(
    inputs: Any,
    x: Any,
    num_classes: int,
    dropout: float,
    dropout_name: str,
    slim: dict[str, Any],
    sandwich_random_widths: int,
    name: str,
) -> keras.Model:
    """Average pool, dropout, slimmable logits (all classes at every width): the supernet.

    ``sandwich_random_widths`` rides on the model for the trainer's sandwich rule. Both it and
    ``dropout`` are checked here, where they are used; errors name the model (``name``).
    """
    if not 0.0 <= float(dropout) < 1.0:
        raise TfkwsError(f"{name} dropout must be in [0, 1), got {dropout}")
    if int(sandwich_random_widths) < 0:
        raise TfkwsError(f"{name} sandwich_random_widths must be >= 0")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=dropout_name)(x)
    outputs = SlimmableDense(num_classes, slim_output=False, name="logits", **slim)(x)
    model = keras.Model(inputs, outputs, name=name)
    model.sandwich_random_widths = int(sandwich_random_widths)
    return model


@register_model(
    "slimmable_ds_cnn",
    channels=172,
    num_blocks=4,
    first_kernel=(10, 4),
    first_stride=(2, 1),
    block_stride=2,
    widths=DEFAULT_WIDTHS,
    divisor=4,
    dropout=0.2,
    bn_momentum=0.9,
    sandwich_random_widths=2,
    time_dilation=None,
)
def slimmable_ds_cnn(
    input_shape: tuple[int, int], num_classes: int, batch_size: int | None = None, **params: Any
) -> keras.Model:
    """Slimmable DS-CNN supernet (8 widths 0.25..1, switchable BN); cut widths with tfkws slim."""
    return build_slimmable_ds_cnn(input_shape, num_classes, batch_size, **params)
