"""Every built-in model, by name: look-up, parameter defaults and building.

Importing the model files registers them (``tfkws.models.registry.register_model``); callers
build models through this module so the whole catalogue is loaded. Add new model modules to the
imports below.
"""

from __future__ import annotations

from typing import Any

import tfkws.models.bc_resnet  # noqa: F401
import tfkws.models.conformer  # noqa: F401
import tfkws.models.ds_cnn  # noqa: F401
import tfkws.models.repcnn  # noqa: F401
import tfkws.models.slimmable_ds_cnn  # noqa: F401
import tfkws.models.slimmable_kwt  # noqa: F401
import tfkws.models.slimmable_tc_cnn  # noqa: F401
from tfkws.errors import TfkwsError
from tfkws.models.registry import ModelSpec, registered


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(registered())


def get_spec(name: str) -> ModelSpec:
    """The registered spec of ``name``; an unknown name is a one-line error listing them all."""
    models = registered()
    if name not in models:
        raise TfkwsError(f"unknown model {name!r}; registered: {', '.join(sorted(models))}")
    return models[name]


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
