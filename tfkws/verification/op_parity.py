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
    """One op of subgraph 0: its largest output difference (in LSB), if its inputs agreed."""

    index: int
    op: str
    output: str  # name of the op's first output tensor
    inputs_agree: bool
    max_abs_lsb_diff: int | None  # None when the inputs already differed


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

    def values(index: int) -> tuple[np.ndarray, np.ndarray]:
        a = np.asarray(tflm.GetTensor(index, 0)["tensor_data"]).reshape(-1).astype(np.int64)
        return a, lite.get_tensor(index).reshape(-1).astype(np.int64)

    out = []
    tensors = fb.subgraphs[0]
    for op in (o for o in fb.operators if o.subgraph == 0):
        live = [i for i in op.inputs if i >= 0 and not tensors[i].is_constant]
        agree = all(np.array_equal(*values(i)) for i in live)
        a, b = values(op.outputs[0])
        diff = int(np.abs(a - b).max()) if agree and a.size else None
        out.append(OpAgreement(op.index, op.op, tensors[op.outputs[0]].name, agree, diff))
    return out
