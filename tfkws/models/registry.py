"""Model registry: name -> builder + default params, as in kws_streaming.

A builder takes ``input_shape`` (frames, features), ``num_classes`` and keyword params and
returns an un-compiled ``tf_keras.Model`` whose input is the float feature matrix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from tfkws.errors import TfkwsError


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


def _load_builtin_models() -> None:
    # Importing the package registers every model file it lists.
    import tfkws.models.zoo  # noqa: F401


def list_models() -> list[str]:
    _load_builtin_models()
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    _load_builtin_models()
    if name not in _REGISTRY:
        raise TfkwsError(f"unknown model {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def resolve_params(name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults of ``name`` updated by ``params``; an unknown param is a clear error."""
    spec = get_spec(name)
    params = dict(params or {})
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        raise TfkwsError(
            f"model {name!r} has no parameter(s) {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(spec.defaults))}"
        )
    return {**spec.defaults, **params}


def build_model(
    name: str,
    input_shape: tuple[int, int],
    num_classes: int,
    params: dict[str, Any] | None = None,
    batch_size: int | None = None,
) -> Any:
    """Build registered model ``name``; ``batch_size=1`` gives the static-batch export graph."""
    spec = get_spec(name)
    return spec.builder(
        input_shape=tuple(input_shape),
        num_classes=num_classes,
        batch_size=batch_size,
        **resolve_params(name, params),
    )
