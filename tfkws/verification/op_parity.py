"""TFLM vs LiteRT op by op: which kernel, fed the same int8 inputs, rounds differently.

The end-to-end comparison (``tfkws.verification.parity``) cannot tell a kernel that is off by an
LSB from one LSB carried through and amplified downstream (an int8 LayerNorm divides by a
per-token deviation). Here both runtimes keep every tensor; each op whose non-constant inputs
are bit-identical in the two is judged on its own output.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from firmware_gen.model import read_flatbuffer
from tfkws.conversion.model_info import source_name
from tfkws.errors import ModelError
from tfkws.verification.tflm import tflm_interpreter


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
    try:
        tflm.set_input(x, 0)
        tflm.invoke()
        lite.set_tensor(lite.get_input_details()[0]["index"], x)
        lite.invoke()
    except (RuntimeError, ValueError) as err:
        raise ModelError(f"{where}: could not run it op by op ({err})") from err

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
