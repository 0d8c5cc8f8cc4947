"""SlimmableDepthwiseConv2D: each width cut out equals the supernet layer at that width."""

from __future__ import annotations

import numpy as np
import pytest
import tf_keras as keras
from slimmable_helpers import WIDTHS, check_config_round_trip, check_extraction

from tfkws.errors import ModelError
from tfkws.layers.slimmable_base import active_units
from tfkws.layers.slimmable_depthwise_conv import SlimmableDepthwiseConv2D


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel_size=3),
        dict(kernel_size=(3, 5), strides=2, use_bias=True, divisor=4),
        dict(kernel_size=3, dilation_rate=(2, 1)),
        dict(kernel_size=3, dilation_rate=(3, 1), padding="valid"),
    ],
)
def test_extracted_depthwise_equals_supernet_depthwise(kwargs: dict) -> None:
    layer = SlimmableDepthwiseConv2D(widths=WIDTHS, **kwargs)
    x = np.random.default_rng(0).normal(size=(2, 9, 8, 12)).astype(np.float32)
    live = lambda i: active_units(12, WIDTHS[i], layer.divisor)  # noqa: E731
    check_extraction(layer, x, live, live, keras.layers.DepthwiseConv2D)


def test_macs_and_config_round_trip() -> None:
    layer = SlimmableDepthwiseConv2D(3, strides=2, widths=WIDTHS)
    layer.build((None, 8, 6, 8))
    assert layer.macs(3) == 4 * 3 * 9 * 8 and layer.macs(0) == 4 * 3 * 9 * 2
    x = np.random.default_rng(1).normal(size=(1, 8, 6, 8)).astype(np.float32)
    check_config_round_trip(SlimmableDepthwiseConv2D(3, use_bias=True, widths=WIDTHS), x, 2)


def test_unequal_strides_are_a_clear_error() -> None:
    with pytest.raises(ModelError, match="equal"):
        SlimmableDepthwiseConv2D(3, strides=(2, 1))


def test_dilation_with_stride_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="dilation"):
        SlimmableDepthwiseConv2D(3, strides=2, dilation_rate=(2, 1))


def test_dilated_config_round_trip() -> None:
    x = np.random.default_rng(1).normal(size=(1, 8, 6, 8)).astype(np.float32)
    layer = SlimmableDepthwiseConv2D(3, dilation_rate=(2, 1), widths=WIDTHS)
    check_config_round_trip(layer, x, 2)
