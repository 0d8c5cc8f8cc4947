"""The fake-quant Keras model rounds as TFLM's int8 kernels do: same int8 outputs, not just close.

A small conv -> global average pool (MEAN) -> Dense (per-channel FULLY_CONNECTED) model keeps
every int32 accumulator exactly representable in float32, so any difference left is a rounding
rule the emulation (``tfkws.quantization.kernel_rounding``) gets wrong.
"""

import numpy as np
import tf_keras as keras

from tfkws.conversion.tflite_convert import qat_to_int8_tflite
from tfkws.quantization import qat
from tfkws.verification.parity import quantize_features
from tfkws.verification.tflm import run_tflm


def _model() -> keras.Model:
    keras.utils.set_random_seed(3)
    inp = keras.Input((12, 10))
    x = keras.layers.Reshape((12, 10, 1))(inp)
    x = keras.layers.Conv2D(6, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)  # MEAN over 10 x 8 = 80 elements
    out = keras.layers.Dense(5)(x)
    return keras.Model(inp, out)


def test_fake_quant_outputs_are_tflm_outputs() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12, 10)).astype(np.float32)
    q = qat.qat_model(_model(), calibration=x[:100])
    data = qat_to_int8_tflite(q)
    from tfkws.conversion.model_info import inspect_tflite

    info = inspect_tflite(data)
    assert {"MEAN", "FULLY_CONNECTED"} <= set(info.ops)
    got = run_tflm(data, quantize_features(x, info.input_scale, info.input_zero_point))
    ref = np.concatenate([q(x[i : i + 50], training=False).numpy() for i in range(0, 300, 50)])
    want = np.round(ref / info.output_scale + info.output_zero_point)
    np.testing.assert_array_equal(got.reshape(want.shape).astype(int), want.astype(int))
