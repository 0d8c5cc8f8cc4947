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
# name -> report(input_shape, num_classes, **params) -> dict, for models whose parameter count
# needs more than one number (the weight-shared conformer: unique vs applied weights per level).
_REPORTS: dict[str, Callable[..., dict[str, Any]]] = {}
_REPEATS: dict[str, Callable[..., list[tuple[str, str, int]]]] = {}


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


def register_report(
    name: str, report: Callable[..., dict[str, Any]]
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator (above ``register_model``): ``report(input_shape, num_classes, **params)``
    describes the parameters of model ``name`` without building it."""

    def wrap(builder: Callable[..., Any]) -> Callable[..., Any]:
        _REPORTS[name] = report
        return builder

    return wrap


def register_repeats(
    name: str, spans: Callable[..., list[tuple[str, str, int]]]
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator (above ``register_model``): ``spans(**params)`` lists the blocks model ``name``
    applies several times in a row, as ``(after, last, times)`` layer names
    (``tfkws.conversion.repeat_loop.RepeatSpan``): the export stores each as one loop."""

    def wrap(builder: Callable[..., Any]) -> Callable[..., Any]:
        _REPEATS[name] = spans
        return builder

    return wrap


def repeat_spans(name: str, params: dict[str, Any]) -> list[tuple[str, str, int]]:
    """The registered repeated blocks of model ``name`` with these params ([] if none)."""
    spans = _REPEATS.get(name)
    return [] if spans is None else list(spans(**params))


def has_param_report(name: str) -> bool:
    return name in _REPORTS


def param_report(
    name: str, input_shape: tuple[int, int], num_classes: int, params: dict[str, Any]
) -> dict[str, Any] | None:
    """The registered parameter report of ``name`` for these params, or None if it has none."""
    report = _REPORTS.get(name)
    return None if report is None else report(tuple(input_shape), int(num_classes), **params)


def registered() -> dict[str, ModelSpec]:
    """The models registered so far (a copy); ``tfkws.models.catalog`` is the full list."""
    return dict(_REGISTRY)
