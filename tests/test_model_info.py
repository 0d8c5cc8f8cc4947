"""Flatbuffer inspection: fields, validation of corrupt / truncated / non-int8 files."""

import numpy as np
import pytest
import tf_keras as keras

from tfkws.conversion.model_info import inspect_tflite, read_tflite, require_int8
from tfkws.conversion.tflite_convert import to_float_tflite, to_int8_tflite
from tfkws.errors import ModelError


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 5), batch_size=1, name="feats")
    x = keras.layers.Conv1D(4, 3, padding="same", activation="relu")(inp)
    out = keras.layers.Dense(3)(keras.layers.Flatten()(x))
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def int8_bytes(tiny):
    data = np.random.default_rng(0).uniform(-1, 3, (16, 6, 5)).astype(np.float32)
    return to_int8_tflite(tiny, data, num_calibration=8)


def test_fields_of_an_int8_model(int8_bytes):
    info = inspect_tflite(int8_bytes)
    assert info.input_shape == (1, 6, 5) and info.output_shape == (1, 3)
    assert info.input_dtype == info.output_dtype == "int8"
    assert 0 < info.input_scale < 1 and isinstance(info.input_zero_point, int)
    assert info.subgraph_count == 1
    assert "FULLY_CONNECTED" in info.ops and list(info.ops) == sorted(set(info.ops))
    assert info.tensor_count >= info.operator_count + 2
    assert info.size_bytes == len(int8_bytes)
    d = info.as_dict()
    assert d["input"]["shape"] == [1, 6, 5] and d["ops"] == list(info.ops)
    require_int8(info)  # no error


def test_float_model_is_not_int8(tiny):
    info = inspect_tflite(to_float_tflite(tiny))
    assert info.input_dtype == "float32" and info.input_scale is None
    with pytest.raises(ModelError, match="not int8") as err:
        require_int8(info, "models/f.tflite")
    assert str(err.value).startswith("models/f.tflite:")


@pytest.mark.parametrize("data", [b"", b"hello world, not a model", bytes(range(256)) * 4])
def test_not_a_flatbuffer(data):
    with pytest.raises(ModelError, match="x.tflite: not a TensorFlow Lite"):
        inspect_tflite(data, "x.tflite")


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.7, 0.9, 0.99])
def test_truncated_file_is_a_model_error(int8_bytes, fraction):
    cut = int8_bytes[: int(len(int8_bytes) * fraction)]
    with pytest.raises(ModelError) as err:
        inspect_tflite(cut, "cut.tflite")
    assert str(err.value).startswith("cut.tflite:") and "\n" not in str(err.value)


def test_random_corruption_never_escapes_as_another_exception(int8_bytes):
    rng = np.random.default_rng(0)
    for _ in range(200):
        data = np.frombuffer(int8_bytes, np.uint8).copy()
        data[rng.integers(8, len(data), size=4)] = rng.integers(0, 256, size=4)
        try:
            inspect_tflite(bytes(data))
        except ModelError:
            pass


def test_read_tflite(tmp_path, int8_bytes):
    path = tmp_path / "m.tflite"
    path.write_bytes(int8_bytes)
    data, info = read_tflite(path)
    assert data == int8_bytes and info.input_dtype == "int8"
    with pytest.raises(ModelError, match="missing.tflite"):
        read_tflite(tmp_path / "missing.tflite")
