"""Run a .tflite with LiteRT's reference kernels, the yardstick TFLM's int8 output is checked on.

The reference op resolver (no XNNPACK, no optimised kernels) computes the same integer
arithmetic TFLM's reference kernels do, so the two should agree to the LSB.
"""

from __future__ import annotations

import os

import numpy as np

from tfkws.conversion.model_info import inspect_tflite, source_name
from tfkws.errors import ModelError


def run_litert(
    model_bytes: bytes,
    inputs: np.ndarray,
    reference: bool = True,
    path: str | os.PathLike | None = None,
) -> np.ndarray:
    """Outputs [N, ...] of the model on ``inputs`` [N, *input_shape[1:]] (model's input dtype).

    ``reference=True`` uses ``OpResolverType.BUILTIN_REF`` for a bit-exact comparison with TFLM.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    where = source_name(path)
    info = inspect_tflite(model_bytes, path)
    resolver = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    try:
        interp = Interpreter(
            model_content=bytes(model_bytes),
            num_threads=1,
            experimental_op_resolver_type=resolver,
        )
        interp.allocate_tensors()
    except (RuntimeError, ValueError) as err:
        raise ModelError(f"{where}: LiteRT could not load it ({err})") from err
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    x = np.asarray(inputs)
    clip_shape = tuple(int(d) for d in inp["shape"][1:])
    if x.shape == clip_shape:
        x = x[None]
    if tuple(x.shape[1:]) != clip_shape or x.dtype != inp["dtype"]:
        raise ModelError(
            f"{where}: inputs {x.dtype}{list(x.shape)} do not match the model input "
            f"{np.dtype(inp['dtype']).name}{list(info.input_shape)}"
        )
    outs = []
    for clip in x:
        interp.set_tensor(inp["index"], clip[None])
        interp.invoke()
        outs.append(interp.get_tensor(out["index"])[0].copy())
    if not outs:
        return np.zeros((0, *info.output_shape[1:]), out["dtype"])
    return np.stack(outs)
