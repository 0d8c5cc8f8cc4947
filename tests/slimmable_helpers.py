"""Helpers shared by the slimmable tests (``test_slimmable_*``, ``test_switchable_*``).

A layer cut at width W must equal the supernet layer run at W (``check_extraction``); tiny
supernets with non-trivial statistics (``random_supernet``) for whole-model checks.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tf_keras as keras
from random_weights import randomize

from tfkws.layers.slimmable_base import set_width_index
from tfkws.models.catalog import build_model

WIDTHS = (0.25, 0.5, 0.75, 1.0)


def masked(x: np.ndarray, live: int) -> np.ndarray:
    """``x`` with channels from ``live`` on zeroed (what a slimmable producer outputs)."""
    y = x.copy()
    y[..., live:] = 0.0
    return y


def check_extraction(
    layer: keras.layers.Layer,
    x: np.ndarray,
    live_in: Callable[[int], int],
    live_out: Callable[[int], int],
    plain_type: type,
) -> None:
    """At every width: extracted plain layer on the live inputs == supernet layer's live outputs,
    the supernet layer's inactive outputs are zero, and the plain layer has the right type."""
    layer(x)  # build
    randomize(layer, 7)
    for i in range(len(layer.widths)):
        set_width_index(layer, i)
        cin, cout = live_in(i), live_out(i)
        want = layer(masked(x, cin), training=False).numpy()
        plain = layer.extract(i)
        got = plain(tf.constant(x[..., :cin]), training=False).numpy()
        assert got.shape == (*want.shape[:-1], cout)
        assert np.abs(got - want[..., :cout]).max() <= 1e-5, f"width index {i}"
        assert not want[..., cout:].any(), "inactive channels must be zero"
        inner = getattr(plain, "layer", None)
        if inner is not None:
            assert type(inner) is plain_type


def check_config_round_trip(layer: keras.layers.Layer, x: np.ndarray, index: int) -> None:
    """from_config(get_config()) + the same weights gives the same layer at width ``index``."""
    layer(x)
    randomize(layer, 3)
    clone = type(layer).from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    set_width_index(layer, index)
    set_width_index(clone, index)
    np.testing.assert_array_equal(clone(x, training=False), layer(x, training=False))
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is type(layer) and restored.get_config() == layer.get_config()


TINY = {
    "slimmable_ds_cnn": dict(channels=16, num_blocks=2, block_stride=2),
    "slimmable_kwt": dict(embed_dim=16, num_heads=8, mlp_dim=32, depth=2, patch_frames=2),
    "slimmable_tc_cnn": dict(channels=(16, 24), strides=(2, 1), kernel_size=3),
}
INPUT = (13, 10)  # tiny (frames, features)


def random_supernet(name: str, seed: int = 0, **overrides: object) -> keras.Model:
    """Initial kernels (outputs of order 1), random per-width BN/LN parameters and statistics,
    random biases and tokens; seeded throughout, so a test sees the same model whichever tests ran
    before it in the process."""
    keras.utils.set_random_seed(seed)
    model = build_model(name, INPUT, 3, {**TINY[name], **overrides})
    rng = np.random.default_rng(seed)
    for w in model.weights:
        name_, shape = w.name, tuple(w.shape)
        if "moving_variance" in name_:
            value = rng.uniform(0.3, 2.0, shape)
        elif "moving_mean" in name_:
            value = rng.normal(0.0, 0.5, shape)
        elif "gamma" in name_:
            value = rng.uniform(0.5, 1.5, shape)
        elif "kernel" not in name_:  # beta, biases, class token, positions
            value = rng.normal(0.0, 0.3, shape)
        else:
            continue
        w.assign(value.astype(np.float32))
    return model
