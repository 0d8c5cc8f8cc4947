"""SlimmableDense: each width cut out as a plain Dense equals the supernet layer at that width."""

from __future__ import annotations

import numpy as np
import pytest
import tf_keras as keras
from slimmable_helpers import WIDTHS, check_config_round_trip, check_extraction

from tfkws.layers.slimmable_base import active_units
from tfkws.layers.slimmable_dense import SlimmableDense


@pytest.mark.parametrize(
    "kwargs, x_shape",
    [
        (dict(units=8), (3, 12)),
        (dict(units=16, activation="relu", divisor=4), (2, 5, 12)),  # per-token projection
        (dict(units=5, slim_output=False), (3, 12)),  # classifier head
    ],
)
def test_extracted_dense_equals_supernet_dense(kwargs: dict, x_shape: tuple) -> None:
    layer = SlimmableDense(widths=WIDTHS, **kwargs)
    x = np.random.default_rng(0).normal(size=x_shape).astype(np.float32)
    d = layer.divisor
    check_extraction(
        layer,
        x,
        live_in=lambda i: active_units(12, WIDTHS[i], d),
        live_out=lambda i: (
            active_units(layer.units, WIDTHS[i], d) if layer.slim_output else layer.units
        ),
        plain_type=keras.layers.Dense,
    )


def test_macs_count_every_token() -> None:
    layer = SlimmableDense(8, widths=WIDTHS)
    layer.build((None, 5, 12))
    assert layer.macs(3) == 5 * 12 * 8 and layer.macs(1) == 5 * 6 * 4


def test_config_round_trip() -> None:
    layer = SlimmableDense(6, activation="relu", slim_input=False, widths=WIDTHS, divisor=2)
    x = np.random.default_rng(1).normal(size=(2, 7)).astype(np.float32)
    check_config_round_trip(layer, x, index=0)
