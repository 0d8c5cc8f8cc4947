"""TFLM vs LiteRT reference kernels vs float Keras on a small trained DS-CNN."""

import numpy as np
import pytest
import tf_keras as keras

from tfkws.conversion.tflite_convert import to_int8_tflite
from tfkws.errors import ModelError
from tfkws.folding.fold import fold_model
from tfkws.models.catalog import build_model
from tfkws.verification.parity import quantize_features, verify

SHAPE = (49, 40)


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (64, *SHAPE)).astype(np.float32)
    y = rng.integers(0, 4, 64)
    x += y[:, None, None] * 0.5  # something learnable
    model = build_model("ds_cnn", SHAPE, 4, {"channels": 8, "num_blocks": 2})
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    folded = fold_model(model)
    return model, to_int8_tflite(folded, x, num_calibration=32), x


def test_tflm_matches_litert_reference(trained):
    model, tflite, x = trained
    feats = np.random.default_rng(5).normal(0.7, 1.2, (40, *SHAPE)).astype(np.float32)
    report = verify(tflite, feats, keras_model=model)
    assert report.n_clips == 40
    assert report.within_1lsb_share >= 0.999
    assert report.max_abs_lsb_diff <= 1
    assert report.top1_agreement_tflm_vs_litert >= 0.95
    assert 0.0 <= report.top1_agreement_vs_float <= 1.0
    d = report.as_dict()
    assert d["n_clips"] == 40 and set(d) >= {"within_1lsb_share", "top1_agreement_vs_float"}


def test_int8_model_tracks_the_float_model(trained):
    model, tflite, x = trained
    report = verify(tflite, x[:32], keras_model=model)
    assert report.top1_agreement_vs_float >= 0.8


def test_without_keras_model_float_fields_are_none(trained):
    _, tflite, x = trained
    report = verify(tflite, x[:3])
    assert report.top1_agreement_vs_float is None and report.max_abs_diff_vs_float is None


def test_wrong_feature_shape(trained):
    _, tflite, _ = trained
    with pytest.raises(ModelError, match="verify needs features"):
        verify(tflite, np.zeros((2, 49), np.float32))


def test_quantize_features_rounds_and_clips():
    x = np.array([-100.0, -0.26, -0.25, 0.0, 0.24, 0.25, 100.0], np.float32)
    q = quantize_features(x, 0.5, 3)
    assert q.dtype == np.int8
    np.testing.assert_array_equal(q, [-128, 2, 2, 3, 3, 4, 127])
