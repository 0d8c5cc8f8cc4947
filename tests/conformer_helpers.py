"""Tiny conformer configurations for the conformer tests, and weights set by role.

``set_by_role`` gives every variable a value that depends only on its role in the network (its
name without block index or ``shared_`` prefix, the second feed-forward half named as the first,
the key projection as the query), so a model with sharing and its twin without compute the same
function, and the shared model's gradient of a role must be the twin's summed over its copies.
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import tf_keras as keras

from tfkws.conversion.model_info import inspect_tflite
from tfkws.features.extract import features_to_int8
from tfkws.models.conformer import build_conformer

INPUT = (12, 8)
CLASSES = 3
TINY = dict(
    dim=8, ff_dim=16, num_heads=2, depth=2, kernel_size=3, subsample_channels=2, dropout=0.0
)
# Each sharing level alone, all of them, none (rank 4 < dim 8: the factors are thinner).
COMBOS = {
    "none": {},
    "repeat": dict(repeat=2),
    "modules": dict(share_modules="ffn,attn,conv"),
    "subcomponents": dict(share_subcomponents=True),
    "low_rank": dict(rank=4),
    "low_rank_shared": dict(rank=4, share_factors=True),
    "all": dict(
        repeat=2, share_modules="conv", share_subcomponents=True, rank=4, share_factors=True
    ),
}


def build(combo: str, batch_size: int | None = None, **over: object) -> keras.Model:
    return build_conformer(INPUT, CLASSES, batch_size, **{**TINY, **COMBOS[combo], **over})


def role(name: str) -> str:
    """A variable's role: e.g. ``block1_ffn2_up_v/kernel:0`` -> ``ffn_up.v``."""
    name = name.split(":")[0]
    layer, _, var = name.rpartition("/")
    layer = re.sub(r"^(block\d+_|shared_u_|shared_)", "", layer)
    layer = re.sub(r"^ffn\d", "ffn", layer).replace("attn_key", "attn_query")
    factor = ""
    if layer.endswith("_v"):
        layer, factor = layer[:-2], "v"
    if name.split("/")[0].startswith("shared_u_"):
        factor = "u"
    if var in ("u_kernel", "v_kernel"):
        factor = var[0]
    kind = "bias" if var == "bias" else (factor or var)
    return f"{layer}.{kind}"


def set_by_role(model: keras.Model) -> None:
    for w in model.weights:
        r = role(w.name)
        rng = np.random.default_rng(zlib.crc32(r.encode()))
        value = rng.normal(scale=0.3, size=w.shape).astype(np.float32)
        if "moving_variance" in r or r.endswith(".gamma"):
            value = 1.0 + 0.2 * np.abs(value)
        w.assign(value)


def distinct_weights(model: keras.Model, seed: int = 5) -> None:
    """Every variable random on its own: no two constants equal unless they are shared."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        value = rng.normal(scale=0.3, size=w.shape)
        if "moving_variance" in w.name or "gamma" in w.name:
            value = 1.0 + np.abs(value)
        w.assign(value.astype(np.float32))


def int8_input(data: bytes, clips: np.ndarray) -> np.ndarray:
    """Float clips as the int8 input of the model ``data`` (the device's quantization)."""
    info = inspect_tflite(data)
    return features_to_int8(clips, info.input_scale, info.input_zero_point)
