"""Slimmable supernets in the registry: widths, size bounds, exact extraction of every width."""

from __future__ import annotations

import numpy as np
import pytest
import tf_keras as keras
from slimmable_helpers import INPUT, TINY, random_supernet

from tfkws.errors import ModelError, TfkwsError
from tfkws.folding.slim_width import extract_width
from tfkws.layers.slimmable_base import (
    DEFAULT_WIDTHS,
    SlimmableLayer,
    model_widths,
    relative_costs,
    set_width,
)
from tfkws.models.catalog import build_model, get_spec, list_models


def test_registered_with_eight_widths_from_quarter_to_full() -> None:
    assert {"slimmable_ds_cnn", "slimmable_kwt", "slimmable_tc_cnn"} <= set(list_models())
    for name in TINY:
        widths = tuple(get_spec(name).defaults["widths"])
        assert widths == DEFAULT_WIDTHS and len(widths) >= 8
        assert widths[0] == 0.25 and widths[-1] == 1.0


@pytest.mark.parametrize("name", sorted(TINY))
def test_default_supernet_sizes(name: str) -> None:
    model = build_model(name, (49, 40), 12)
    assert model_widths(model) == DEFAULT_WIDTHS
    assert model.count_params() < 250_000  # supernet incl. per-width BN/LN parameters
    full = extract_width(model, 1.0).count_params()
    small = extract_width(model, 0.25).count_params()
    assert small < full < 250_000
    if name != "slimmable_kwt":
        assert small < 20_000
    costs = relative_costs(model)
    assert costs[-1] == 1.0 and all(a < b for a, b in zip(costs, costs[1:], strict=False))


@pytest.mark.parametrize(
    "name, overrides",
    [*((name, {}) for name in sorted(TINY)), ("slimmable_ds_cnn", {"time_dilation": [1, 2]})],
)
def test_every_width_extracts_exactly(name: str, overrides: dict) -> None:
    model = random_supernet(name, **overrides)
    x = np.random.default_rng(1).normal(size=(3, *INPUT)).astype(np.float32)
    for width in model_widths(model):
        set_width(model, width)
        want = model(x, training=False).numpy()
        plain = extract_width(model, width)
        assert not any(isinstance(la, SlimmableLayer) for la in plain.layers)
        got = plain(x, training=False).numpy()
        assert np.abs(got - want).max() <= 1e-5, f"{name} width {width}"
    # the supernet itself is untouched by extraction, and widths really differ
    set_width(model, 0.25)
    small = model(x, training=False).numpy()
    set_width(model, 1.0)
    assert not np.allclose(small, model(x, training=False).numpy())


def test_unknown_width_and_bad_params_are_clear_errors() -> None:
    model = build_model("slimmable_ds_cnn", INPUT, 3, TINY["slimmable_ds_cnn"])
    with pytest.raises(ModelError, match="not one of"):
        extract_width(model, 0.5)
    with pytest.raises(TfkwsError, match="multiple"):
        build_model("slimmable_kwt", INPUT, 3, dict(embed_dim=10, num_heads=4))
    with pytest.raises(ModelError, match="no slimmable"):
        inputs = keras.Input(INPUT)
        extract_width(keras.Model(inputs, keras.layers.Flatten()(inputs)), 1.0)


@pytest.mark.parametrize("name", ["slimmable_ds_cnn", "slimmable_tc_cnn"])
@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(dropout=1.0), "dropout must be in"),
        (dict(sandwich_random_widths=-1), "sandwich_random_widths must be >= 0"),
    ],
)
def test_cnn_supernets_refuse_bad_head_params_naming_the_model(
    name: str, bad: dict, match: str
) -> None:
    with pytest.raises(TfkwsError, match=f"{name} {match}"):
        build_model(name, INPUT, 3, {**TINY[name], **bad})
