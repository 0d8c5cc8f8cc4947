"""RepCNN and its uni-branch twin: exact folding, identical deployed graphs, int8 TFLM export."""

from __future__ import annotations

import numpy as np
import pytest
import random_weights
import tf_keras as keras
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from helpers import signature
from tflite_micro.python.tflite_micro import runtime

from tfkws.conversion.model_info import inspect_tflite
from tfkws.conversion.tflite_convert import to_int8_tflite
from tfkws.errors import TfkwsError
from tfkws.folding.fold import fold_model
from tfkws.layers.rep_conv_block import RepConvBlock
from tfkws.models.catalog import build_model, list_models

SHAPE = (49, 40)
SMALL = {"channels": (8, 8, 12, 12), "strides": (1, 2, 1, 1)}


def randomize(model: keras.Model, seed: int):
    """Whole-network random weights (see ``random_weights``)."""
    return random_weights.randomize(model, seed, "network")


def features(n: int, seed: int = 0) -> np.ndarray:
    # Micro-frontend-like range (about 0..26).
    return np.random.default_rng(seed).uniform(0, 26, size=(n, *SHAPE)).astype(np.float32)


def run_int8(tflite: bytes, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Same int8 inputs through TFLM and LiteRT.

    LiteRT runs its reference kernels, which TFLM implements: its optimised int8 kernels round
    depthwise convs differently and drift by a few LSB over a deep net (measured on BC-ResNet-1).
    """
    lite = Interpreter(
        model_content=tflite,
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
    )
    lite.allocate_tensors()
    inp, out = lite.get_input_details()[0], lite.get_output_details()[0]
    scale, zero = inp["quantization"]
    micro = runtime.Interpreter.from_bytes(tflite)
    tflm, ref = [], []
    for clip in x:
        q = np.clip(np.round(clip / scale + zero), -128, 127).astype(np.int8)[None]
        micro.set_input(q, 0)
        micro.invoke()
        tflm.append(micro.get_output(0).copy())
        lite.set_tensor(inp["index"], q)
        lite.invoke()
        ref.append(lite.get_tensor(out["index"]).copy())
    return np.concatenate(tflm), np.concatenate(ref)


def test_models_are_registered() -> None:
    assert {"repcnn", "repcnn_unibranch"} <= set(list_models())


@pytest.mark.parametrize("name", ["repcnn", "repcnn_unibranch"])
def test_builds_logits_for_any_batch(name: str) -> None:
    model = build_model(name, SHAPE, 7, SMALL)
    assert model.inputs[0].shape.as_list() == [None, *SHAPE]
    assert model(features(3)).shape == (3, 7)
    static = build_model(name, SHAPE, 7, SMALL, batch_size=1)
    assert static.inputs[0].shape.as_list() == [1, *SHAPE]


def test_repcnn_blocks_have_branches_and_identity_where_shapes_allow() -> None:
    model = build_model("repcnn", SHAPE, 5, SMALL)
    blocks = [layer for layer in model.layers if isinstance(layer, RepConvBlock)]
    assert len(blocks) == len(SMALL["channels"])
    # (7,5,3) kernels + 1x1 in every block; identity only at stride 1 with equal channels.
    assert all(len(b.convs) == 4 for b in blocks)
    assert [b.identity_bn is not None for b in blocks] == [False, False, False, True]


@pytest.mark.parametrize("separable", [False, True])
def test_folded_repcnn_equals_training_graph_in_inference(separable: bool) -> None:
    model = build_model("repcnn", SHAPE, 6, {**SMALL, "separable": separable})
    randomize(model, 1)
    x = features(4, 2)
    want = model(x, training=False).numpy()
    folded = fold_model(model)
    assert not any(isinstance(layer, RepConvBlock) for layer in folded.layers)
    got = folded(x).numpy()
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


@pytest.mark.parametrize("separable", [False, True])
def test_folded_repcnn_has_the_uni_branch_twins_layers_and_params(separable: bool) -> None:
    params = {**SMALL, "separable": separable}
    rep = fold_model(build_model("repcnn", SHAPE, 6, params, batch_size=1))
    uni = fold_model(build_model("repcnn_unibranch", SHAPE, 6, params, batch_size=1))
    assert signature(rep) == signature(uni)
    assert rep.count_params() == uni.count_params()
    # And the twin before folding trains fewer parameters than the multi-branch net.
    assert (
        build_model("repcnn_unibranch", SHAPE, 6, params).count_params()
        < build_model("repcnn", SHAPE, 6, params).count_params()
    )


def test_int8_repcnn_has_the_twins_ops_and_tflm_matches_litert() -> None:
    rep = build_model("repcnn", SHAPE, 6, SMALL, batch_size=1)
    uni = build_model("repcnn_unibranch", SHAPE, 6, SMALL, batch_size=1)
    randomize(rep, 3)
    randomize(uni, 4)
    calib = features(16, 5)
    rep_tfl = to_int8_tflite(fold_model(rep), calib, num_calibration=16)
    uni_tfl = to_int8_tflite(fold_model(uni), calib, num_calibration=16)
    rep_info, uni_info = inspect_tflite(rep_tfl), inspect_tflite(uni_tfl)
    assert rep_info.ops == uni_info.ops
    assert rep_info.operator_count == uni_info.operator_count
    assert rep_info.tensor_count == uni_info.tensor_count
    assert "CONV_2D" in rep_info.ops and not rep_info.custom_ops
    tflm, ref = run_int8(rep_tfl, features(4, 6))
    assert np.abs(tflm.astype(int) - ref.astype(int)).max() <= 1


def test_one_training_step_then_fold() -> None:
    keras.utils.set_random_seed(0)
    model = build_model("repcnn", SHAPE, 3, SMALL)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y = features(8, 7), np.arange(8) % 3
    before = [w.numpy().copy() for w in model.trainable_weights]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    after = model.trainable_weights
    assert all(not np.array_equal(a, w.numpy()) for a, w in zip(before, after, strict=True))
    folded = fold_model(model)
    want = model(x, training=False).numpy()
    assert np.abs(folded(x).numpy() - want).max() <= 1e-5 * np.abs(want).max()


def test_weights_round_trip_through_h5(tmp_path) -> None:
    """The trainer keeps best weights as .h5, which needs unique weight names in every block."""
    model = build_model("repcnn", SHAPE, 4, SMALL)
    names = [w.name for w in model.weights]
    assert len(names) == len(set(names))
    randomize(model, 8)
    model.save_weights(str(tmp_path / "w.h5"))
    twin = build_model("repcnn", SHAPE, 4, SMALL, batch_size=1)
    twin.load_weights(str(tmp_path / "w.h5"))
    x = features(1, 9)
    np.testing.assert_array_equal(twin(x, training=False), model(x, training=False))


@pytest.mark.parametrize(
    "name,params",
    [
        ("repcnn", {"channels": (8, 8), "strides": (1,)}),
        ("repcnn", {"channels": ()}),
        ("repcnn_unibranch", {"dropout": 1.5}),
        ("repcnn", {"width": 2}),
    ],
)
def test_bad_params_raise_tfkws_error(name: str, params: dict) -> None:
    with pytest.raises(TfkwsError):
        build_model(name, SHAPE, 4, params)
