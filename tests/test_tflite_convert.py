"""Keras -> int8 .tflite: int8 I/O, int8 builtin ops only, batch 1, deterministic."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfkws.conversion.model_info import inspect_tflite
from tfkws.conversion.tflite_convert import static_batch_one, to_float_tflite, to_int8_tflite
from tfkws.errors import ModelError
from tfkws.folding.fold import fold_model
from tfkws.models.catalog import build_model
from tfkws.quantization.ptq import calibration_set

SHAPE = (49, 40)
DS_CNN_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MEAN", "RESHAPE"}


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(0).normal(2.0, 1.5, (24, *SHAPE)).astype(np.float32)


@pytest.fixture(scope="module")
def folded():
    keras.utils.set_random_seed(0)
    # dynamic batch on purpose: conversion must rebuild it with batch 1
    model = build_model("ds_cnn", SHAPE, 4, {"channels": 8, "num_blocks": 1})
    return fold_model(model)


@pytest.fixture(scope="module")
def int8_bytes(folded, data):
    return to_int8_tflite(folded, data, num_calibration=16, seed=0)


def test_int8_model_has_int8_io_and_only_int8_builtin_ops(int8_bytes):
    info = inspect_tflite(int8_bytes)
    assert info.input_dtype == "int8" and info.output_dtype == "int8"
    assert info.input_shape == (1, *SHAPE) and info.output_shape == (1, 4)
    assert info.input_scale > 0 and -128 <= info.input_zero_point <= 127
    assert set(info.ops) == DS_CNN_OPS  # batch 1: no SHAPE / REDUCE_PROD / QUANTIZE
    assert info.float_tensors == () and info.custom_ops == ()


def test_input_quantisation_covers_the_calibration_range(int8_bytes, data):
    info = inspect_tflite(int8_bytes)
    cal = calibration_set(data, 16, seed=0)
    lo = (-128 - info.input_zero_point) * info.input_scale
    hi = (127 - info.input_zero_point) * info.input_scale
    assert lo <= cal.min() + info.input_scale and hi >= cal.max() - info.input_scale
    assert hi - lo < 1.5 * (cal.max() - cal.min())  # and is not needlessly wide


def test_conversion_is_deterministic(folded, data, int8_bytes):
    assert to_int8_tflite(folded, data, num_calibration=16, seed=0) == int8_bytes


def test_static_batch_one_leaves_batch_one_models_alone(folded):
    one = static_batch_one(folded)
    assert tuple(one.inputs[0].shape) == (1, *SHAPE)
    assert static_batch_one(one) is one


def test_float_tflite_is_float(folded):
    info = inspect_tflite(to_float_tflite(folded))
    assert info.input_dtype == "float32" and info.input_scale is None
    assert info.input_shape == (1, *SHAPE)


def test_op_without_int8_kernel_is_a_model_error_naming_it(data):
    inp = keras.Input(SHAPE, batch_size=1)
    x = keras.layers.Lambda(lambda t: tf.math.sin(t), name="my_sine")(inp)
    out = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    with pytest.raises(ModelError) as err:
        to_int8_tflite(keras.Model(inp, out, name="sine_net"), data, num_calibration=4)
    msg = str(err.value)
    assert "SIN" in msg and "my_sine" in msg and "sine_net" in msg and "\n" not in msg


def test_wrong_representative_shape_is_a_model_error(folded):
    with pytest.raises(ModelError, match="expects"):
        to_int8_tflite(folded, np.zeros((4, 49, 10), np.float32))


def test_calibration_set_is_seeded():
    data = np.arange(50 * 2, dtype=np.float32).reshape(50, 2)
    a = calibration_set(data, 10, seed=1)
    assert a.shape == (10, 2)
    np.testing.assert_array_equal(a, calibration_set(data, 10, seed=1))
    assert not np.array_equal(a, calibration_set(data, 10, seed=2))
    assert np.all(np.diff(a[:, 0]) > 0)  # original order kept
    assert calibration_set(data, None).shape == (50, 2)
    with pytest.raises(ModelError):
        calibration_set(np.full((3, 2), np.nan), 2)
