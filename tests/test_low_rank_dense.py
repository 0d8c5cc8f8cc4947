"""``LowRankDense`` computes x U V + b, serialises, and a ``FactorBank`` shares one U."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfkws.layers.low_rank_dense import FactorBank, LowRankDense, low_rank_params, projection


def test_low_rank_dense_is_x_u_v_plus_bias_and_round_trips() -> None:
    layer = LowRankDense(6, 2, activation="relu", name="lr")
    x = np.random.default_rng(0).normal(size=(3, 5, 4)).astype(np.float32)
    layer(x)
    u, v = layer.u_kernel.numpy(), layer.v_kernel.numpy()
    layer.bias.assign(np.arange(6, dtype=np.float32) - 3)
    y = layer(x).numpy()
    np.testing.assert_allclose(y, np.maximum(x @ u @ v + layer.bias.numpy(), 0), atol=1e-5)
    np.testing.assert_allclose(layer.full_kernel(), u @ v, atol=1e-6)
    assert layer.count_params() == low_rank_params(4, 6, 2) == 2 * (4 + 6) + 6
    copy = LowRankDense.from_config(layer.get_config())
    copy(x)
    copy.set_weights(layer.get_weights())
    np.testing.assert_array_equal(copy(x).numpy(), y)


def test_factor_bank_shares_u_and_both_users_train_it() -> None:
    bank = FactorBank(3)
    a = projection(5, "a", rank=3, bank=bank, kind="k")
    b = projection(7, "b", rank=3, bank=bank, kind="k")
    inp = keras.Input((4,))
    model = keras.Model(inp, [a(inp), b(inp)])
    u = bank.factor("k").kernel
    assert sum(w is u for w in model.trainable_weights) == 1
    assert model.count_params() == 4 * 3 + (3 * 5 + 5) + (3 * 7 + 7)
    x = tf.constant(np.random.default_rng(1).normal(size=(2, 4)), tf.float32)

    def grad(which: list[int]) -> np.ndarray:
        with tf.GradientTape() as tape:
            outs = model(x)
            loss = sum(tf.reduce_sum(outs[i] ** 2) for i in which)
        return tape.gradient(loss, u).numpy()

    ga, gb, both = grad([0]), grad([1]), grad([0, 1])
    assert np.abs(ga).max() > 0 and np.abs(gb).max() > 0  # each user reaches U
    np.testing.assert_allclose(both, ga + gb, rtol=1e-5, atol=1e-6)
