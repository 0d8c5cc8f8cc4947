"""``PinnedAffine``: SubSpectralNorm's inference map with fixed int8 ranges, serialisable."""

from __future__ import annotations

import numpy as np
import tf_keras as keras

from tfkws.layers.pinned_affine import PinnedAffine
from tfkws.layers.sub_spectral_norm import SubSpectralNorm


def _trained_ssn(rng: np.random.Generator) -> tuple[SubSpectralNorm, np.ndarray]:
    x = rng.normal(size=(4, 6, 8, 3)).astype(np.float32)
    ssn = SubSpectralNorm(sub_bands=2)
    ssn(x)
    gamma, beta, mean, var = (w.shape for w in ssn.get_weights())
    ssn.set_weights(
        [
            rng.uniform(0.5, 1.5, gamma),
            rng.normal(size=beta),
            rng.normal(size=mean),
            rng.uniform(0.5, 2.0, var),
        ]
    )
    return ssn, x


def test_equals_sub_spectral_norm_at_inference_within_its_int8_steps() -> None:
    ssn, x = _trained_ssn(np.random.default_rng(0))
    scale, offset = ssn.inference_affine()
    want = ssn(x, training=False).numpy()
    product = x * scale
    layer = PinnedAffine(scale, offset, (float(product.min()), float(product.max())))
    got = layer(x).numpy()
    # Three fake-quantised tensors (scale, offset, product), each at most half a step off.
    steps = sum(
        (max(v.max(), 0) - min(v.min(), 0)) / 255 / 2 * k
        for v, k in ((scale, np.abs(x).max()), (offset, 1.0), (product, 1.0))
    )
    assert np.max(np.abs(got - want)) <= steps + 1e-6
    assert np.max(np.abs(got - want)) > 0  # it does quantise


def test_product_outside_its_pinned_range_is_clipped() -> None:
    x = np.full((1, 1, 2, 1), 10.0, np.float32)
    layer = PinnedAffine(np.ones((2, 1)), np.zeros((2, 1)), (-1.0, 1.0))
    assert np.allclose(layer(x).numpy(), 1.0, atol=1e-2)


def test_round_trips_through_its_config() -> None:
    rng = np.random.default_rng(1)
    layer = PinnedAffine(rng.normal(size=(8, 3)), rng.normal(size=(8, 3)), (-2.0, 3.0))
    x = rng.normal(size=(2, 5, 8, 3)).astype(np.float32)
    inputs = keras.Input((5, 8, 3))
    model = keras.Model(inputs, layer(inputs))
    clone = keras.Model.from_config(model.get_config())
    assert np.array_equal(clone(x).numpy(), model(x).numpy())
