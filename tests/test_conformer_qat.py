"""QAT of the weight-shared conformer: shared layers stay one set of weights through tfmot, the
QAT model converts to int8 with its own ranges, runs in TFLM like LiteRT, and its flatbuffer
stores the shared weights once."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import tf_keras as keras
from conformer_helpers import COMBOS, INPUT, build, distinct_weights, int8_input

from tfkws.conversion.dedup_buffers import duplicate_buffers, read_model
from tfkws.conversion.model_info import inspect_tflite
from tfkws.conversion.tflite_convert import qat_to_int8_tflite, to_int8_tflite
from tfkws.folding.fold import fold_model
from tfkws.quantization.qat import qat_model
from tfkws.verification.litert import run_litert
from tfkws.verification.op_parity import op_agreement
from tfkws.verification.tflm import run_tflm, tflm_supported_ops

REP = np.random.default_rng(3).normal(size=(32, *INPUT)).astype(np.float32)
QAT_COMBOS = ("modules", "all")


def _inner(layer: keras.layers.Layer) -> keras.layers.Layer:
    return getattr(layer, "layer", layer)  # a tfmot QuantizeWrapper's wrapped layer


def _calls_of_weights(model: keras.Model) -> dict[str, int]:
    """``{layer name: times applied}`` for every layer with trainable weights."""
    return {
        _inner(la).name: len(la._inbound_nodes)
        for la in model.layers
        if _inner(la).trainable_weights
    }


@functools.cache
def _qat(combo: str) -> tuple[keras.Model, bytes]:
    model = build(combo)
    distinct_weights(model)  # no two constants equal unless shared (converter merges equal ones)
    q = qat_model(model, REP)
    return q, qat_to_int8_tflite(q)


def _constant_bytes(data: bytes) -> int:
    model = read_model(data)
    used = {t.buffer for g in model.subgraphs for t in g.tensors}
    return sum(len(model.buffers[i].data) for i in used if model.buffers[i].data is not None)


def _stored_once(model: keras.Model) -> int:
    """Weights int8 stores once however often used: all but biases and BatchNorms (requantised
    per use), as in test_conformer_tflm."""
    return sum(
        int(np.prod(w.shape))
        for w in model.weights
        if not w.name.split(":")[0].endswith("bias") and "_bn/" not in w.name
    )


@pytest.mark.parametrize("combo", QAT_COMBOS)
def test_shared_layers_stay_shared_through_qat(combo: str) -> None:
    q, _ = _qat(combo)
    calls = _calls_of_weights(q)
    assert max(calls.values()) > 1  # shared wrappers, each called where the layer was
    float_calls = _calls_of_weights(fold_model(build(combo)))
    for name, n in float_calls.items():
        if name in calls:  # layers kept by name (LayerNorm's affine keeps the LayerNorm's name)
            assert calls[name] == n, name
    ids = [id(w) for w in q.weights]
    assert len(ids) == len(set(ids))
    # the QAT model trains exactly the folded model's weights: nothing shared was duplicated
    trained = sum(int(np.prod(w.shape)) for w in q.trainable_weights)
    assert trained == fold_model(build(combo)).count_params()
    twin = "low_rank" if COMBOS[combo].get("rank") else "none"
    assert trained < fold_model(build(twin)).count_params()


@pytest.mark.parametrize("combo", QAT_COMBOS)
def test_qat_conformer_is_int8_in_tflm_like_litert(combo: str) -> None:
    _, data = _qat(combo)
    info = inspect_tflite(data)
    assert set(info.ops) <= tflm_supported_ops()
    assert {"BATCH_MATMUL", "SOFTMAX", "DEPTHWISE_CONV_2D", "LOGISTIC"} <= set(info.ops)
    x = int8_input(data, REP[:6])
    tflm, lite = run_tflm(data, x).astype(int), run_litert(data, x).astype(int)
    assert np.abs(tflm - lite).max() <= 8  # LSB ties amplified by int8 LayerNorm, see conformer
    # Each op held to 1 LSB wherever its inputs agree in both runtimes; one FULLY_CONNECTED tie
    # early on leaves the rest of a clip unjudged, so several clips are judged together.
    judged = [o for clip in x for o in op_agreement(data, clip) if o.max_abs_lsb_diff is not None]
    assert len({o.index for o in judged}) >= 20 and "FULLY_CONNECTED" in {o.op for o in judged}
    assert all(o.max_abs_lsb_diff <= 1 for o in judged), [o for o in judged if o.max_abs_lsb_diff]


@pytest.mark.parametrize("combo", QAT_COMBOS)
def test_qat_flatbuffer_stores_shared_weights_once(combo: str) -> None:
    _, data = _qat(combo)
    assert duplicate_buffers(data) == {}
    twin = "low_rank" if COMBOS[combo].get("rank") else "none"
    unshared = build(twin, batch_size=1)
    distinct_weights(unshared)
    base = to_int8_tflite(fold_model(unshared), REP)
    saved = _stored_once(unshared) - _stored_once(build(combo))
    assert saved > 0
    # each weight the sharing saves is a byte less than the unshared twin's PTQ file
    assert _constant_bytes(data) <= _constant_bytes(base) - saved
