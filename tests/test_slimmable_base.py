"""Slimmable-layer machinery: width rounding, width lists, the width switch."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from slimmable_helpers import WIDTHS

from tfkws.errors import ModelError
from tfkws.layers.slimmable_base import (
    active_units,
    check_widths,
    model_widths,
    set_width,
    set_width_index,
    slimmable_layers,
    width_index,
)
from tfkws.layers.slimmable_dense import SlimmableDense


def test_active_units_rounds_to_divisor_within_bounds() -> None:
    assert active_units(172, 0.25, 4) == 44
    assert active_units(64, 0.35, 4) == 24  # 5.6 heads of 4 -> 6 heads
    assert active_units(64, 1.0, 4) == 64
    assert active_units(10, 0.01, 4) == 4  # never below one divisor
    assert active_units(3, 0.1, 4) == 3  # never above the total
    assert [active_units(16, w) for w in WIDTHS] == [4, 8, 12, 16]


@pytest.mark.parametrize(
    "widths", [(), (0.5, 0.25, 1.0), (0.25, 0.5), (0.0, 1.0), (0.5, 0.5, 1.0), (0.5, 1.2)]
)
def test_bad_width_lists_are_clear_errors(widths: tuple) -> None:
    with pytest.raises(ModelError, match="width"):
        check_widths(widths)


def test_width_index_lookup() -> None:
    assert width_index(WIDTHS, 0.75) == 2
    with pytest.raises(ModelError, match="not one of"):
        width_index(WIDTHS, 0.6)


def test_set_width_switches_every_layer_and_is_not_a_weight() -> None:
    inputs = keras.Input((6,))
    h = SlimmableDense(8, widths=WIDTHS, slim_input=False, name="a")(inputs)
    out = SlimmableDense(3, widths=WIDTHS, slim_output=False, name="b")(h)
    model = keras.Model(inputs, out)
    assert len(slimmable_layers(model)) == 2 and model_widths(model) == WIDTHS
    n_params = model.count_params()
    assert n_params == 6 * 8 + 8 + 8 * 3 + 3  # the width index is run-time state, not a weight
    assert all(layer.index == len(WIDTHS) - 1 for layer in slimmable_layers(model))
    assert set_width(model, 0.5) == 1
    assert all(layer.index == 1 for layer in slimmable_layers(model))
    hidden = keras.Model(inputs, h)(np.ones((1, 6), np.float32)).numpy()
    assert np.count_nonzero(hidden[0, 4:]) == 0  # 8 * 0.5 = 4 live units


def test_width_switch_inside_one_traced_function() -> None:
    """One tf.function serves every width: the index is a variable, not a Python constant."""
    layer = SlimmableDense(8, widths=WIDTHS, slim_input=False, use_bias=False)
    x = tf.ones((1, 5))
    layer(x)
    layer.kernel.assign(tf.ones((5, 8)))

    @tf.function
    def live_units(i: tf.Tensor) -> tf.Tensor:
        set_width_index(layer, i)
        return tf.math.count_nonzero(layer(x))

    assert [int(live_units(tf.constant(i))) for i in range(4)] == [2, 4, 6, 8]
    assert live_units.experimental_get_tracing_count() == 1


def test_mismatched_widths_are_an_error() -> None:
    inputs = keras.Input((6,))
    h = SlimmableDense(8, widths=WIDTHS, slim_input=False)(inputs)
    out = SlimmableDense(3, widths=(0.5, 1.0), slim_output=False)(h)
    with pytest.raises(ModelError, match="disagree"):
        model_widths(keras.Model(inputs, out))
