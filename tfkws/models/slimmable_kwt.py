"""Slimmable keyword transformer (KWT, Berg et al. 2021) supernet, after Akhtar et al. 2023.

Patches of ``patch_frames`` feature frames are embedded, a class token and learned positions are
added, and ``depth`` pre-norm encoder blocks (switchable LayerNorm -> slimmable multi-head
self-attention -> residual; switchable LayerNorm -> slimmable MLP -> residual) follow; the class
token's final LayerNorm output gives the logits. The embedding width and the number of heads
slice together (fixed head size), so every width is a complete smaller KWT.

The MLP uses ReLU, not KWT's GELU: TFLM has no int8 GELU kernel (and its erf / tanh-cube
decompositions quantise poorly).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tf_keras as keras

from tfkws.errors import TfkwsError
from tfkws.layers.slimmable_attention import SlimmableAttention
from tfkws.layers.slimmable_base import DEFAULT_WIDTHS, check_widths
from tfkws.layers.slimmable_dense import SlimmableDense
from tfkws.layers.slimmable_tokens import SlimmableTokens
from tfkws.layers.switchable_layer_norm import SwitchableLayerNorm
from tfkws.models.registry import register_model


def build_slimmable_kwt(
    input_shape: tuple[int, int],
    num_classes: int,
    batch_size: int | None = None,
    embed_dim: int = 64,
    num_heads: int = 16,
    mlp_dim: int = 256,
    depth: int = 4,
    patch_frames: int = 1,
    widths: Sequence[float] = DEFAULT_WIDTHS,
    dropout: float = 0.0,
    sandwich_random_widths: int = 2,
) -> keras.Model:
    """Slimmable KWT supernet: 64-dim, 16 heads of 4, MLP 256, depth 4; 8 widths 0.25..1.

    16 heads make the 8 default widths 8 distinct sub-networks (4..16 heads).
    """
    ws = check_widths(widths)
    if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
        raise TfkwsError(
            f"slimmable_kwt: embed_dim {embed_dim} must be a positive multiple of "
            f"num_heads {num_heads}"
        )
    if depth < 1 or mlp_dim < 1 or patch_frames < 1 or num_classes < 1:
        raise TfkwsError("slimmable_kwt needs depth, mlp_dim, patch_frames, num_classes >= 1")
    if not 0.0 <= float(dropout) < 1.0:
        raise TfkwsError(f"slimmable_kwt dropout must be in [0, 1), got {dropout}")
    frames, feats = (int(d) for d in input_shape)
    if patch_frames > frames:
        raise TfkwsError(f"slimmable_kwt: patch_frames {patch_frames} > {frames} frames")
    head_dim = embed_dim // num_heads
    slim = dict(widths=list(ws), divisor=head_dim)

    inputs = keras.Input(shape=(frames, feats), batch_size=batch_size, name="features")
    x = inputs
    tokens, rest = divmod(frames, patch_frames)
    if rest:
        x = keras.layers.Cropping1D((0, rest), name="crop")(x)
    if patch_frames > 1:
        x = keras.layers.Reshape((tokens, patch_frames * feats), name="patches")(x)
    x = SlimmableDense(embed_dim, slim_input=False, name="embed", **slim)(x)
    x = SlimmableTokens(name="tokens", **slim)(x)
    for i in range(depth):
        h = SwitchableLayerNorm(name=f"block{i}_ln1", **slim)(x)
        h = SlimmableAttention(num_heads, name=f"block{i}_attn", **slim)(h)
        if dropout:
            h = keras.layers.Dropout(dropout, name=f"block{i}_drop1")(h)
        x = keras.layers.Add(name=f"block{i}_add1")([x, h])
        h = SwitchableLayerNorm(name=f"block{i}_ln2", **slim)(x)
        h = SlimmableDense(mlp_dim, activation="relu", name=f"block{i}_mlp1", **slim)(h)
        h = SlimmableDense(embed_dim, name=f"block{i}_mlp2", **slim)(h)
        if dropout:
            h = keras.layers.Dropout(dropout, name=f"block{i}_drop2")(h)
        x = keras.layers.Add(name=f"block{i}_add2")([x, h])
    x = keras.layers.Cropping1D((0, tokens), name="class_token")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = SwitchableLayerNorm(name="final_ln", **slim)(x)
    outputs = SlimmableDense(num_classes, slim_output=False, name="logits", **slim)(x)
    model = keras.Model(inputs, outputs, name="slimmable_kwt")
    model.sandwich_random_widths = int(sandwich_random_widths)
    return model


@register_model(
    "slimmable_kwt",
    embed_dim=64,
    num_heads=16,
    mlp_dim=256,
    depth=4,
    patch_frames=1,
    widths=DEFAULT_WIDTHS,
    dropout=0.0,
    sandwich_random_widths=2,
)
def slimmable_kwt(
    input_shape: tuple[int, int], num_classes: int, batch_size: int | None = None, **params: Any
) -> keras.Model:
    """Slimmable keyword transformer supernet (8 widths 0.25..1); cut widths with tfkws slim."""
    return build_slimmable_kwt(input_shape, num_classes, batch_size, **params)
