"""TFLM vs LiteRT reference kernels vs float Keras on a small trained DS-CNN."""

import numpy as np
import pytest
import tf_keras as keras

from tfkws.conversion.tflite_convert import to_int8_tflite
from tfkws.errors import ModelError
from tfkws.folding.fold import fold_model
from tfkws.models.catalog import build_model
from tfkws.verification.parity import quantize_features, verdict, verify

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


def _report(**kw):
    base = dict(
        within_1lsb_share=0.8,
        max_abs_lsb_diff=4,
        top1_agreement_tflm_vs_litert=1.0,
        op_check_clips=3,
        ops_judged=40,
        ops_total=90,
        op_max_abs_lsb_diff=1,
        op_worst="op 7 FULLY_CONNECTED (x), clip 2",
    )
    return base | kw


@pytest.mark.parametrize(
    "kw, ok, says",
    [
        (dict(within_1lsb_share=0.9995), True, "99.950 % of TFLM outputs within 1 LSB"),
        ({}, True, "40 of 90 ops run alone on their TFLM inputs of the 3 worst clip(s): max 1 LSB"),
        (dict(op_max_abs_lsb_diff=2), False, "max 2 LSB at op 7 FULLY_CONNECTED (x), clip 2"),
        (dict(top1_agreement_tflm_vs_litert=0.95), False, "top-1 agreement 95.0 % (< 99.0 %)"),
        (dict(op_max_abs_lsb_diff=None, ops_judged=0), False, "no op could be run alone"),
    ],
)
def test_verdict_passes_amplified_rounding_only_when_every_op_agrees(kw, ok, says):
    passed, why = verdict(_report(**kw))
    assert passed is ok and says in why, why


def test_each_op_alone_computes_what_it_did_in_the_whole_model(trained):
    """A one-op model fed an op's TFLM inputs gives TFLM's own output of that op, exactly."""
    from tflite_micro.python.tflite_micro import runtime

    from firmware_gen.model import read_flatbuffer
    from tfkws.conversion.dedup_buffers import read_model
    from tfkws.conversion.model_info import inspect_tflite
    from tfkws.verification.op_parity import isolated_op_agreement, single_op_model
    from tfkws.verification.tflm import tflm_interpreter

    _, tflite, x = trained
    info = inspect_tflite(tflite)
    q = quantize_features(x[:1], info.input_scale, info.input_zero_point)[0]
    whole, _ = tflm_interpreter(tflite, preserve_all_tensors=True)
    whole.set_input(q[None], 0)
    whole.invoke()
    fb, model = read_flatbuffer(tflite), read_model(tflite)
    for op in fb.operators:
        alone, inputs = single_op_model(model, tflite, op.subgraph, op.index)
        micro = runtime.Interpreter.from_bytes(alone, arena_size=1 << 20)
        for k, i in enumerate(inputs):
            micro.set_input(np.asarray(whole.GetTensor(i, 0)["tensor_data"]), k)
        micro.invoke()
        want = np.asarray(whole.GetTensor(op.outputs[0], 0)["tensor_data"])
        assert np.array_equal(np.asarray(micro.get_output(0)).reshape(-1), want.reshape(-1)), op
    (ops,) = isolated_op_agreement(tflite, q[None])
    assert len(ops) == len(fb.operators)
    assert all(o.max_abs_lsb_diff is not None and o.max_abs_lsb_diff <= 1 for o in ops)
