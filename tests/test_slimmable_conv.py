"""SlimmableConv2D: each width cut out as a plain Conv2D equals the supernet layer at that width."""

from __future__ import annotations

import numpy as np
import pytest
import tf_keras as keras
from slimmable_helpers import WIDTHS, check_config_round_trip, check_extraction

from tfkws.errors import ModelError
from tfkws.layers.slimmable_base import active_units, set_width_index
from tfkws.layers.slimmable_conv import SlimmableConv2D


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(filters=8, kernel_size=3),
        dict(filters=12, kernel_size=(5, 2), strides=(2, 1), use_bias=True, divisor=4),
        dict(filters=8, kernel_size=1, padding="valid", strides=2),
    ],
)
def test_extracted_conv_equals_supernet_conv(kwargs: dict) -> None:
    layer = SlimmableConv2D(widths=WIDTHS, **kwargs)
    x = np.random.default_rng(0).normal(size=(2, 9, 7, 8)).astype(np.float32)
    d = layer.divisor
    check_extraction(
        layer,
        x,
        live_in=lambda i: active_units(8, WIDTHS[i], d),
        live_out=lambda i: active_units(layer.filters, WIDTHS[i], d),
        plain_type=keras.layers.Conv2D,
    )


def test_fixed_input_and_output_ignore_the_width() -> None:
    layer = SlimmableConv2D(6, 3, widths=WIDTHS, slim_input=False, slim_output=False)
    x = np.random.default_rng(1).normal(size=(1, 5, 5, 3)).astype(np.float32)
    layer(x)
    set_width_index(layer, 0)
    assert np.count_nonzero(layer(x).numpy()[..., 5]) > 0
    assert layer.live_io(0) == (3, 6)


def test_macs_follow_live_channels() -> None:
    layer = SlimmableConv2D(8, (3, 1), strides=(2, 1), widths=WIDTHS)
    layer.build((None, 10, 4, 8))
    assert layer.macs(3) == 5 * 4 * 3 * 8 * 8
    assert layer.macs(0) == 5 * 4 * 3 * 2 * 2


def test_config_round_trip() -> None:
    layer = SlimmableConv2D(8, (3, 2), strides=(2, 1), use_bias=True, widths=WIDTHS, divisor=2)
    x = np.random.default_rng(2).normal(size=(1, 6, 5, 4)).astype(np.float32)
    check_config_round_trip(layer, x, index=1)


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(ModelError, match="filters"):
        SlimmableConv2D(0, 3)
    with pytest.raises(ModelError, match="padding"):
        SlimmableConv2D(4, 3, padding="causal")
    with pytest.raises(ModelError, match="channels"):
        SlimmableConv2D(4, 3).build((None, 5, 5))
