"""Read a .tflite flatbuffer with the schema alone: ops, I/O shapes, types and quantisation.

The buffer is checked structurally here BEFORE any interpreter sees it: the TFLM interpreter
has no flatbuffer verifier and a corrupt or truncated file can crash the process instead of
raising.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from typing import Any

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from tfkws.errors import ModelError

_OP_NAMES = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k.lower() for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
_CUSTOM = fb.BuiltinOperator.CUSTOM


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str  # "int8", "float32", ...
    scale: float | None  # None when not quantised
    zero_point: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "dtype": self.dtype,
            "scale": self.scale,
            "zero_point": self.zero_point,
        }


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a .tflite holds, read from the flatbuffer without running it.

    ``input_*`` / ``output_*`` describe the first input / output (KWS models have one each);
    ``inputs`` / ``outputs`` hold them all. Scale / zero point are None when not quantised.
    """

    ops: tuple[str, ...]  # sorted unique builtin names; custom ops as their custom code
    input_shape: tuple[int, ...]
    input_dtype: str
    input_scale: float | None
    input_zero_point: int | None
    output_shape: tuple[int, ...]
    output_dtype: str
    output_scale: float | None
    output_zero_point: int | None
    tensor_count: int
    subgraph_count: int
    operator_count: int
    size_bytes: int
    custom_ops: tuple[str, ...]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    float_tensors: tuple[str, ...]  # names of float tensors (none in a fully int8 graph)
    float_ops: tuple[str, ...]  # ops reading or writing a float tensor (none when fully int8)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (what ``tfkws info`` prints)."""
        return {
            "ops": list(self.ops),
            "custom_ops": list(self.custom_ops),
            "input": self.inputs[0].as_dict(),
            "output": self.outputs[0].as_dict(),
            "num_inputs": len(self.inputs),
            "num_outputs": len(self.outputs),
            "tensor_count": self.tensor_count,
            "subgraph_count": self.subgraph_count,
            "operator_count": self.operator_count,
            "size_bytes": self.size_bytes,
        }


def source_name(path: str | os.PathLike | None) -> str:
    """How error messages name a model: its path, or ``<model bytes>``."""
    return str(path) if path is not None else "<model bytes>"


def op_name(opcode: Any) -> str:
    """Builtin op name (``CONV_2D``) of an ``OperatorCode``, or the custom code for customs."""
    code = max(opcode.BuiltinCode(), opcode.DeprecatedBuiltinCode())
    if code == _CUSTOM:
        custom = opcode.CustomCode()
        return custom.decode("utf-8", "replace") if custom else "CUSTOM"
    return _OP_NAMES.get(code, f"UNKNOWN_OP_{code}")


def _tensor_info(t: Any) -> TensorInfo:
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    q = t.Quantization()
    scale = zp = None
    if q is not None and q.ScaleLength() > 0:
        scale = float(q.Scale(0))
        zp = int(q.ZeroPoint(0)) if q.ZeroPointLength() > 0 else 0
    name = (t.Name() or b"").decode("utf-8", "replace")
    return TensorInfo(name, shape, _TYPE_NAMES.get(t.Type(), f"type{t.Type()}"), scale, zp)


def _check_offset(data: bytes, off: int, what: str, path: Any) -> None:
    if not 0 <= off < len(data):
        raise ModelError(f"{source_name(path)}: corrupt .tflite ({what} points outside the file)")


def _walk(data: bytes, path: Any) -> ModelInfo:
    where = source_name(path)
    model = fb.Model.GetRootAs(data, 0)
    _check_offset(data, struct.unpack_from("<I", data, 0)[0], "root table", path)
    if model.SubgraphsLength() < 1:
        raise ModelError(f"{where}: .tflite has no subgraph")
    n_buffers = model.BuffersLength()
    for i in range(n_buffers):
        buf = model.Buffers(i)
        if buf.DataLength():
            buf.DataAsNumpy()  # raises when the bytes run past the end of the file
        off, size = int(buf.Offset()), int(buf.Size())
        if off > 1 and off + size > len(data):
            raise ModelError(f"{where}: .tflite is truncated (buffer {i} past end of file)")
    # Full object-API parse: touches every table (op options, metadata, signatures) so that
    # anything the TFLM/LiteRT loaders would read is in bounds.
    fb.ModelT.InitFromObj(model)
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    names = [op_name(c) for c in codes]
    used: set[str] = set()
    customs: set[str] = set()
    tensor_count = operator_count = 0
    float_tensors: list[str] = []
    float_ops: set[str] = set()
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        n_t = sg.TensorsLength()
        tensor_count += n_t
        tensors = [_tensor_info(sg.Tensors(i)) for i in range(n_t)]
        for t in tensors:
            if any(d < -1 for d in t.shape) or np.prod(np.maximum(t.shape, 1), dtype=float) > 2**31:
                raise ModelError(f"{where}: corrupt .tflite (tensor {t.name!r} shape {t.shape})")
        for i in range(n_t):
            b = sg.Tensors(i).Buffer()
            if not 0 <= b < max(n_buffers, 1):
                raise ModelError(f"{where}: corrupt .tflite (tensor {i} buffer {b})")
        float_tensors += [t.name for t in tensors if t.dtype.startswith("float")]
        for k in range(sg.OperatorsLength()):
            op = sg.Operators(k)
            idx = op.OpcodeIndex()
            if not 0 <= idx < len(codes):
                raise ModelError(f"{where}: corrupt .tflite (operator {k} opcode {idx})")
            for arr in (op.InputsAsNumpy(), op.OutputsAsNumpy()):
                if isinstance(arr, np.ndarray) and ((arr < -1) | (arr >= n_t)).any():
                    raise ModelError(f"{where}: corrupt .tflite (operator {k} tensors)")
            used.add(names[idx])
            io_ids = [
                int(i)
                for arr in (op.InputsAsNumpy(), op.OutputsAsNumpy())
                if isinstance(arr, np.ndarray)
                for i in arr
                if i >= 0
            ]
            if any(tensors[i].dtype.startswith("float") for i in io_ids):
                float_ops.add(names[idx])
            if max(codes[idx].BuiltinCode(), codes[idx].DeprecatedBuiltinCode()) == _CUSTOM:
                customs.add(names[idx])
            operator_count += 1
        if s == 0:
            io = [sg.InputsAsNumpy(), sg.OutputsAsNumpy()]
            for arr in io:
                if not isinstance(arr, np.ndarray) or ((arr < 0) | (arr >= n_t)).any():
                    raise ModelError(f"{where}: corrupt .tflite (bad input/output list)")
            inputs = tuple(tensors[int(i)] for i in io[0])
            outputs = tuple(tensors[int(i)] for i in io[1])
    if not inputs or not outputs:
        raise ModelError(f"{where}: .tflite main subgraph has no input or no output")
    first_in, first_out = inputs[0], outputs[0]
    return ModelInfo(
        ops=tuple(sorted(used)),
        input_shape=first_in.shape,
        input_dtype=first_in.dtype,
        input_scale=first_in.scale,
        input_zero_point=first_in.zero_point,
        output_shape=first_out.shape,
        output_dtype=first_out.dtype,
        output_scale=first_out.scale,
        output_zero_point=first_out.zero_point,
        custom_ops=tuple(sorted(customs)),
        inputs=inputs,
        outputs=outputs,
        tensor_count=tensor_count,
        subgraph_count=model.SubgraphsLength(),
        operator_count=operator_count,
        size_bytes=len(data),
        float_tensors=tuple(float_tensors),
        float_ops=tuple(sorted(float_ops)),
    )


def inspect_tflite(model_bytes: bytes, path: str | os.PathLike | None = None) -> ModelInfo:
    """Validate and describe a .tflite; corrupt, truncated or non-TFLite data -> ModelError.

    ``path`` only names the file in error messages.
    """
    data = bytes(model_bytes)
    if len(data) < 16 or data[4:8] != b"TFL3":
        raise ModelError(
            f"{source_name(path)}: not a TensorFlow Lite flatbuffer (no 'TFL3' identifier)"
        )
    try:
        return _walk(data, path)
    except ModelError:
        raise
    except Exception as err:  # flatbuffers reads past the end / garbage offsets
        raise ModelError(
            f"{source_name(path)}: corrupt or truncated .tflite ({type(err).__name__}: {err})"
        ) from err


def read_tflite(path: str | os.PathLike) -> tuple[bytes, ModelInfo]:
    """Read and validate a .tflite file; a missing/unreadable file -> ModelError."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise ModelError(f"{path}: cannot read model ({err.strerror or err})") from err
    return data, inspect_tflite(data, path)


def require_int8(info: ModelInfo, path: str | os.PathLike | None = None) -> None:
    """ModelError unless every input and output is int8 with per-tensor quantisation."""
    for kind, tensors in (("input", info.inputs), ("output", info.outputs)):
        for t in tensors:
            if t.dtype != "int8" or t.scale is None:
                raise ModelError(
                    f"{source_name(path)}: model is not int8 ({kind} {t.name!r} is {t.dtype}"
                    f"{'' if t.scale is not None else ', not quantised'}); "
                    "export with full-integer quantisation"
                )
