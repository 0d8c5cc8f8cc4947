"""SpecAugment masks: bounded stripes, seeded, off by default, only on training batches."""

import numpy as np
import pytest
import tensorflow as tf

from tfkws.data.pipeline import make_dataset
from tfkws.data.spec_augment import SpecAugmentConfig, spec_augment
from tfkws.errors import TfkwsError

CFG = SpecAugmentConfig(time_masks=2, time_mask_frames=10, freq_masks=2, freq_mask_bins=6)


def _mask(seed: tuple[int, int], cfg: SpecAugmentConfig = CFG) -> np.ndarray:
    return spec_augment(tf.ones([49, 40]), tf.constant(seed, tf.int64), cfg).numpy()


def test_masks_are_whole_stripes_within_bounds() -> None:
    widths_seen = set()
    for s in range(40):
        m = _mask((s, 7))
        assert set(np.unique(m)) <= {0.0, 1.0}
        rows = np.where(m.max(axis=1) == 0)[0]  # frames zeroed across every channel
        cols = np.where(m.max(axis=0) == 0)[0]
        assert len(rows) <= 2 * 10 and len(cols) <= 2 * 6
        # every zero lies in a zeroed row or a zeroed column (stripes, not speckle)
        zr, zc = np.where(m == 0)
        assert np.all(np.isin(zr, rows) | np.isin(zc, cols))
        widths_seen.add((len(rows), len(cols)))
    assert len(widths_seen) > 5  # the widths really vary


def test_seeded_and_off_by_default() -> None:
    np.testing.assert_array_equal(_mask((1, 2)), _mask((1, 2)))
    assert not np.array_equal(_mask((1, 2)), _mask((1, 3)))
    x = tf.random.stateless_uniform([49, 40], [0, 1])
    assert not SpecAugmentConfig().enabled
    np.testing.assert_array_equal(spec_augment(x, tf.constant([0, 0]), SpecAugmentConfig()), x)
    with pytest.raises(TfkwsError):
        SpecAugmentConfig(time_masks=-1)


def test_only_training_batches_are_masked() -> None:
    audio = np.zeros((6, 1600), np.float32)
    labels = np.arange(6) % 2

    def fn(clip: tf.Tensor) -> tf.Tensor:
        return tf.ones([20, 8]) + 0.0 * tf.reduce_sum(clip)

    train = make_dataset(audio, labels, fn, 6, training=True, seed=3, epoch=0, spec=CFG)
    again = make_dataset(audio, labels, fn, 6, training=True, seed=3, epoch=0, spec=CFG)
    (x, _), (x2, _) = next(iter(train)), next(iter(again))
    assert (x.numpy() == 0).any()
    np.testing.assert_array_equal(x.numpy(), x2.numpy())  # resumable: same epoch, same masks
    evals = make_dataset(audio, labels, fn, 6, training=False, spec=CFG)
    assert (next(iter(evals))[0].numpy() == 1).all()
