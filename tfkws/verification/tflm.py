"""Run an int8 .tflite in the TFLM Python interpreter: the same kernels the microcontroller runs.

TFLM reports a missing kernel only on the C-level stderr and only for the first one, and it has
no flatbuffer verifier (a corrupt file can crash the process). So models are validated with
``inspect_tflite`` and their ops checked against ``tflm_supported_ops()`` before TFLM sees them;
the error then lists every missing op at once.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np

from firmware_gen.ops import op_table
from tfkws.conversion.model_info import ModelInfo, inspect_tflite, require_int8, source_name
from tfkws.errors import ModelError

# Builtin ops TFLM registers: firmware_gen's table (parsed from TFLM's
# micro_mutable_op_resolver.h, whose Add* methods the Python interpreter's resolver calls too);
# tests/test_tflm_ops.py ties it to the TFLM sources and to the installed interpreter.
TFLM_BUILTIN_OPS = frozenset(op_table()["builtin_ops"])
# Custom ops the TFLM Python interpreter registers (measured: a one-operator flatbuffer with this
# CUSTOM code, loaded in a fresh process; the resolver's AddDetectionPostprocess).
TFLM_CUSTOM_OPS = frozenset({"TFLite_Detection_PostProcess"})

_MISSING_RE = (
    re.compile(r"Didn't find op for builtin opcode '([A-Z0-9_]+)'"),
    re.compile(r"Didn't find op for custom opcode '([^']+)'"),
    re.compile(r"Failed to get registration from op code ([A-Z0-9_]+)"),
)
_MIN_AUTO_ARENA = 64 * 1024
_MAX_AUTO_ARENA = 256 * 1024 * 1024


def tflm_supported_ops() -> frozenset[str]:
    """Op names (builtin names and custom codes) the TFLM Python interpreter can run."""
    return TFLM_BUILTIN_OPS | TFLM_CUSTOM_OPS


def missing_tflm_ops(info: ModelInfo) -> list[str]:
    """Ops of the model that TFLM has no kernel for (sorted)."""
    return sorted(set(info.ops) - tflm_supported_ops())


def check_tflm_ops(info: ModelInfo, path: str | os.PathLike | None = None) -> None:
    """ModelError listing every op of ``info`` that TFLM lacks."""
    missing = missing_tflm_ops(info)
    if missing:
        where = source_name(path)
        raise ModelError(
            f"{where}: TFLM has no kernel for op(s) {', '.join(missing)} "
            "(a dynamic batch adds SHAPE/REDUCE_PROD: export with batch size 1)"
        )


@contextlib.contextmanager
def capture_c_stderr() -> Iterator[list[str]]:
    """Capture what C/C++ code writes to file descriptor 2 (TFLM's error reporter).

    Yields a list that holds the captured text once the block exits.
    """
    out: list[str] = []
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode("utf-8", "replace"))


def _tflm_message(err: Exception, log: str) -> str:
    missing = sorted({m for pat in _MISSING_RE for m in pat.findall(log)})
    if missing:
        return f"TFLM has no kernel for op(s) {', '.join(missing)}"
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    detail = "; ".join(lines[-3:]) if lines else str(err)
    return f"TFLM could not load it ({detail})"


def tflm_interpreter(
    model_bytes: bytes,
    arena_size: int | None = None,
    path: str | os.PathLike | None = None,
    preserve_all_tensors: bool = False,
) -> tuple[Any, ModelInfo]:
    """Validated TFLM interpreter for an int8 model, plus its ``ModelInfo``.

    With ``arena_size=None`` the arena starts at max(10 x model size, 64 KiB) and doubles until
    allocation succeeds (the Python interpreter's own default, 10 x model size, is too small
    for small models with large activations). ``preserve_all_tensors`` keeps every
    intermediate tensor readable (``GetTensor``), at the cost of a larger arena.
    """
    from tflite_micro.python.tflite_micro import runtime

    info = inspect_tflite(model_bytes, path)
    require_int8(info, path)
    check_tflm_ops(info, path)
    where = source_name(path)
    size = arena_size or max(10 * len(model_bytes), _MIN_AUTO_ARENA)
    config = (
        runtime.InterpreterConfig.kPreserveAllTensors
        if preserve_all_tensors
        else runtime.InterpreterConfig.kAllocationRecording  # the runtime's own default
    )
    while True:
        with capture_c_stderr() as log:
            try:
                interp = runtime.Interpreter.from_bytes(
                    bytes(model_bytes), arena_size=int(size), intrepreter_config=config
                )
                err: Exception | None = None
            except Exception as e:  # RuntimeError from C++; struct/TypeError from parsing
                err = e
        if err is None:
            return interp, info
        text = log[0] if log else ""
        arena_problem = "arena" in text.lower() or "Failed to allocate" in text
        if arena_size is None and arena_problem and size < _MAX_AUTO_ARENA:
            size *= 2
            continue
        raise ModelError(f"{where}: {_tflm_message(err, text)}") from err


def _check_inputs(inputs: np.ndarray, info: ModelInfo, where: str) -> np.ndarray:
    x = np.asarray(inputs)
    if x.dtype != np.int8:
        raise ModelError(f"{where}: inputs must be int8 (quantise features first), got {x.dtype}")
    clip_shape = tuple(info.input_shape[1:])
    if x.shape == clip_shape:
        x = x[None]
    if tuple(x.shape[1:]) != clip_shape:
        raise ModelError(
            f"{where}: inputs of shape {tuple(x.shape)} do not match the model input "
            f"{tuple(info.input_shape)} (expected [N, {', '.join(map(str, clip_shape))}])"
        )
    return x


def run_tflm(
    model_bytes: bytes,
    inputs: np.ndarray,
    arena_size: int | None = None,
    path: str | os.PathLike | None = None,
) -> np.ndarray:
    """int8 outputs [N, ...] of the model on int8 ``inputs`` [N, *input_shape[1:]], one by one.

    One interpreter, reset between clips so a stateful graph (variables) starts each clip fresh.
    """
    where = source_name(path)
    interp, info = tflm_interpreter(model_bytes, arena_size, path)
    x = _check_inputs(inputs, info, where)
    outs = []
    for clip in x:
        try:
            interp.set_input(clip[None], 0)
            interp.invoke()
        except (RuntimeError, ValueError) as err:
            raise ModelError(f"{where}: TFLM failed to run it ({err})") from err
        out = np.array(interp.get_output(0), dtype=np.int8)
        if out.size != int(np.prod(info.output_shape[1:])):
            raise ModelError(
                f"{where}: TFLM output has {out.size} values, the model declares "
                f"{list(info.output_shape)} (corrupt model?)"
            )
        outs.append(out.reshape(info.output_shape[1:]))
        interp.reset()
    if not outs:
        return np.zeros((0, *info.output_shape[1:]), np.int8)
    return np.stack(outs)
