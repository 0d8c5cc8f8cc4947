"""``compact_tflite``: fewer bytes of graph overhead, the same model for every reader."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conformer_helpers import INPUT, build

from tfkws.conversion.compact_tflite import compact_tflite, size_breakdown
from tfkws.conversion.dedup_buffers import read_model
from tfkws.conversion.tflite_convert import to_int8_tflite
from tfkws.folding.fold import fold_model
from tfkws.verification.litert import run_litert
from tfkws.verification.tflm import run_tflm

REP = np.random.default_rng(7).normal(size=(16, *INPUT)).astype(np.float32)


@functools.cache
def _export(combo: str) -> bytes:
    return to_int8_tflite(fold_model(build(combo, batch_size=1)), REP)


def _tensors(data: bytes) -> list[tuple]:
    """Everything an interpreter reads of each tensor, except its name."""
    model = read_model(data)
    out = []
    for t in model.subgraphs[0].tensors:
        q = t.quantization
        buf = model.buffers[t.buffer].data
        out.append(
            (
                tuple(t.shape),
                t.type,
                None if buf is None else np.asarray(buf, np.uint8).tobytes(),
                None if q is None or q.scale is None else tuple(np.asarray(q.scale).tolist()),
                None if q is None or q.zeroPoint is None else tuple(q.zeroPoint.tolist()),
                None if q is None else q.quantizedDimension,
            )
        )
    return out


def _ops(data: bytes) -> list[tuple]:
    model = read_model(data)
    return [
        (model.operatorCodes[o.opcodeIndex].builtinCode, tuple(o.inputs), tuple(o.outputs))
        for o in model.subgraphs[0].operators
    ]


@pytest.mark.parametrize("combo", ["none", "all"])
def test_same_model_fewer_bytes(combo: str) -> None:
    data = _export(combo)
    x = np.random.default_rng(1).integers(-128, 128, size=(4, *INPUT)).astype(np.int8)
    kept = compact_tflite(data, strip_names=False)
    small = compact_tflite(data)
    assert len(small) < len(kept) < len(data)
    for out in (kept, small):
        assert _tensors(out) == _tensors(data) and _ops(out) == _ops(data)
        np.testing.assert_array_equal(run_tflm(out, x), run_tflm(data, x))
        np.testing.assert_array_equal(run_litert(out, x), run_litert(data, x))
    before, after = size_breakdown(data), size_breakdown(small)
    assert after.constant_bytes == before.constant_bytes
    assert after.overhead_bytes < before.overhead_bytes
    assert after.buffers < before.buffers  # the per-tensor empty buffers are gone
    graph = read_model(small).subgraphs[0]
    named = [i for i, t in enumerate(graph.tensors) if t.name]
    assert sorted(named) == sorted({*graph.inputs, *graph.outputs})
    assert compact_tflite(small) == small  # nothing left to share


def test_firmware_gen_reads_a_compacted_model(tmp_path) -> None:
    from firmware_gen.pipeline import generate

    path = tmp_path / "m.tflite"
    path.write_bytes(compact_tflite(_export("all")))
    res = generate(path, tmp_path / "fw", name="m")
    assert res.report["model_bytes"] == path.stat().st_size
    assert (tmp_path / "fw" / "m_model_data.cc").exists()


def test_per_tensor_dense_weights_have_one_scale_and_run_in_tflm() -> None:
    model = fold_model(build("all", batch_size=1))
    data = to_int8_tflite(model, REP, per_channel_dense=False)
    fb = read_model(data)
    graph = fb.subgraphs[0]
    fc = [op for op in graph.operators if fb.operatorCodes[op.opcodeIndex].builtinCode == 9]  # FC
    assert fc and all(len(graph.tensors[op.inputs[1]].quantization.scale) == 1 for op in fc)
    per_channel = _export("all")
    assert len(data) < len(per_channel)
    x = np.random.default_rng(2).integers(-128, 128, size=(3, *INPUT)).astype(np.int8)
    assert run_tflm(data, x).shape == run_litert(data, x).shape == (3, 3)
    assert (run_tflm(data, x).argmax(-1) == run_litert(data, x).argmax(-1)).all()
