"""TFLM vs LiteRT op by op: which kernel, fed the same int8 inputs, rounds differently.

The end-to-end comparison (``tfkws.verification.parity``) cannot tell a kernel that is off by an
LSB from one LSB carried through and amplified downstream (an int8 LayerNorm divides by a
per-token deviation). ``op_agreement``: both runtimes keep every tensor; each op whose
non-constant inputs are bit-identical in the two is judged on its own output. After the first
differing LSB few ops qualify, so ``isolated_op_agreement`` runs every op as a one-op model in
both runtimes, fed the inputs it had in TFLM: each kernel judged on its own arithmetic.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from firmware_gen.model import CONTROL_FLOW_OPS, read_flatbuffer
from tfkws.conversion.dedup_buffers import FILE_IDENTIFIER, read_model
from tfkws.conversion.model_info import source_name
from tfkws.errors import ModelError
from tfkws.verification.tflm import capture_c_stderr, tflm_interpreter


@dataclasses.dataclass(frozen=True)
class OpAgreement:
    """One op: its largest output difference (in LSB), if its inputs agreed and its output is
    an integer tensor (a DEQUANTIZE's float output is not judged)."""

    index: int
    op: str
    output: str  # name of the op's first output tensor
    inputs_agree: bool
    max_abs_lsb_diff: int | None  # None when the inputs already differed
    subgraph: int = 0


@contextlib.contextmanager
def _op_by_op(where: str) -> Iterator[None]:
    """A runtime's failure to run the whole model, as the one-line error every caller gives."""
    try:
        yield
    except (RuntimeError, ValueError) as err:
        raise ModelError(f"{where}: could not run it op by op ({err})") from err


def op_agreement(
    model_bytes: bytes, clip: np.ndarray, path: str | os.PathLike | None = None
) -> list[OpAgreement]:
    """Run one int8 ``clip`` (input shape without batch) through TFLM and LiteRT's reference
    kernels, keeping every tensor, and compare op by op (module doc)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    where = source_name(path)
    fb = read_flatbuffer(bytes(model_bytes), where)
    tflm, _ = tflm_interpreter(model_bytes, path=path, preserve_all_tensors=True)
    lite = Interpreter(
        model_content=bytes(model_bytes),
        num_threads=1,
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True,
    )
    lite.allocate_tensors()
    x = np.asarray(clip)[None]
    with _op_by_op(where):
        tflm.set_input(x, 0)
        tflm.invoke()
        lite.set_tensor(lite.get_input_details()[0]["index"], x)
        lite.invoke()

    def values(index: int, subgraph: int) -> tuple[np.ndarray, np.ndarray]:
        a = np.asarray(tflm.GetTensor(index, subgraph)["tensor_data"]).reshape(-1)
        return a, np.asarray(lite.get_tensor(index, subgraph)).reshape(-1)

    # Every subgraph: a WHILE body's tensors hold its last iteration (both runtimes keep them).
    out = []
    for op in fb.operators:
        tensors = fb.subgraphs[op.subgraph]
        live = [i for i in op.inputs if i >= 0 and not tensors[i].is_constant]
        agree = all(np.array_equal(*values(i, op.subgraph)) for i in live)
        a, b = values(op.outputs[0], op.subgraph)
        judged = agree and a.size and a.dtype.kind in "iu"  # LSB: integer outputs only
        diff = int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max()) if judged else None
        name = tensors[op.outputs[0]].name
        out.append(OpAgreement(op.index, op.op, name, agree, diff, op.subgraph))
    return out


# Ops not run alone: control flow calls other subgraphs (their ops are run alone instead) and
# resource variables live across ops.
_NOT_ALONE = CONTROL_FLOW_OPS | {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"}


def _buffer_bytes(model: Any, data: bytes, index: int) -> bytes | None:
    """A constant buffer's bytes (also one stored past the flatbuffer), else None."""
    b = model.buffers[index] if 0 <= index < len(model.buffers or []) else None
    if b is None:
        return None
    if b.data is not None and len(b.data):
        return np.asarray(b.data, np.uint8).tobytes()
    if b.offset and b.offset > 1:
        return bytes(data[b.offset : b.offset + b.size])
    return None


def single_op_model(model: Any, data: bytes, subgraph: int, index: int) -> tuple[bytes, list[int]]:
    """Operator ``index`` of ``subgraph`` as a .tflite of its own: its non-constant inputs are
    the graph's inputs (returned as the original tensor indices, in order), its constants are
    copied, its outputs are the graph's outputs."""
    import copy

    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    g = model.subgraphs[subgraph]
    op = g.operators[index]
    used = [int(i) for i in dict.fromkeys([*op.inputs, *op.outputs]) if i >= 0]
    remap = {old: new for new, old in enumerate(used)}
    buffers, tensors, inputs = [schema.BufferT()], [], []
    for old in used:
        t = copy.copy(g.tensors[old])
        raw = _buffer_bytes(model, data, t.buffer)
        t.buffer = 0
        if raw is not None:
            buf = schema.BufferT()
            buf.data = np.frombuffer(raw, np.uint8)
            buffers.append(buf)
            t.buffer = len(buffers) - 1
        elif old not in op.outputs:
            inputs.append(old)
        tensors.append(t)
    alone = copy.copy(op)
    alone.inputs = [remap.get(int(i), -1) for i in op.inputs]
    alone.outputs = [remap[int(i)] for i in op.outputs]
    alone.intermediates = None
    sub = schema.SubGraphT()
    sub.tensors, sub.operators = tensors, [alone]
    sub.inputs = [remap[i] for i in inputs]
    sub.outputs = list(alone.outputs)
    out = schema.ModelT()
    out.version, out.operatorCodes, out.subgraphs, out.buffers = (
        3,
        model.operatorCodes,
        [sub],
        buffers,
    )
    out.description = "one op"
    builder = flatbuffers.Builder(1024)
    builder.Finish(out.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output()), inputs


def _tflm_inputs_of_ops(
    model_bytes: bytes, fb: Any, clips: np.ndarray, path: str | os.PathLike | None, where: str
) -> list[dict[tuple[int, int], np.ndarray]]:
    """Per clip: every non-constant op input (subgraph, tensor) as TFLM computed it on the whole
    model (a WHILE body's: its last iteration)."""
    needed = {
        (op.subgraph, i)
        for op in fb.operators
        for i in op.inputs
        if i >= 0 and not fb.subgraphs[op.subgraph][i].is_constant
    }
    tflm, _ = tflm_interpreter(model_bytes, path=path, preserve_all_tensors=True)
    out = []
    for clip in clips:
        with _op_by_op(where):
            tflm.set_input(np.asarray(clip)[None], 0)
            tflm.invoke()
        out.append({(g, i): np.array(tflm.GetTensor(i, g)["tensor_data"]) for g, i in needed})
        tflm.reset()
    return out


def isolated_op_agreement(
    model_bytes: bytes, clips: np.ndarray, path: str | os.PathLike | None = None
) -> list[list[OpAgreement]]:
    """Per int8 clip of ``clips`` [N, *input_shape[1:]]: every op run alone in TFLM and in
    LiteRT's reference kernels, fed the inputs it had when TFLM ran the whole model on that
    clip: each op judged on its own arithmetic, wherever rounding elsewhere took the two
    runtimes apart (``op_agreement`` judges only ops whose inputs still agree). Each one-op
    model is built once for all clips. Control-flow and variable ops are not run alone (listed,
    not judged; a WHILE body's ops are run alone, with the tensors of its last iteration)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tflite_micro.python.tflite_micro import runtime

    where = source_name(path)
    fb = read_flatbuffer(bytes(model_bytes), where)
    model = read_model(model_bytes)
    seen = _tflm_inputs_of_ops(model_bytes, fb, clips, path, where)
    out: list[list[OpAgreement]] = [[] for _ in seen]
    for op in fb.operators:
        tensors = fb.subgraphs[op.subgraph]
        name = tensors[op.outputs[0]].name if op.outputs else ""
        if op.op in _NOT_ALONE:
            for per_clip in out:
                per_clip.append(OpAgreement(op.index, op.op, name, False, None, op.subgraph))
            continue
        alone, inputs = single_op_model(model, model_bytes, op.subgraph, op.index)
        used = {i for i in (*op.inputs, *op.outputs) if i >= 0}
        arena = 4 * (len(alone) + sum(tensors[i].nbytes for i in used)) + 65536
        lite = Interpreter(
            model_content=alone,
            num_threads=1,
            experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        )
        results = []  # per clip: (TFLM outputs, LiteRT outputs)
        try:
            lite.allocate_tensors()
            with capture_c_stderr():
                micro = runtime.Interpreter.from_bytes(alone, arena_size=arena)
            for values in seen:
                for k, i in enumerate(inputs):
                    x = values[(op.subgraph, i)].reshape(tensors[i].shape)
                    micro.set_input(x, k)
                    lite.set_tensor(lite.get_input_details()[k]["index"], x)
                micro.invoke()
                lite.invoke()
                results.append(
                    (
                        [np.array(micro.get_output(k)) for k in range(len(op.outputs))],
                        [
                            np.asarray(lite.get_tensor(d["index"]))
                            for d in lite.get_output_details()
                        ],
                    )
                )
        except (RuntimeError, ValueError) as err:
            raise ModelError(
                f"{where}: op {op.index} {op.op} of subgraph {op.subgraph} does not run alone "
                f"({err})"
            ) from err
        for (micro_out, lite_out), per_clip in zip(results, out, strict=True):
            diff: int | None = 0
            for a, b in zip(micro_out, lite_out, strict=True):
                if a.dtype.kind not in "iub":  # a DEQUANTIZE's float output: not judged in LSB
                    diff = None
                    break
                a, b = a.astype(np.int64).reshape(-1), b.astype(np.int64).reshape(-1)
                diff = max(diff, int(np.abs(a - b).max()) if a.size else 0)
            per_clip.append(OpAgreement(op.index, op.op, name, True, diff, op.subgraph))
    return out
