"""SlimmableAttention (+ SlimmableTokens): heads and embedding slice together; exact extraction
to Keras MultiHeadAttention / ClassTokenPosition."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from slimmable_helpers import WIDTHS, check_config_round_trip, check_extraction, masked

from tfkws.errors import ModelError
from tfkws.layers.slimmable_attention import SlimmableAttention
from tfkws.layers.slimmable_base import active_units, set_width_index
from tfkws.layers.slimmable_tokens import ClassTokenPosition, SlimmableTokens


def test_extracted_attention_equals_supernet_attention_at_every_width() -> None:
    layer = SlimmableAttention(8, widths=WIDTHS, divisor=2)  # 16 channels, 8 heads of 2
    x = np.random.default_rng(0).normal(size=(2, 6, 16)).astype(np.float32)
    live = lambda i: active_units(16, WIDTHS[i], 2)  # noqa: E731
    check_extraction(layer, x, live, live, keras.layers.MultiHeadAttention)
    assert [layer.live_heads(i) for i in range(4)] == [2, 4, 6, 8]


def test_extracted_layer_is_keras_mha_with_the_live_heads() -> None:
    layer = SlimmableAttention(4, widths=WIDTHS, divisor=3)
    x = np.random.default_rng(1).normal(size=(1, 5, 12)).astype(np.float32)
    layer(x)
    inputs = keras.Input((5, 6))
    model = keras.Model(inputs, layer.extract(1)(inputs))
    mha = [la for la in model.layers if isinstance(la, keras.layers.MultiHeadAttention)]
    assert len(mha) == 1 and mha[0].get_config()["num_heads"] == 2
    assert mha[0].get_config()["key_dim"] == 3
    set_width_index(layer, 1)
    np.testing.assert_allclose(
        model(x[..., :6]).numpy(), layer(masked(x, 6)).numpy()[..., :6], atol=1e-5
    )


def test_macs_and_config_round_trip() -> None:
    layer = SlimmableAttention(4, widths=WIDTHS, divisor=2)
    layer.build((None, 5, 8))
    assert layer.macs(3) == 4 * 5 * 8 * 8 + 2 * 5 * 5 * 8
    x = np.random.default_rng(2).normal(size=(1, 5, 8)).astype(np.float32)
    check_config_round_trip(SlimmableAttention(4, widths=WIDTHS, divisor=2), x, 1)


def test_divisor_must_be_the_head_size() -> None:
    with pytest.raises(ModelError, match="head size"):
        SlimmableAttention(4, widths=WIDTHS, divisor=1).build((None, 5, 8))
    with pytest.raises(ModelError, match="multiple"):
        SlimmableAttention(3, widths=WIDTHS, divisor=2).build((None, 5, 8))


def test_tokens_extract_to_class_token_position() -> None:
    layer = SlimmableTokens(widths=WIDTHS, divisor=2)
    x = np.random.default_rng(3).normal(size=(2, 4, 8)).astype(np.float32)
    live = lambda i: active_units(8, WIDTHS[i], 2)  # noqa: E731
    check_extraction(layer, x, live, live, ClassTokenPosition)
    set_width_index(layer, 3)
    y = layer(x).numpy()
    assert y.shape == (2, 5, 8)
    np.testing.assert_allclose(
        y[:, 0], np.broadcast_to(layer.cls.numpy() + layer.pos.numpy()[0], (2, 8))
    )
    check_config_round_trip(SlimmableTokens(widths=WIDTHS, divisor=2), x, 1)
    plain = ClassTokenPosition()
    assert isinstance(keras.layers.deserialize(keras.layers.serialize(plain)), ClassTokenPosition)
    assert tf.TensorShape(plain.compute_output_shape((None, 4, 8))).as_list() == [None, 5, 8]
