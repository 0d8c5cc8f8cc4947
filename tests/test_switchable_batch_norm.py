"""SwitchableBatchNorm: private statistics and affine parameters per width; exact extraction."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras
from random_weights import randomize
from slimmable_helpers import WIDTHS, check_config_round_trip, check_extraction

from tfkws.layers.slimmable_base import active_units, set_width_index
from tfkws.layers.switchable_batch_norm import SwitchableBatchNorm


def test_extracted_bn_equals_supernet_bn_at_every_width() -> None:
    layer = SwitchableBatchNorm(widths=WIDTHS, divisor=2)
    x = np.random.default_rng(0).normal(1.0, 2.0, size=(2, 5, 3, 10)).astype(np.float32)
    live = lambda i: active_units(10, WIDTHS[i], 2)  # noqa: E731
    check_extraction(layer, x, live, live, keras.layers.BatchNormalization)


def test_training_at_one_width_leaves_the_other_widths_alone() -> None:
    layer = SwitchableBatchNorm(momentum=0.5, widths=WIDTHS)
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(8, 4, 8)).astype(np.float32)
    layer(x)
    randomize(layer, 5)
    before = {w.name: w.numpy().copy() for w in layer.weights}
    set_width_index(layer, 1)
    opt = keras.optimizers.SGD(0.1)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=True) ** 2 * tf.range(8, dtype=tf.float32))
    grads = tape.gradient(loss, layer.trainable_weights)
    opt.apply_gradients(zip(grads, layer.trainable_weights, strict=True))
    for w in layer.weights:
        old, new = before[w.name], w.numpy()
        changed = [i for i in range(len(WIDTHS)) if not np.array_equal(old[i], new[i])]
        assert changed == [1], f"{w.name}: rows {changed} changed"
    # the trained row moved towards the batch statistics of the live channels
    live = active_units(8, WIDTHS[1])
    batch_mean = x[..., :live].mean(axis=(0, 1))
    mm = layer.moving_mean.numpy()[1, :live]
    np.testing.assert_allclose(
        mm, 0.5 * before[layer.moving_mean.name][1, :live] + 0.5 * batch_mean, rtol=1e-5, atol=1e-5
    )


def test_training_mode_uses_batch_statistics_of_live_channels() -> None:
    layer = SwitchableBatchNorm(widths=WIDTHS)
    x = np.random.default_rng(2).normal(3.0, 2.0, size=(16, 8)).astype(np.float32)
    layer(x)
    set_width_index(layer, 1)
    y = layer(x, training=True).numpy()
    np.testing.assert_allclose(y[:, :4].mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(y[:, :4].std(0), 1.0, atol=1e-2)
    assert not y[:, 4:].any()


def test_config_round_trip() -> None:
    x = np.random.default_rng(3).normal(size=(2, 3, 6)).astype(np.float32)
    layer = SwitchableBatchNorm(momentum=0.8, epsilon=1e-4, widths=WIDTHS, divisor=2)
    check_config_round_trip(layer, x, index=2)
