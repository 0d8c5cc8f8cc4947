"""Slimmable temporal CNN supernet: RepCNN's deployed layout with switchable widths.

Features become channels and every conv is a (k, 1) kernel along time, as in ``repcnn`` (whose
uni-branch twin this is at full width): on Arabic Speech Commands that layout generalises to new
speakers far better than DS-CNN's 2-D convs (``benchmarks/results/repcnn.md``), with tiny
activations (frames x channels), so small arenas. Built from slimmable convs, switchable
BatchNorms and a slimmable dense head like ``slimmable_ds_cnn``; cut widths out with
``tfkws slim extract`` and train it with the sandwich rule (the trainer does, for every
slimmable model).

``time_padding="valid"`` pads nothing along time (each layer shortens the sequence by
``kernel_size - 1`` rows before its stride): every extracted width then streams exactly
(``tfkws.streaming.external_state``); the input must cover the receptive field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tf_keras as keras

from tfkws.errors import TfkwsError
from tfkws.layers.slimmable_base import DEFAULT_WIDTHS, check_widths
from tfkws.layers.slimmable_conv import SlimmableConv2D
from tfkws.layers.switchable_batch_norm import SwitchableBatchNorm
from tfkws.models.registry import register_model
from tfkws.models.slimmable_ds_cnn import slimmable_head

_DEFAULTS: dict[str, Any] = {
    "channels": (64, 64, 64, 96, 96),
    "strides": (1, 1, 2, 1, 1),
    "kernel_size": 7,
    "widths": DEFAULT_WIDTHS,
    "divisor": 4,
    "dropout": 0.1,
    "bn_momentum": 0.9,
    "sandwich_random_widths": 2,
    "time_padding": "same",
}


def build_slimmable_tc_cnn(
    input_shape: tuple[int, int],
    num_classes: int,
    batch_size: int | None = None,
    channels: Sequence[int] = _DEFAULTS["channels"],
    strides: Sequence[int] = _DEFAULTS["strides"],
    kernel_size: int = 7,
    widths: Sequence[float] = DEFAULT_WIDTHS,
    divisor: int = 4,
    dropout: float = 0.1,
    bn_momentum: float = 0.9,
    sandwich_random_widths: int = 2,
    time_padding: str = "same",
) -> keras.Model:
    """Temporal CNN supernet: per layer a (kernel_size, 1) conv + switchable BN + ReLU.

    ``strides`` subsample time per layer. ``sandwich_random_widths`` is read by the trainer
    (random widths per sandwich step), not by the graph. ``time_padding``: ``same`` or
    ``valid`` (streams exactly; module doc).
    """
    if time_padding not in ("same", "valid"):
        raise TfkwsError(
            f"slimmable_tc_cnn time_padding must be same or valid, got {time_padding!r}"
        )
    ws = check_widths(widths)
    chs, ss = [int(c) for c in channels], [int(s) for s in strides]
    if not chs or len(chs) != len(ss) or min(chs) <= 0 or min(ss) <= 0 or num_classes <= 0:
        raise TfkwsError(
            "slimmable_tc_cnn needs channels and strides of the same non-zero length, "
            f"all > 0, and num_classes > 0; got channels={channels}, strides={strides}"
        )
    if int(kernel_size) <= 0:
        raise TfkwsError(f"slimmable_tc_cnn kernel_size must be > 0, got {kernel_size}")
    slim = dict(widths=list(ws), divisor=int(divisor))

    frames, feats = (int(d) for d in input_shape)
    inputs = keras.Input(shape=(frames, feats), batch_size=batch_size, name="features")
    x = keras.layers.Reshape((frames, 1, feats), name="to_time_channels")(inputs)
    for i, (ch, s) in enumerate(zip(chs, ss, strict=True)):
        x = SlimmableConv2D(
            ch,
            (int(kernel_size), 1),
            strides=(s, 1),
            padding=time_padding,
            slim_input=i > 0,  # the features are always all there
            name=f"block{i}",
            **slim,
        )(x)
        x = SwitchableBatchNorm(momentum=bn_momentum, name=f"block{i}_bn", **slim)(x)
        x = keras.layers.ReLU(name=f"block{i}_relu")(x)
    return slimmable_head(
        inputs,
        x,
        num_classes,
        dropout,
        "dropout",
        slim,
        sandwich_random_widths,
        "slimmable_tc_cnn",
    )


@register_model("slimmable_tc_cnn", **_DEFAULTS)
def slimmable_tc_cnn(
    input_shape: tuple[int, int], num_classes: int, batch_size: int | None = None, **params: Any
) -> keras.Model:
    """Slimmable temporal CNN supernet (RepCNN's layout, 8 widths 0.25..1, switchable BN)."""
    return build_slimmable_tc_cnn(input_shape, num_classes, batch_size, **params)
