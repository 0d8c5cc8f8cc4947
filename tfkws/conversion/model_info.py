"""What a .tflite holds: ops, I/O shapes, types and quantisation, read without running it.

The flatbuffer is read and checked structurally by ``firmware_gen.model.read_flatbuffer`` (the one
flatbuffer reader) BEFORE any interpreter sees it: the TFLM interpreter has no flatbuffer verifier
and a corrupt or truncated file can crash the process instead of raising.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from firmware_gen.errors import FirmwareGenError
from firmware_gen.model import CONTROL_FLOW_OPS, FILE_IDENTIFIER, read_flatbuffer
from firmware_gen.model import ModelInfo as Flatbuffer
from firmware_gen.model import Tensor as FlatbufferTensor
from tfkws.errors import ModelError


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


def _op_name(op: Any) -> str:
    """Builtin op name (``CONV_2D``), or the custom code for custom ops (``CUSTOM`` if none)."""
    if op.custom_code is not None:
        return op.custom_code or "CUSTOM"
    return op.op


def _tensor_info(t: FlatbufferTensor) -> TensorInfo:
    scale = float(t.scale[0]) if t.scale else None
    zp = (int(t.zero_point[0]) if t.zero_point else 0) if scale is not None else None
    return TensorInfo(t.name, t.shape, t.dtype.lower(), scale, zp)


def _describe(fb: Flatbuffer) -> ModelInfo:
    used: set[str] = set()
    customs: set[str] = set()
    float_ops: set[str] = set()
    for op in fb.operators:
        name = _op_name(op)
        used.add(name)
        if op.custom_code is not None:
            customs.add(name)
        tensors = fb.subgraphs[op.subgraph]
        if name in CONTROL_FLOW_OPS:
            continue  # moves tensors between subgraphs; the ops there are checked themselves
        if any(tensors[i].dtype.startswith("FLOAT") for i in op.inputs + op.outputs if i >= 0):
            float_ops.add(name)
    inputs = tuple(_tensor_info(t) for t in fb.input_tensors)
    outputs = tuple(_tensor_info(t) for t in fb.output_tensors)
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
        tensor_count=sum(len(ts) for ts in fb.subgraphs),
        subgraph_count=len(fb.subgraphs),
        operator_count=len(fb.operators),
        size_bytes=len(fb.data),
        float_tensors=tuple(
            t.name for ts in fb.subgraphs for t in ts if t.dtype.startswith("FLOAT")
        ),
        float_ops=tuple(sorted(float_ops)),
    )


def inspect_tflite(model_bytes: bytes, path: str | os.PathLike | None = None) -> ModelInfo:
    """Validate and describe a .tflite; corrupt, truncated or non-TFLite data -> ModelError.

    ``path`` only names the file in error messages.
    """
    data = bytes(model_bytes)
    where = source_name(path)
    if len(data) < 16 or data[4:8] != FILE_IDENTIFIER:
        raise ModelError(f"{where}: not a TensorFlow Lite flatbuffer (no 'TFL3' identifier)")
    try:
        return _describe(read_flatbuffer(data, where))
    except FirmwareGenError as err:
        raise ModelError(str(err)) from None


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
