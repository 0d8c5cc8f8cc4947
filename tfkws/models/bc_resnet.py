"""BC-ResNet (Kim et al. 2021, "Broadcasted Residual Learning for Efficient Keyword Spotting").

The strong reference for RepCNN. Layout is (time, freq, channels). Each block runs a 2-D path
(frequency-depthwise conv + SubSpectralNorm), averages it over frequency, runs a cheap 1-D
temporal path (dilated depthwise conv, BN, swish, 1x1 conv, dropout) and broadcasts that back over
frequency as a residual. Stages follow the paper: blocks (2, 2, 4, 4), channels
(8, 12, 16, 20) x width after a 16 x width stem, frequency stride 2 in stages 2 and 3,
temporal dilation 1, 2, 4, 8.

Everything exports to int8 TFLM builtins with a static batch of 1: convs (BN folded), MUL/ADD for
SubSpectralNorm, AVERAGE_POOL_2D, LOGISTIC/MUL for swish, broadcast ADD, MEAN, FULLY_CONNECTED.

``time_padding="valid"`` is the form that streams exactly (``tfkws.streaming.external_state``):
nothing is padded along time (the stem pads frequency only, the head's time padding is gone).
Each block's dilated temporal conv then shortens the sequence by ``2 * dilation`` rows, so its
frequency branch and shortcut are cropped by ``dilation`` rows at each end to meet it (row ``j``
of the sum is the temporal conv centred on input row ``j + dilation``, as with ``same``). The
whole network reads ``1 + 4 + 2 * sum(blocks x dilation) + 4`` frames per output: 117 with the
paper's dilations (1, 2, 4, 8), more than a 1 s clip at 10 ms hops (98 frames), so ``valid`` needs
a longer input or smaller ``time_dilation`` (e.g. (1, 1, 2, 2): 49 frames). With ``same`` the
edges see zero padding; with ``valid`` every output row sees only real frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import tf_keras as keras

from tfkws.errors import ModelError
from tfkws.layers.strided_depthwise_conv import StridedDepthwiseConv2D
from tfkws.layers.sub_spectral_norm import SubSpectralNorm
from tfkws.models.registry import register_model

_BLOCKS = (2, 2, 4, 4)
_DILATIONS = (1, 2, 4, 8)
_STRIDED_STAGES = (1, 2)


def _conv_bn_relu(
    x: Any, filters: int, kernel: Any, strides: Any, name: str, padding: str = "same"
) -> Any:
    x = keras.layers.Conv2D(
        filters, kernel, strides=strides, padding=padding, use_bias=False, name=f"{name}_conv"
    )(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _swish(x: Any, name: str) -> Any:
    # Written as x * sigmoid(x): LOGISTIC + MUL, both TFLM int8 builtins.
    gate = keras.layers.Activation("sigmoid", name=f"{name}_sigmoid")(x)
    return keras.layers.Multiply(name=f"{name}_swish")([x, gate])


def bc_res_block(
    x: Any,
    out_channels: int,
    freq_stride: int,
    dilation: int,
    dropout: float,
    sub_bands: int,
    name: str,
    time_padding: str = "same",
) -> Any:
    """One BC-ResBlock; a transition block (channel change) has a 1x1 conv and no identity.
    ``time_padding="valid"``: the temporal conv pads nothing; the branches it meets are cropped
    (module doc)."""
    in_channels = int(x.shape[-1])
    transition = in_channels != out_channels
    shortcut = x
    if transition:
        x = _conv_bn_relu(x, out_channels, 1, 1, f"{name}_transition")
    # f2: frequency-wise depthwise conv + SubSpectralNorm.
    x = StridedDepthwiseConv2D(
        (1, 3), strides=(1, freq_stride), padding="same", use_bias=False, name=f"{name}_freq_dw"
    )(x)
    freq = int(x.shape[2])
    bands = math.gcd(sub_bands, freq)  # largest usable divisor when freq is not a multiple
    x = SubSpectralNorm(bands, name=f"{name}_ssn")(x)
    aux = x
    # f1: average over frequency, temporal path on (time, 1, channels).
    y = keras.layers.AveragePooling2D((1, freq), name=f"{name}_freq_pool")(x)
    y = StridedDepthwiseConv2D(
        (3, 1),
        padding=time_padding,
        dilation_rate=(dilation, 1),
        use_bias=False,
        name=f"{name}_time_dw",
    )(y)
    y = keras.layers.BatchNormalization(name=f"{name}_time_bn")(y)
    y = _swish(y, f"{name}_time")
    y = keras.layers.Conv2D(out_channels, 1, use_bias=False, name=f"{name}_time_pw")(y)
    if dropout:
        y = keras.layers.SpatialDropout2D(dropout, name=f"{name}_dropout")(y)
    if time_padding == "valid":  # meet the temporal conv's rows (module doc)
        crop = ((dilation, dilation), (0, 0))
        aux = keras.layers.Cropping2D(crop, name=f"{name}_aux_crop")(aux)
        if not transition:
            shortcut = keras.layers.Cropping2D(crop, name=f"{name}_shortcut_crop")(shortcut)
    # Broadcast residual over frequency (+ identity for normal blocks).
    x = keras.layers.Add(name=f"{name}_broadcast_add")([aux, y])
    if not transition:
        x = keras.layers.Add(name=f"{name}_identity_add")([x, shortcut])
    return keras.layers.ReLU(name=f"{name}_relu")(x)


@register_model(
    "bc_resnet",
    width=1.0,
    dropout=0.1,
    sub_bands=5,
    time_padding="same",
    time_dilation=_DILATIONS,
)
def build_bc_resnet(
    input_shape: tuple[int, int],
    num_classes: int,
    batch_size: int | None = None,
    width: float = 1.0,
    dropout: float = 0.1,
    sub_bands: int = 5,
    time_padding: str = "same",
    time_dilation: Sequence[int] = _DILATIONS,
) -> keras.Model:
    """BC-ResNet-``width`` (1, 1.5, 2, 3, 6, 8 in the paper) on a (frames, features) input.

    ``time_padding``: ``same`` (the paper's) or ``valid`` (streams exactly; module doc).
    ``time_dilation``: the temporal conv's dilation per stage (the paper's 1, 2, 4, 8).
    """
    if len(input_shape) != 2:
        raise ModelError(f"bc_resnet: input_shape must be (frames, features), got {input_shape}")
    base = int(8 * float(width))
    if base < 1:
        raise ModelError(f"bc_resnet: width {width} is too small (8 * width must be >= 1)")
    if not 0.0 <= dropout < 1.0:
        raise ModelError(f"bc_resnet: 'dropout' must be in [0, 1), got {dropout}")
    if time_padding not in ("same", "valid"):
        raise ModelError(f"bc_resnet: time_padding must be same or valid, got {time_padding!r}")
    dilations = [int(d) for d in time_dilation]
    if len(dilations) != len(_BLOCKS) or min(dilations) < 1:
        raise ModelError(
            f"bc_resnet: time_dilation needs {len(_BLOCKS)} values >= 1, got {time_dilation}"
        )
    valid = time_padding == "valid"
    frames, feats = (int(v) for v in input_shape)
    need = 9 + 2 * sum(n * d for n, d in zip(_BLOCKS, dilations, strict=True))
    if valid and frames < need:
        raise ModelError(
            f"bc_resnet: time_padding=valid reads {need} frames per output, the input has "
            f"{frames} (lower time_dilation)"
        )
    # (stem, stage 1..4, head) channels as in the reference implementation.
    chans = [base * 2, base, int(base * 1.5), base * 2, int(base * 2.5), base * 4]
    inputs = keras.Input(shape=(frames, feats), batch_size=batch_size, name="features")
    x = keras.layers.Reshape((frames, feats, 1), name="to_image")(inputs)
    if valid:  # pad frequency as 'same' would (5 taps, stride 2), time not at all
        total = max((-(-feats // 2) - 1) * 2 + 5 - feats, 0)
        pad = ((0, 0), (total // 2, total - total // 2))
        x = keras.layers.ZeroPadding2D(pad, name="stem_fpad")(x)
    x = _conv_bn_relu(x, chans[0], 5, (1, 2), "stem", time_padding)
    for stage, n in enumerate(_BLOCKS):
        for j in range(n):
            x = bc_res_block(
                x,
                chans[stage + 1],
                freq_stride=2 if (j == 0 and stage in _STRIDED_STAGES) else 1,
                dilation=dilations[stage],
                dropout=dropout,
                sub_bands=sub_bands,
                name=f"stage{stage + 1}_block{j}",
                time_padding=time_padding,
            )
    # Classifier: depthwise conv over the remaining frequency (no freq padding), 1x1, pool, FC.
    freq = int(x.shape[2])
    if not valid:
        x = keras.layers.ZeroPadding2D(((2, 2), (0, 0)), name="head_pad")(x)
    x = StridedDepthwiseConv2D((5, freq), use_bias=False, name="head_dw")(x)
    x = _conv_bn_relu(x, chans[-1], 1, 1, "head_pw")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"bc_resnet_{width:g}")
