"""BC-ResNet: paper-sized widths, exact folding, clean int8 TFLM export with static batch 1."""

from __future__ import annotations

import numpy as np
import pytest
import random_weights
import tf_keras as keras
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from tflite_micro.python.tflite_micro import runtime

from tfkws.conversion.model_info import inspect_tflite
from tfkws.conversion.tflite_convert import to_int8_tflite
from tfkws.errors import TfkwsError
from tfkws.folding.fold import fold_model
from tfkws.layers.sub_spectral_norm import SubSpectralNorm
from tfkws.models.registry import build_model, list_models

SHAPE = (49, 40)

# Kim et al. 2021, Table 2 (40 mel bins, 12 classes): parameters of BC-ResNet-{1, 2, 3, 8}.
PAPER_PARAMS = {1: 9.2e3, 2: 27.3e3, 3: 54.2e3, 8: 321e3}

# What TFLM's int8 kernels cover and this graph needs; anything else is a regression.
ALLOWED_OPS = {
    "ADD",
    "AVERAGE_POOL_2D",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "LOGISTIC",
    "MEAN",
    "MUL",
    "PAD",
    "RESHAPE",
    "STRIDED_SLICE",
}


def randomize(model: keras.Model, seed: int):
    """Whole-network random weights (see ``random_weights``)."""
    return random_weights.randomize(model, seed, "network")


def features(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 26, size=(n, *SHAPE)).astype(np.float32)


def test_registered() -> None:
    assert "bc_resnet" in list_models()


@pytest.mark.parametrize("width", sorted(PAPER_PARAMS))
def test_parameter_count_matches_the_paper(width: int) -> None:
    model = build_model("bc_resnet", SHAPE, 12, {"width": width})
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert abs(trainable - PAPER_PARAMS[width]) / PAPER_PARAMS[width] < 0.01


def test_stages_follow_the_paper() -> None:
    model = build_model("bc_resnet", SHAPE, 12, {"width": 1})
    ssn = [layer for layer in model.layers if isinstance(layer, SubSpectralNorm)]
    assert len(ssn) == 2 + 2 + 4 + 4
    # Frequency 40 -> 20 (stem) -> 20, 10, 5, 5 per stage; channels 8, 12, 16, 20.
    freqs = [layer.output.shape[2] for layer in ssn]
    chans = [layer.output.shape[3] for layer in ssn]
    assert freqs == [20] * 2 + [10] * 2 + [5] * 8
    assert chans == [8] * 2 + [12] * 2 + [16] * 4 + [20] * 4
    dil = [layer.dilation_rate[0] for layer in model.layers if layer.name.endswith("_time_dw")]
    assert dil == [1] * 2 + [2] * 2 + [4] * 4 + [8] * 4
    # Time is never subsampled; every block keeps all 49 frames.
    assert all(layer.output.shape[1] == SHAPE[0] for layer in ssn)


def test_fold_removes_every_batchnorm_and_keeps_outputs() -> None:
    model = build_model("bc_resnet", SHAPE, 5, {"width": 1})
    randomize(model, 1)
    x = features(3, 2)
    want = model(x, training=False).numpy()
    folded = fold_model(model)
    kinds = {type(layer).__name__ for layer in folded.layers}
    assert "BatchNormalization" not in kinds and "SpatialDropout2D" not in kinds
    assert "SubSpectralNorm" in kinds  # per-frequency affine: becomes MUL/ADD, not a conv
    assert np.abs(folded(x).numpy() - want).max() <= 1e-5 * np.abs(want).max()


def test_int8_export_uses_tflm_builtins_and_matches_litert() -> None:
    model = build_model("bc_resnet", SHAPE, 5, {"width": 1}, batch_size=1)
    randomize(model, 3)
    tflite = to_int8_tflite(fold_model(model), features(16, 4), num_calibration=16)
    info = inspect_tflite(tflite)
    assert set(info.ops) <= ALLOWED_OPS, set(info.ops) - ALLOWED_OPS
    assert not info.custom_ops
    assert info.inputs[0].shape == (1, *SHAPE) and info.outputs[0].shape == (1, 5)
    assert info.inputs[0].dtype == "int8" and info.outputs[0].dtype == "int8"

    # LiteRT's reference kernels are what TFLM implements; its optimised int8 depthwise kernel
    # rounds differently and drifts up to ~4 LSB over BC-ResNet's 12 blocks.
    lite = Interpreter(
        model_content=tflite,
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
    )
    lite.allocate_tensors()
    inp, out = lite.get_input_details()[0], lite.get_output_details()[0]
    scale, zero = inp["quantization"]
    micro = runtime.Interpreter.from_bytes(tflite)
    for clip in features(3, 5):
        q = np.clip(np.round(clip / scale + zero), -128, 127).astype(np.int8)[None]
        micro.set_input(q, 0)
        micro.invoke()
        lite.set_tensor(inp["index"], q)
        lite.invoke()
        diff = micro.get_output(0).astype(int) - lite.get_tensor(out["index"]).astype(int)
        assert np.abs(diff).max() <= 1


def test_one_training_step_updates_sub_spectral_statistics() -> None:
    keras.utils.set_random_seed(0)
    model = build_model("bc_resnet", SHAPE, 3, {"width": 1})
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    ssn = next(layer for layer in model.layers if isinstance(layer, SubSpectralNorm))
    before = ssn.moving_mean.numpy().copy()
    loss = model.train_on_batch(features(4, 6), np.arange(4) % 3)
    assert np.isfinite(loss)
    assert not np.allclose(before, ssn.moving_mean.numpy())


@pytest.mark.parametrize("params", [{"width": 0.05}, {"dropout": 1.0}, {"depth": 3}])
def test_bad_params_raise_tfkws_error(params: dict) -> None:
    with pytest.raises(TfkwsError):
        build_model("bc_resnet", SHAPE, 4, params)
