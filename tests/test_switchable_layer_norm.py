"""SwitchableLayerNorm: statistics over the live channels only, gamma/beta per width."""

from __future__ import annotations

import numpy as np
import tf_keras as keras
from slimmable_helpers import WIDTHS, check_config_round_trip, check_extraction

from tfkws.layers.slimmable_base import active_units, set_width_index
from tfkws.layers.switchable_layer_norm import SwitchableLayerNorm


def test_extracted_ln_equals_supernet_ln_at_every_width() -> None:
    layer = SwitchableLayerNorm(widths=WIDTHS, divisor=4)
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(2, 5, 16)).astype(np.float32)
    live = lambda i: active_units(16, WIDTHS[i], 4)  # noqa: E731
    check_extraction(layer, x, live, live, keras.layers.LayerNormalization)


def test_zeroed_channels_do_not_bias_the_statistics() -> None:
    layer = SwitchableLayerNorm(widths=WIDTHS)
    x = np.random.default_rng(1).normal(5.0, 2.0, size=(3, 8)).astype(np.float32)
    x[:, 2:] = 0.0
    layer(x)
    set_width_index(layer, 0)  # 2 live channels
    y = layer(x).numpy()
    live = x[:, :2]
    want = (live - live.mean(-1, keepdims=True)) / np.sqrt(live.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y[:, :2], want, atol=1e-5)
    assert not y[:, 2:].any()


def test_each_width_has_its_own_affine_parameters() -> None:
    layer = SwitchableLayerNorm(widths=WIDTHS)
    x = np.random.default_rng(2).normal(size=(2, 8)).astype(np.float32)
    layer(x)
    assert layer.gamma.shape == (4, 8) and layer.beta.shape == (4, 8)
    layer.beta.assign(np.arange(4, dtype=np.float32)[:, None] * np.ones((1, 8), np.float32))
    set_width_index(layer, 3)
    full = layer(x).numpy()
    set_width_index(layer, 2)
    three_quarters = layer(x).numpy()
    assert np.allclose(full.mean(-1), 3.0) and np.allclose(three_quarters[:, :6].mean(-1), 2.0)


def test_config_round_trip() -> None:
    x = np.random.default_rng(3).normal(size=(2, 3, 8)).astype(np.float32)
    check_config_round_trip(SwitchableLayerNorm(epsilon=1e-3, widths=WIDTHS, divisor=2), x, 1)
