"""DS-CNN (Hello Edge): architecture, parameter counts, shapes, serialisation."""

import numpy as np
import pytest
import tf_keras as keras

from tfkws.errors import TfkwsError
from tfkws.models.catalog import build_model
from tfkws.models.ds_cnn import SIZES


def expected_params(channels: int, blocks: int, num_classes: int, kernel=(10, 4)) -> int:
    """Count from the architecture: bias-free convs, 4 BN params per channel, Dense logits."""
    bn = 4 * channels
    first = kernel[0] * kernel[1] * channels + bn
    block = (9 * channels + bn) + (channels * channels + bn)
    return first + blocks * block + channels * num_classes + num_classes


@pytest.mark.parametrize("size", ["s", "m", "l"])
def test_param_counts_match_the_presets(size):
    channels, blocks, _, _ = SIZES[size]
    model = build_model("ds_cnn", (49, 40), 12, {"size": size}, batch_size=1)
    assert model.count_params() == expected_params(channels, blocks, 12)
    assert tuple(model.output_shape) == (1, 12)
    alias = build_model(f"ds_cnn_{size}", (49, 40), 12, batch_size=1)
    assert alias.count_params() == model.count_params()


def test_preset_sizes_follow_arm_ml_kws():
    assert SIZES["s"][:2] == (64, 4)
    assert SIZES["m"][:2] == (172, 4)
    assert SIZES["l"][:2] == (276, 5)


@pytest.mark.parametrize(
    "size,after_conv,after_ds1", [("s", (25, 20), (25, 20)), ("m", (25, 40), (13, 20))]
)
def test_strides(size, after_conv, after_ds1):
    model = build_model("ds_cnn", (49, 40), 12, {"size": size, "num_blocks": 1})
    assert tuple(model.get_layer("conv0").output_shape[1:3]) == after_conv
    assert tuple(model.get_layer("ds1_dw").output_shape[1:3]) == after_ds1
    assert model.get_layer("conv0").kernel_size == (10, 4)


def test_convs_have_no_bias_and_are_followed_by_bn_relu():
    model = build_model("ds_cnn", (49, 40), 5, {"channels": 8, "num_blocks": 2})
    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
    convs = [layer for layer in model.layers if isinstance(layer, kinds)]
    assert len(convs) == 1 + 2 * 2
    for conv in convs:
        assert not conv.use_bias
        bn = conv.outbound_nodes[0].outbound_layer
        assert isinstance(bn, keras.layers.BatchNormalization)
        assert isinstance(bn.outbound_nodes[0].outbound_layer, keras.layers.ReLU)


def test_outputs_are_logits_for_a_batch():
    model = build_model("ds_cnn", (49, 40), 6, {"channels": 8, "num_blocks": 1})
    keras.utils.set_random_seed(1)
    x = np.random.default_rng(0).normal(size=(3, 49, 40)).astype(np.float32)
    y = model(x, training=False).numpy()
    assert y.shape == (3, 6)
    assert not np.allclose(y.sum(axis=-1), 1.0)  # no softmax in the model
    assert isinstance(model.layers[-1], keras.layers.Dense)
    assert model.layers[-1].activation is keras.activations.linear


def test_config_round_trip_rebuilds_the_same_model():
    model = build_model("ds_cnn", (49, 10), 4, {"channels": 8, "num_blocks": 2, "dropout": 0.1})
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    x = np.random.default_rng(2).normal(size=(2, 49, 10)).astype(np.float32)
    np.testing.assert_allclose(clone(x).numpy(), model(x).numpy(), rtol=1e-6, atol=1e-6)


def test_dropout_zero_has_no_dropout_layers():
    model = build_model("ds_cnn", (49, 40), 4, {"channels": 8, "num_blocks": 1, "dropout": 0.0})
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)


@pytest.mark.parametrize("size, dilation", [("s", None), ("m", None), ("s", [2, 4])])
def test_rep_ds_cnn_folds_exactly_into_the_plain_ds_cnn(size, dilation):
    """``rep=True`` trains multi-branch blocks; folded, it is the preset DS-CNN, exactly."""
    import random_weights
    from helpers import signature

    from tfkws.conversion.model_info import inspect_tflite
    from tfkws.conversion.tflite_convert import to_int8_tflite
    from tfkws.folding.fold import fold_model
    from tfkws.layers.rep_conv_block import RepConvBlock

    params = {"size": size, "channels": 12, "num_blocks": 2, "dropout": 0.0}
    if dilation:
        params["time_dilation"] = dilation
    rep = build_model("ds_cnn", (49, 40), 5, {**params, "rep": True})
    blocks = [layer for layer in rep.layers if isinstance(layer, RepConvBlock)]
    branches = [len(b.bns) + (b.identity_bn is not None) for b in blocks]
    assert len(blocks) == 1 + 2 * 2 and min(branches) >= 2, branches
    random_weights.randomize(rep, 7, "network")
    x = np.random.default_rng(1).uniform(0, 26, size=(3, 49, 40)).astype(np.float32)
    want = rep(x, training=False).numpy()
    folded = fold_model(rep)
    got = folded(x).numpy()
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    plain = fold_model(build_model("ds_cnn", (49, 40), 5, params))

    def deployed(sig):
        """Up to what cannot change the function: a StridedDepthwiseConv2D with equal strides
        is the Keras layer, and a 1x1 kernel pads nothing whether 'same' or 'valid'."""
        out = []
        for kind, shapes, fields in sig:
            if ("kernel_size", "(1, 1)") in fields:
                fields = tuple(f for f in fields if f[0] != "padding")
            out.append((kind.replace("StridedDepthwiseConv2D", "DepthwiseConv2D"), shapes, fields))
        return out

    assert deployed(signature(folded)) == deployed(signature(plain))
    assert folded.count_params() == plain.count_params()
    ops = [inspect_tflite(to_int8_tflite(m, x, num_calibration=3)) for m in (folded, plain)]
    assert ops[0].ops == ops[1].ops and ops[0].operator_count == ops[1].operator_count
    assert "STRIDED_SLICE" not in ops[0].ops
    assert rep.count_params() > build_model("ds_cnn", (49, 40), 5, params).count_params()


def test_time_dilation_widens_the_receptive_field_at_the_same_size():
    """Dilated depthwise convs: same parameters; the first frame reaches the last block's
    output at frames the undilated net cannot reach."""
    params = {"dropout": 0.0}
    plain = build_model("ds_cnn", (49, 40), 5, params)
    dilated = build_model("ds_cnn", (49, 40), 5, {**params, "time_dilation": [1, 2, 4, 8]})
    assert dilated.count_params() == plain.count_params()

    def reach(model):
        """Frames of the last block's output that an impulse at frame 0 changes."""
        probe = keras.Model(model.input, model.get_layer("ds4_pw_relu").output)
        for w in model.weights:
            if "kernel" in w.name:
                w.assign(np.abs(w.numpy()) + 0.01)
        x = np.zeros((2, 49, 40), np.float32)
        x[1, 0, :] = 1.0
        y = probe(x, training=False).numpy()
        return int((np.abs(y[1] - y[0]).max(axis=(1, 2)) > 0).sum())

    assert reach(plain) < 12 < reach(dilated)


def test_time_dilation_converts_to_dilated_int8_depthwise_convs_that_tflm_runs():
    from tfkws.conversion.model_info import inspect_tflite
    from tfkws.conversion.tflite_convert import to_int8_tflite
    from tfkws.folding.fold import fold_model
    from tfkws.verification.litert import run_litert
    from tfkws.verification.tflm import run_tflm

    params = {"channels": 8, "dropout": 0.0, "time_dilation": [1, 2, 4, 8]}
    model = fold_model(build_model("ds_cnn", (49, 40), 5, params))
    x = np.random.default_rng(1).uniform(0, 26, size=(4, 49, 40)).astype(np.float32)
    data = to_int8_tflite(model, x, num_calibration=4)
    info = inspect_tflite(data)
    assert set(info.ops) == {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MEAN", "RESHAPE"}
    q = np.round(x / info.input_scale + info.input_zero_point)
    q = np.clip(q, -128, 127).astype(np.int8)
    np.testing.assert_array_equal(run_tflm(data, q), run_litert(data, q))


def test_time_dilation_is_checked():
    with pytest.raises(TfkwsError, match="time_dilation"):
        build_model("ds_cnn", (49, 40), 5, {"time_dilation": [1, 2]})
    with pytest.raises(TfkwsError, match="cannot be dilated"):
        build_model("ds_cnn", (49, 40), 5, {"size": "m", "time_dilation": [2, 2, 2, 2]})
