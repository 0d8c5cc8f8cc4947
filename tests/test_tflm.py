"""TFLM runs: outputs, missing ops listed, corrupt / float models refused before TFLM sees them."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfkws.conversion.model_info import inspect_tflite
from tfkws.conversion.tflite_convert import to_float_tflite, to_int8_tflite
from tfkws.errors import ModelError
from tfkws.folding.fold import fold_model
from tfkws.models.catalog import build_model
from tfkws.verification import tflm
from tfkws.verification.litert import run_litert
from tfkws.verification.tflm import missing_tflm_ops, run_tflm, tflm_supported_ops

SHAPE = (49, 40)


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(0).normal(0, 1, (16, *SHAPE)).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return fold_model(build_model("ds_cnn", SHAPE, 4, {"channels": 8, "num_blocks": 1}))


@pytest.fixture(scope="module")
def int8_bytes(model, data):
    return to_int8_tflite(model, data, num_calibration=8)


@pytest.fixture(scope="module")
def reduce_prod_bytes(data):
    """Converts to int8 fine, but TFLM has no REDUCE_PROD kernel."""
    inp = keras.Input(SHAPE, batch_size=1)
    x = keras.layers.Lambda(lambda t: tf.reduce_prod(t, axis=1, keepdims=True))(inp)
    out = keras.layers.Dense(3)(keras.layers.Flatten()(x))
    return to_int8_tflite(keras.Model(inp, out), data, num_calibration=4)


def test_run_tflm_outputs_int8_per_clip(int8_bytes):
    q = np.random.default_rng(1).integers(-128, 128, (5, *SHAPE)).astype(np.int8)
    out = run_tflm(int8_bytes, q)
    assert out.shape == (5, 4) and out.dtype == np.int8
    np.testing.assert_array_equal(out[2], run_tflm(int8_bytes, q[2])[0])  # no state between clips
    assert len({tuple(r) for r in out}) > 1  # outputs depend on the input
    ref = run_litert(int8_bytes, q)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1


def test_converted_ds_cnn_ops_are_all_supported(int8_bytes):
    assert missing_tflm_ops(inspect_tflite(int8_bytes)) == []
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "MEAN"} <= tflm_supported_ops()


def test_missing_op_is_listed_before_tflm_loads(reduce_prod_bytes):
    assert "REDUCE_PROD" in inspect_tflite(reduce_prod_bytes).ops
    assert missing_tflm_ops(inspect_tflite(reduce_prod_bytes)) == ["REDUCE_PROD"]
    with pytest.raises(ModelError, match="REDUCE_PROD") as err:
        run_tflm(reduce_prod_bytes, np.zeros((1, *SHAPE), np.int8), path="prod.tflite")
    assert str(err.value).startswith("prod.tflite:")


def test_tflm_own_missing_op_report_is_parsed(reduce_prod_bytes, monkeypatch):
    """If the static list were wrong, TFLM's own C-level message still names the op."""
    monkeypatch.setattr(tflm, "TFLM_BUILTIN_OPS", tflm.TFLM_BUILTIN_OPS | {"REDUCE_PROD"})
    with pytest.raises(ModelError, match="no kernel for op.*REDUCE_PROD"):
        run_tflm(reduce_prod_bytes, np.zeros((1, *SHAPE), np.int8))


def test_float_model_is_refused(model):
    with pytest.raises(ModelError, match="not int8"):
        run_tflm(to_float_tflite(model), np.zeros((1, *SHAPE), np.int8))


def test_corrupt_bytes_are_refused(int8_bytes):
    for bad in (b"", int8_bytes[:100], int8_bytes[: len(int8_bytes) // 2], b"x" * 4096):
        with pytest.raises(ModelError):
            run_tflm(bad, np.zeros((1, *SHAPE), np.int8))


def test_bad_inputs_are_refused(int8_bytes):
    with pytest.raises(ModelError, match="int8"):
        run_tflm(int8_bytes, np.zeros((1, *SHAPE), np.float32))
    with pytest.raises(ModelError, match="shape"):
        run_tflm(int8_bytes, np.zeros((1, 49, 10), np.int8))


def test_too_small_explicit_arena_is_a_model_error(int8_bytes):
    with pytest.raises(ModelError, match="TFLM could not load"):
        run_tflm(int8_bytes, np.zeros((1, *SHAPE), np.int8), arena_size=2048)
