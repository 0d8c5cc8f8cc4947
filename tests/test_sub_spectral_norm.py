"""SubSpectralNorm: BatchNorm statistics per (frequency sub-band, channel)."""

from __future__ import annotations

import numpy as np
import pytest
import tf_keras as keras

from tfkws.errors import ModelError
from tfkws.layers.sub_spectral_norm import SubSpectralNorm


def _input(seed: int = 0, shape: tuple = (6, 7, 10, 3)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Each frequency bin gets its own offset and spread, as real spectra do.
    offsets = rng.normal(0, 5, size=(1, 1, shape[2], shape[3]))
    spreads = rng.uniform(0.5, 4, size=(1, 1, shape[2], shape[3]))
    return (rng.normal(size=shape) * spreads + offsets).astype(np.float32)


def test_training_normalises_each_sub_band_separately() -> None:
    x = _input()
    y = SubSpectralNorm(sub_bands=5, epsilon=1e-6)(x, training=True).numpy()
    grouped = y.reshape(6, 7, 5, 2, 3)  # 10 bins -> 5 bands of 2
    np.testing.assert_allclose(grouped.mean(axis=(0, 1, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(grouped.var(axis=(0, 1, 3)), 1.0, atol=1e-4)


def test_moving_statistics_track_per_band_moments() -> None:
    x = _input(1)
    ssn = SubSpectralNorm(sub_bands=2, momentum=0.0)  # momentum 0: moving = last batch
    ssn(x, training=True)
    grouped = x.reshape(6, 7, 2, 5, 3)
    np.testing.assert_allclose(ssn.moving_mean.numpy(), grouped.mean(axis=(0, 1, 3)), rtol=1e-5)
    np.testing.assert_allclose(ssn.moving_variance.numpy(), grouped.var(axis=(0, 1, 3)), rtol=1e-4)


def test_inference_uses_moving_statistics() -> None:
    x = _input(2)
    ssn = SubSpectralNorm(sub_bands=5)
    ssn(x)
    rng = np.random.default_rng(3)
    gamma, beta = rng.uniform(0.5, 2, (5, 3)), rng.normal(size=(5, 3))
    mean, var = rng.normal(size=(5, 3)), rng.uniform(0.5, 2, (5, 3))
    ssn.set_weights([gamma, beta, mean, var])
    band = np.repeat(np.arange(5), 2)  # band of each of the 10 bins
    want = (x - mean[band]) / np.sqrt(var[band] + ssn.epsilon) * gamma[band] + beta[band]
    np.testing.assert_allclose(ssn(x, training=False), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("training", [True, False])
def test_one_sub_band_is_batch_normalization(training: bool) -> None:
    x = _input(4)
    ssn, bn = SubSpectralNorm(sub_bands=1), keras.layers.BatchNormalization()
    ssn(x), bn(x)
    rng = np.random.default_rng(5)
    weights = [rng.uniform(0.5, 2, 3), rng.normal(size=3), rng.normal(size=3), rng.uniform(1, 2, 3)]
    ssn.set_weights([w[None] for w in weights])
    bn.set_weights(weights)
    np.testing.assert_allclose(
        ssn(x, training=training), bn(x, training=training), rtol=1e-4, atol=1e-4
    )


def test_frequency_on_axis_one() -> None:
    x = _input(6)
    ssn_t = SubSpectralNorm(sub_bands=5, freq_axis=1)
    ssn = SubSpectralNorm(sub_bands=5)
    y_t = ssn_t(np.transpose(x, (0, 2, 1, 3)), training=True).numpy()
    y = ssn(x, training=True).numpy()
    np.testing.assert_allclose(np.transpose(y_t, (0, 2, 1, 3)), y, rtol=1e-4, atol=1e-5)


def test_config_round_trip() -> None:
    ssn = SubSpectralNorm(sub_bands=4, momentum=0.9, epsilon=1e-5, name="ssn")
    clone = keras.layers.deserialize(keras.layers.serialize(ssn))
    assert isinstance(clone, SubSpectralNorm) and clone.get_config() == ssn.get_config()


def test_frequency_not_divisible_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="sub_bands"):
        SubSpectralNorm(sub_bands=3).build((None, 5, 10, 2))
