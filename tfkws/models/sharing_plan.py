"""``SharingPlan``: which conformer weights are shared with which, at the four levels of
arXiv 2303.08343, and the parameter count each level leaves.

1. ``repeat``: each unique conformer block is applied ``repeat`` times in a row
   (``depth / repeat`` unique blocks).
2. ``share_modules``: module kinds (``ffn``, ``attn``, ``conv``) of which one object serves every
   block (the two feed-forward positions keep one object each unless level 3 is on).
3. ``share_subcomponents``: inside a block the second half-step feed-forward is the first one,
   and the attention's key projection is its query projection.
4. ``rank`` > 0: every block Dense is ``W = U V`` of that rank; ``share_factors`` makes U one
   variable per projection kind (``ffn_up``, ``attn_query`` ...) for the whole model.

The plan is applied when ``tfkws.models.conformer`` builds the graph (sharing = reusing layer
objects). ``param_report`` counts analytically; tests check it against the built Keras model.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from tfkws.errors import TfkwsError
from tfkws.layers.low_rank_dense import low_rank_params

MODULE_KINDS = ("ffn", "attn", "conv")
LEVELS = ("repeat", "modules", "subcomponents", "low_rank")


def parse_modules(value: str | Sequence[str]) -> tuple[str, ...]:
    """``"ffn,conv"``, ``"ffn+conv"`` (for ``--params key=value,...``) or ``["ffn", "conv"]`` ->
    ``("ffn", "conv")``, checked, in canonical order."""
    items = value.replace("+", ",").split(",") if isinstance(value, str) else list(value)
    names = {str(s).strip() for s in items if str(s).strip()}
    unknown = sorted(names - set(MODULE_KINDS))
    if unknown:
        raise TfkwsError(
            f"conformer share_modules: unknown module(s) {', '.join(unknown)}; "
            f"choose from {', '.join(MODULE_KINDS)}"
        )
    return tuple(k for k in MODULE_KINDS if k in names)


@dataclasses.dataclass(frozen=True)
class SharingPlan:
    """Per level, what is shared (module doc). The default shares nothing, at full rank."""

    repeat: int = 1
    share_modules: tuple[str, ...] = ()
    share_subcomponents: bool = False
    rank: int = 0
    share_factors: bool = False

    def check(self, depth: int) -> SharingPlan:
        """``self`` if it fits a ``depth``-layer conformer, else a one-line TfkwsError."""
        if depth < 1 or self.repeat < 1 or depth % self.repeat:
            raise TfkwsError(
                f"conformer: repeat {self.repeat} must be >= 1 and divide depth {depth}"
            )
        if self.rank < 0:
            raise TfkwsError(f"conformer: rank must be >= 0 (0 = full rank), got {self.rank}")
        if self.share_factors and self.rank == 0:
            raise TfkwsError("conformer: share_factors needs a low rank (rank > 0)")
        parse_modules(self.share_modules)
        return self

    def unique_blocks(self, depth: int) -> int:
        return depth // self.repeat

    def block_of(self, layer: int) -> int:
        """Index of the unique block that conformer layer ``layer`` applies (level 1)."""
        return layer // self.repeat

    def describe(self, depth: int) -> dict[str, str]:
        """Per level, in words, what is shared with what."""
        b = self.unique_blocks(depth)
        mods = ", ".join(self.share_modules)
        return {
            "repeat": (
                f"{b} unique blocks, each applied {self.repeat} times in a row"
                if self.repeat > 1
                else "off"
            ),
            "modules": f"one {mods} module for all {b} blocks" if mods else "off",
            "subcomponents": (
                "ffn2 = ffn1 in each block; attention key projection = query projection"
                if self.share_subcomponents
                else "off"
            ),
            "low_rank": (
                f"rank {self.rank}"
                + (
                    "; one U factor per projection kind for all blocks"
                    if self.share_factors
                    else ""
                )
                if self.rank
                else "off"
            ),
        }

    def up_to(self, level: str) -> SharingPlan:
        """This plan with only the levels up to and including ``level`` (``"none"``: none)."""
        n = 0 if level == "none" else LEVELS.index(level) + 1
        return SharingPlan(
            repeat=self.repeat if n >= 1 else 1,
            share_modules=self.share_modules if n >= 2 else (),
            share_subcomponents=self.share_subcomponents if n >= 3 else False,
            rank=self.rank if n >= 4 else 0,
            share_factors=self.share_factors if n >= 4 else False,
        )


@dataclasses.dataclass(frozen=True)
class ConformerShape:
    """The sizes that fix a conformer classifier's parameter count."""

    input_shape: tuple[int, int]
    num_classes: int
    dim: int
    ff_dim: int
    depth: int
    kernel_size: int
    subsample_channels: int

    @property
    def tokens(self) -> int:
        return math.ceil(self.input_shape[0] / 2)

    @property
    def sub_features(self) -> int:
        return math.ceil(self.input_shape[1] / 2)


def _projections(s: ConformerShape, sub: bool) -> dict[str, tuple[str, int, int]]:
    """Block projections by name: (kind of module, n_in, n_out); key absent when it is query."""
    d, f = s.dim, s.ff_dim
    out = {
        "ffn_up": ("ffn", d, f),
        "ffn_down": ("ffn", f, d),
        "attn_query": ("attn", d, d),
        "attn_key": ("attn", d, d),
        "attn_value": ("attn", d, d),
        "attn_output": ("attn", d, d),
        "conv_pw1": ("conv", d, 2 * d),
        "conv_pw2": ("conv", d, d),
    }
    if sub:
        del out["attn_key"]
    return out


def _count(s: ConformerShape, plan: SharingPlan, applied: bool) -> int:
    """Unique weights of the model under ``plan``; ``applied``: weights x times applied."""
    d, r = s.dim, plan.rank
    ln = 2 * d
    sub = plan.share_subcomponents
    if applied:  # every application counts: depth blocks, two ffn calls each
        blocks, ffn, attn, conv = s.depth, 2 * s.depth, s.depth, s.depth
    else:
        blocks = plan.unique_blocks(s.depth)
        per_block = {k: (1 if k in plan.share_modules else blocks) for k in MODULE_KINDS}
        ffn, attn, conv = per_block["ffn"] * (1 if sub else 2), per_block["attn"], per_block["conv"]
    modules = {"ffn": ffn, "attn": attn, "conv": conv}
    total = blocks * ln + ffn * ln + attn * ln + conv * (ln + s.kernel_size * d + 4 * d)
    for _, (kind, n_in, n_out) in _projections(s, sub).items():
        n = modules[kind]
        if plan.share_factors:  # own V and bias per module; U once (or once per application)
            total += n * (r * n_out + n_out) + (n if applied else 1) * n_in * r
        else:
            total += n * low_rank_params(n_in, n_out, r)
    c = s.subsample_channels
    front = 9 * c + c + s.sub_features * c * d + d + s.tokens * d
    return total + front + d * s.num_classes + s.num_classes


def param_report(s: ConformerShape, plan: SharingPlan) -> dict[str, Any]:
    """Unique and applied ("used") weights, and the unique count after each level in turn."""
    levels = {"none": _count(s, plan.up_to("none"), False)}
    for level in LEVELS:
        levels[level] = _count(s, plan.up_to(level), False)
    return {
        "unique": levels[LEVELS[-1]],
        "used": _count(s, plan, True),
        "unique_after_level": levels,
        "sharing": plan.describe(s.depth),
    }
