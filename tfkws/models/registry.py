"""Model registry: name -> builder + default params, as in kws_streaming.

A builder takes ``input_shape`` (frames, features), ``num_classes`` and keyword params and
returns an un-compiled ``tf_keras.Model`` whose input is the float feature matrix.

Model files import ``register_model`` from here; this module imports no model, so the arrows
run one way. Look models up through ``tfkws.models.catalog``, which imports every model file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., Any]
    defaults: dict[str, Any]
    doc: str


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str, **defaults: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``builder(input_shape, num_classes, **params)`` under ``name``."""

    def wrap(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        doc = (builder.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = ModelSpec(name, builder, dict(defaults), doc[0] if doc else "")
        return builder

    return wrap


def registered() -> dict[str, ModelSpec]:
    """The models registered so far (a copy); ``tfkws.models.catalog`` is the full list."""
    return dict(_REGISTRY)
