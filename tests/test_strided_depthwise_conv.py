"""StridedDepthwiseConv2D equals a real strided depthwise convolution, for any stride pair."""

import numpy as np
import pytest
import tf_keras as keras

from tfkws.layers.strided_depthwise_conv import StridedDepthwiseConv2D


def _reference(x: np.ndarray, k: np.ndarray, strides, padding: str, dilation) -> np.ndarray:
    """Direct depthwise conv with TensorFlow's padding rule (pad_before = total // 2)."""
    n, rows, cols, c = x.shape
    kh, kw = k.shape[:2]
    (sh, sw), (dh, dw) = strides, dilation
    span_h, span_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if padding == "same":
        oh, ow = -(-rows // sh), -(-cols // sw)
        ph = max((oh - 1) * sh + span_h - rows, 0)
        pw = max((ow - 1) * sw + span_w - cols, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        oh, ow = (rows - span_h) // sh + 1, (cols - span_w) // sw + 1
    out = np.zeros((n, oh, ow, c), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = x[
                :,
                i * dh : i * dh + (oh - 1) * sh + 1 : sh,
                j * dw : j * dw + (ow - 1) * sw + 1 : sw,
                :,
            ]
            out += patch * k[i, j, :, 0]
    return out


@pytest.mark.parametrize("strides", [(1, 2), (2, 1), (3, 1), (1, 3), (2, 2), (1, 1)])
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize(
    "kernel,shape", [((3, 3), (13, 10)), ((1, 3), (49, 20)), ((7, 1), (49, 1)), ((4, 2), (9, 7))]
)
def test_equals_a_real_strided_conv(strides, padding, kernel, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, *shape, 3)).astype(np.float32)
    if padding == "valid" and (shape[0] < kernel[0] or shape[1] < kernel[1]):
        pytest.skip("kernel larger than input")
    layer = StridedDepthwiseConv2D(kernel, strides=strides, padding=padding, use_bias=True)
    y = layer(x).numpy()
    k, b = layer.get_weights()
    b = rng.standard_normal(b.shape).astype(np.float32)
    layer.set_weights([k, b])
    y = layer(x).numpy()
    ref = _reference(x, k, strides, padding, (1, 1)) + b
    assert y.shape == ref.shape == tuple(layer.compute_output_shape(x.shape))
    np.testing.assert_allclose(y, ref, atol=1e-5)


def test_trains_on_cpu_and_round_trips_config():
    inp = keras.Input((49, 20, 4))
    out = StridedDepthwiseConv2D((1, 3), strides=(1, 2), padding="same", name="dw")(inp)
    model = keras.Model(inp, keras.layers.GlobalAveragePooling2D()(out))
    model.compile("sgd", "mse")
    x = np.random.default_rng(1).standard_normal((4, 49, 20, 4)).astype(np.float32)
    before = model.get_weights()[0].copy()
    model.fit(x, np.zeros((4, 4), np.float32), epochs=1, verbose=0)
    assert not np.allclose(before, model.get_weights()[0])
    clone = keras.Model.from_config(model.get_config())
    assert isinstance(clone.get_layer("dw"), StridedDepthwiseConv2D)
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(x).numpy(), model(x).numpy(), atol=1e-6)
