"""Weight-shared, low-rank conformer keyword spotter (after arXiv 2303.08343).

Features ``[frames, features]`` -> 3x3 conv, stride 2 (ReLU) -> per-frame Dense to ``dim`` ->
learned positions -> ``depth`` conformer layers (``tfkws.layers.conformer_block``) -> mean over
time -> Dense logits. Which of the ``depth`` layers share what is a ``SharingPlan``
(``tfkws.models.sharing_plan``): repeated blocks, modules shared across blocks, sub-components
shared inside a block, low-rank Dense layers with optionally shared U factors. Shared weights
are one Keras variable (one layer object called several times), so every user's gradient
reaches it and the int8 flatbuffer stores it once.

``conformer_param_report`` counts unique vs applied weights per level without building the
model (registered as the model's report: ``tfkws models``, a run's results.json).
"""

from __future__ import annotations

from typing import Any

import tf_keras as keras

from tfkws.errors import TfkwsError
from tfkws.layers.conformer_block import (
    AttentionModule,
    ConformerBlock,
    ConvolutionModule,
    FeedForwardModule,
)
from tfkws.layers.learned_position import LearnedPosition
from tfkws.layers.low_rank_dense import FactorBank
from tfkws.models.registry import register_model, register_repeats, register_report
from tfkws.models.sharing_plan import ConformerShape, SharingPlan, param_report, parse_modules

DEFAULTS: dict[str, Any] = dict(
    dim=64,
    ff_dim=128,
    num_heads=4,
    depth=4,
    kernel_size=7,
    subsample_channels=8,
    dropout=0.1,
    repeat=1,
    share_modules="",
    share_subcomponents=False,
    rank=0,
    share_factors=False,
)


def _plan_and_shape(
    input_shape: tuple[int, int], num_classes: int, params: dict[str, Any]
) -> tuple[SharingPlan, ConformerShape]:
    p = {**DEFAULTS, **params}
    dims = ("dim", "ff_dim", "num_heads", "depth", "kernel_size", "subsample_channels")
    if any(int(p[k]) < 1 for k in dims) or num_classes < 1:
        raise TfkwsError(f"conformer: {', '.join(dims)} and num_classes must be >= 1")
    if int(p["dim"]) % int(p["num_heads"]):
        raise TfkwsError(
            f"conformer: dim {p['dim']} is not a multiple of num_heads {p['num_heads']}"
        )
    if not 0.0 <= float(p["dropout"]) < 1.0:
        raise TfkwsError(f"conformer: dropout must be in [0, 1), got {p['dropout']}")
    frames, feats = (int(v) for v in input_shape)
    plan = SharingPlan(
        repeat=int(p["repeat"]),
        share_modules=parse_modules(p["share_modules"]),
        share_subcomponents=bool(p["share_subcomponents"]),
        rank=int(p["rank"]),
        share_factors=bool(p["share_factors"]),
    ).check(int(p["depth"]))
    shape = ConformerShape(
        (frames, feats),
        int(num_classes),
        int(p["dim"]),
        int(p["ff_dim"]),
        int(p["depth"]),
        int(p["kernel_size"]),
        int(p["subsample_channels"]),
    )
    return plan, shape


def _blocks(
    s: ConformerShape, plan: SharingPlan, num_heads: int, dropout: float
) -> list[ConformerBlock]:
    """One ``ConformerBlock`` per conformer layer, sharing objects as ``plan`` says."""
    bank = FactorBank(plan.rank) if plan.share_factors else None
    low = dict(rank=plan.rank, bank=bank, dropout=dropout)
    shared: dict[str, Any] = {}

    def module(kind: str, name: str, make: Any) -> Any:
        if kind in plan.share_modules:  # level 2: one object per kind (and position)
            key = name.split("_", 1)[1]  # "ffn1", "attn", ... without the block prefix
            if key not in shared:
                shared[key] = make(f"shared_{key}")
            return shared[key]
        return make(name)

    def ffn(name: str) -> FeedForwardModule:
        return FeedForwardModule(s.dim, s.ff_dim, name, **low)

    unique = []
    for b in range(plan.unique_blocks(s.depth)):
        ffn1 = module("ffn", f"block{b}_ffn1", ffn)
        # level 3: the second half-step is the first
        ffn2 = ffn1 if plan.share_subcomponents else module("ffn", f"block{b}_ffn2", ffn)
        attn = module(
            "attn",
            f"block{b}_attn",
            lambda n: AttentionModule(
                s.dim, num_heads, n, share_query_key=plan.share_subcomponents, **low
            ),
        )
        conv = module(
            "conv", f"block{b}_conv", lambda n: ConvolutionModule(s.dim, s.kernel_size, n, **low)
        )
        unique.append(ConformerBlock(ffn1, attn, conv, ffn2, f"block{b}"))
    return [unique[plan.block_of(i)] for i in range(s.depth)]  # level 1


def build_conformer(
    input_shape: tuple[int, int],
    num_classes: int,
    batch_size: int | None = None,
    **params: Any,
) -> keras.Model:
    """Conformer classifier (module doc); ``params`` are ``DEFAULTS``' keys."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise TfkwsError(f"conformer: unknown parameter(s) {', '.join(unknown)}")
    p = {**DEFAULTS, **params}
    plan, s = _plan_and_shape(input_shape, num_classes, p)
    frames, feats = s.input_shape
    c = s.subsample_channels
    inputs = keras.Input(shape=(frames, feats), batch_size=batch_size, name="features")
    x = keras.layers.Reshape((frames, feats, 1), name="to_image")(inputs)
    x = keras.layers.Conv2D(c, 3, strides=2, padding="same", activation="relu", name="subsample")(x)
    x = keras.layers.Reshape((s.tokens, s.sub_features * c), name="to_tokens")(x)
    x = keras.layers.Dense(s.dim, name="input_proj")(x)
    x = LearnedPosition(name="positions")(x)
    dropout = float(p["dropout"])
    if dropout:
        x = keras.layers.Dropout(dropout, name="input_drop")(x)
    for i, block in enumerate(_blocks(s, plan, int(p["num_heads"]), dropout)):
        x = block(x, f"layer{i}")
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="conformer")


def conformer_param_report(
    input_shape: tuple[int, int], num_classes: int, **params: Any
) -> dict[str, Any]:
    """``param_report`` of the conformer these params build, without building it."""
    plan, s = _plan_and_shape(input_shape, num_classes, params)
    return param_report(s, plan)


def applied_params(model: keras.Model) -> int:
    """Weights x the number of times each layer is applied in ``model`` (its "used" weights)."""
    return int(sum(layer.count_params() * len(layer._inbound_nodes) for layer in model.layers))


def conformer_repeat_spans(**params: Any) -> list[tuple[str, str, int]]:
    """With ``repeat`` > 1, each unique block runs ``repeat`` times in a row: from the positions
    (or the previous block's final LayerNorm) to the block's own final LayerNorm."""
    p = {**DEFAULTS, **params}
    repeat, depth = int(p["repeat"]), int(p["depth"])
    if repeat < 2:
        return []
    names = ["positions"] + [f"block{b}_ln" for b in range(depth // repeat)]
    return [(names[b], names[b + 1], repeat) for b in range(depth // repeat)]


@register_repeats("conformer", conformer_repeat_spans)
@register_report("conformer", conformer_param_report)
@register_model("conformer", **DEFAULTS)
def conformer(
    input_shape: tuple[int, int],
    num_classes: int,
    batch_size: int | None = None,
    **params: Any,
) -> keras.Model:
    """Conformer with weight sharing at four levels (repeat/modules/subcomponents/low rank)."""
    return build_conformer(input_shape, num_classes, batch_size, **params)
