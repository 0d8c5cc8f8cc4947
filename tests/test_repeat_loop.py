"""Repeated conformer layers exported as a WHILE loop: same function, ops stored once, int8 in
TFLM like LiteRT, MACs counted per iteration, and ``tfkws export --loop_repeats`` writes it."""

from __future__ import annotations

import functools
import json
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conformer_helpers import INPUT, build, int8_input
from helpers import subprocess_env, train_command

from firmware_gen.layers import layer_table, total_macs
from firmware_gen.loops import subgraph_runs, while_trips
from firmware_gen.model import parse_model, read_flatbuffer
from tfkws.conversion.model_info import inspect_tflite
from tfkws.conversion.repeat_loop import RepeatSpan, loop_repeats
from tfkws.conversion.tflite_convert import to_int8_tflite
from tfkws.errors import ModelError
from tfkws.folding.fold import fold_model
from tfkws.models.conformer import conformer_repeat_spans
from tfkws.verification.litert import run_litert
from tfkws.verification.op_parity import op_agreement
from tfkws.verification.tflm import run_tflm

REP = np.random.default_rng(3).normal(size=(16, *INPUT)).astype(np.float32)
# (combo, depth): one block twice; two blocks twice each; all four levels (one block twice).
CASES = (("repeat", 2), ("repeat", 4), ("all", 2))
COMPUTE = ("FULLY_CONNECTED", "BATCH_MATMUL", "CONV_2D", "DEPTHWISE_CONV_2D")


def _spans(combo: str, depth: int) -> list[RepeatSpan]:
    return [RepeatSpan(*s) for s in conformer_repeat_spans(**_params(combo, depth))]


def _params(combo: str, depth: int) -> dict:
    from conformer_helpers import COMBOS, TINY

    return {**TINY, **COMBOS[combo], "depth": depth}


@functools.cache
def _models(combo: str, depth: int) -> tuple:
    model = build(combo, batch_size=1, depth=depth)
    rng = np.random.default_rng(5)
    for w in model.weights:  # away from the initialisers' ones and zeros
        w.assign((rng.normal(scale=0.3, size=w.shape) + ("variance" in w.name)).astype(np.float32))
    folded = fold_model(model)
    return folded, loop_repeats(folded, _spans(combo, depth))


@functools.cache
def _export(combo: str, depth: int) -> tuple[bytes, bytes]:
    folded, looped = _models(combo, depth)
    return to_int8_tflite(folded, REP), to_int8_tflite(looped, REP)


@pytest.mark.parametrize(("combo", "depth"), CASES)
def test_looped_model_computes_what_the_folded_one_does(combo: str, depth: int) -> None:
    folded, looped = _models(combo, depth)
    x = REP[:4]
    np.testing.assert_allclose(looped(x).numpy(), folded(x).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("combo", "depth"), CASES)
def test_loop_stores_the_block_once_and_runs_in_tflm_like_litert(combo: str, depth: int) -> None:
    unrolled, looped = _export(combo, depth)
    info = inspect_tflite(looped)
    assert "WHILE" in info.ops and info.subgraph_count == 1 + 2 * (depth // 2)
    assert "WHILE" not in inspect_tflite(unrolled).ops
    assert info.operator_count < inspect_tflite(unrolled).operator_count
    assert len(looped) < len(unrolled)
    q = int8_input(looped, REP[:6])
    tflm, lite = run_tflm(looped, q).astype(int), run_litert(looped, q).astype(int)
    assert np.abs(tflm - lite).max() <= 8  # as the unrolled graphs (test_conformer_tflm)
    assert (tflm.argmax(-1) == lite.argmax(-1)).all()
    # Op by op (the loop body's last iteration included), 1 LSB wherever the inputs agree.
    ops = op_agreement(looped, q[0])
    judged = [o for o in ops if o.max_abs_lsb_diff is not None]
    assert all(o.max_abs_lsb_diff <= 1 for o in judged), [o for o in judged if o.max_abs_lsb_diff]
    body = [o for o in judged if o.subgraph > 0 and o.op == "FULLY_CONNECTED"]
    assert body, "no op of a loop body was compared"


@pytest.mark.parametrize(("combo", "depth"), CASES)
def test_macs_count_every_iteration(combo: str, depth: int) -> None:
    unrolled, looped = _export(combo, depth)
    info = parse_model(looped)
    runs, known = subgraph_runs(info)
    assert known
    bodies = [s for s, n in runs.items() if s and n == 2]  # each body twice, each cond 3 times
    assert len(bodies) == depth // 2 and sorted(runs.values()).count(3) == depth // 2

    def by_op(data: bytes) -> Counter:
        totals: Counter = Counter()
        for r in layer_table(parse_model(data)):
            totals[r["op"]] += r["macs"] * r["runs"]
        return totals

    loop_ops, flat_ops = by_op(looped), by_op(unrolled)
    assert sum(loop_ops[op] for op in COMPUTE) > 0
    # Every op type does the same work in both; the loop adds its QUANTIZE / DEQUANTIZE of the
    # carried state, its LESS, and a scalar counter ADD per iteration (at most one MAC each).
    for op in set(loop_ops) | set(flat_ops):
        if op not in ("QUANTIZE", "DEQUANTIZE", "LESS", "ADD", "WHILE"):
            assert loop_ops[op] == flat_ops[op], op
    assert 0 <= loop_ops["ADD"] - flat_ops["ADD"] <= sum(runs[s] for s in bodies)
    assert loop_ops["QUANTIZE"] > flat_ops["QUANTIZE"]
    assert total_macs(layer_table(info)) > total_macs(layer_table(parse_model(unrolled)))


def test_trip_count_of_a_counted_loop_and_none_otherwise(tmp_path: Path) -> None:
    def counted(x: tf.Tensor) -> tf.Tensor:  # i = 1, 4 -> 2 iterations
        return tf.while_loop(lambda i, h: i < 7, lambda i, h: (i + 3, h * 2.0), (1, x))[1]

    def unbounded(x: tf.Tensor) -> tf.Tensor:  # stops on the data, not on a counter
        return tf.while_loop(lambda h: tf.reduce_sum(h) < 100.0, lambda h: (h * 2.0,), (x,))[0]

    counts = []
    for fn in (counted, unbounded):
        spec = tf.TensorSpec((1, 4), tf.float32)
        conc = tf.function(fn).get_concrete_function(spec)
        data = tf.lite.TFLiteConverter.from_concrete_functions([conc]).convert()
        info = read_flatbuffer(data, "loop")
        op = next(o for o in info.operators if o.op == "WHILE")
        counts.append((while_trips(info, op), subgraph_runs(info)[1]))
    assert counts == [(2, True), (None, False)]


def test_spans_follow_the_repeat_and_bad_spans_are_model_errors() -> None:
    assert conformer_repeat_spans(repeat=1) == []
    assert conformer_repeat_spans(repeat=2, depth=4) == [
        ("positions", "block0_ln", 2),
        ("block0_ln", "block1_ln", 2),
    ]
    folded, _ = _models("repeat", 2)
    with pytest.raises(ModelError, match="no layer"):
        loop_repeats(folded, [RepeatSpan("positions", "nowhere", 2)])
    with pytest.raises(ModelError, match="applied 3 times"):
        loop_repeats(folded, [RepeatSpan("positions", "block0_ln", 3)])


@pytest.mark.slow
def test_export_writes_the_loop_when_asked(tone_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = train_command(tone_dataset, run, 1, 8, "", "--verbose=0")
    cmd[cmd.index("--model=ds_cnn")] = "--model=conformer"
    cmd[cmd.index("--params=")] = (
        "--params=dim=8,ff_dim=16,num_heads=2,depth=2,kernel_size=3,subsample_channels=2,repeat=2"
    )
    subprocess.run(cmd, check=True, env=subprocess_env(), capture_output=True)
    sizes = {}
    for flag in ("--loop_repeats", "--noloop_repeats"):
        out = tmp_path / f"{flag[2:]}.tflite"
        base = ["tfkws", "export", f"--run={run}", f"--out={out}", "--num_calibration=20", flag]
        subprocess.run(base, check=True, env=subprocess_env(), capture_output=True)
        meta = json.loads(out.with_suffix(".metadata.json").read_text())
        ops = inspect_tflite(out.read_bytes()).ops
        assert ("WHILE" in ops) == (flag == "--loop_repeats")
        assert ("repeat_loops" in meta) == (flag == "--loop_repeats")
        sizes[flag] = out.stat().st_size
    assert sizes["--loop_repeats"] < sizes["--noloop_repeats"]
