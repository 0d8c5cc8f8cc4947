"""Read and validate a ``.tflite`` flatbuffer in pure Python, before TFLM ever sees it.

TFLM trusts the flatbuffer it is given, so a truncated or bit-flipped model can crash the process.
Everything here reads the file with the schema module shipped with ``tflite_micro`` (the schema TFLM
was built from): a bad offset raises a Python exception, never a crash, and every index the
runtime follows (tensor, buffer, opcode, subgraph) is range-checked. TFLM itself then only runs in
a subprocess (``firmware_gen.probe``).

:func:`read_flatbuffer` is the one flatbuffer reader of the project (``tfkws.conversion.model_info``
describes models with it): structure only, any model. :func:`parse_model` adds what firmware_gen
needs on top (schema version 3, static shapes, integer compute, known ops).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import struct
from pathlib import Path

from firmware_gen.errors import FirmwareGenError

FILE_IDENTIFIER = b"TFL3"
# TFLM has a hard 2 GiB limit (32-bit offsets); nothing near that fits a microcontroller anyway.
MAX_MODEL_BYTES = 2**31 - 1

TYPE_SIZES = {
    "FLOAT32": 4,
    "FLOAT16": 2,
    "INT32": 4,
    "UINT8": 1,
    "INT64": 8,
    "BOOL": 1,
    "INT16": 2,
    "INT8": 1,
    "FLOAT64": 8,
    "UINT64": 8,
    "UINT32": 4,
    "UINT16": 2,
    "INT4": 1,
    "BFLOAT16": 2,
    "COMPLEX64": 8,
    "COMPLEX128": 16,
}
# Names given to what the schema does not know (parse_model refuses them as corrupt).
UNKNOWN_OP = "UNKNOWN_OP_"
# INT32 constants up to this size keep their values (loop bounds: ``firmware_gen.loops``).
SMALL_CONSTANT_BYTES = 64
UNKNOWN_TYPE = "TYPE"
# Float I/O around an int8 core (and a WHILE loop's float carried state, quantised inside its
# body).
FLOAT_IO_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})
# Ops that only move tensors between subgraphs; the ops of those subgraphs are checked themselves.
CONTROL_FLOW_OPS = frozenset({"WHILE", "IF", "CALL_ONCE"})
# Ops that may see float tensors in an otherwise integer model.
FLOAT_OK_OPS = FLOAT_IO_OPS | CONTROL_FLOW_OPS


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    return schema


def _enum_names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


@dataclasses.dataclass(frozen=True)
class Tensor:
    """One tensor: what the layer table and the generated header need."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    buffer_bytes: int  # constant data stored in the model (0 for activations)
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    # The values of a small INT32 constant (a loop's bounds and step), else None.
    value: tuple[int, ...] | None = None

    @property
    def is_constant(self) -> bool:
        return self.buffer_bytes > 0

    @property
    def num_elements(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.num_elements * TYPE_SIZES.get(self.dtype, 1)


@dataclasses.dataclass(frozen=True)
class Operator:
    """One operator of a subgraph, with the options the MAC count needs."""

    index: int
    subgraph: int
    op: str  # builtin name, e.g. "CONV_2D"; custom ops are "CUSTOM:<name>"
    inputs: tuple[int, ...]  # tensor indices, -1 for an omitted optional input
    outputs: tuple[int, ...]
    options: dict
    custom_code: str | None = None  # a custom op's code as stored ("" when absent); else None


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """A validated model: its bytes, tensors per subgraph and operators in execution order."""

    data: bytes
    sha256: str
    version: int
    description: str
    subgraphs: tuple[tuple[Tensor, ...], ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]  # tensor indices of subgraph 0
    outputs: tuple[int, ...]
    # (inputs, outputs) tensor indices of every subgraph (subgraph 0's are the two above).
    subgraph_io: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = ()

    @property
    def input_tensors(self) -> list[Tensor]:
        return [self.subgraphs[0][i] for i in self.inputs]

    @property
    def output_tensors(self) -> list[Tensor]:
        return [self.subgraphs[0][i] for i in self.outputs]

    def tensor(self, subgraph: int, index: int) -> Tensor:
        return self.subgraphs[subgraph][index]

    @property
    def op_names(self) -> list[str]:
        """Distinct op names, sorted (the resolver registers each once)."""
        return sorted({o.op for o in self.operators})


def read_model_file(path: str | Path) -> bytes:
    """Read the file, turning OS errors into one clear line."""
    path = Path(path)
    try:
        if path.is_dir():
            raise FirmwareGenError(f"{path}: is a directory, not a .tflite file")
        return path.read_bytes()
    except FirmwareGenError:
        raise
    except OSError as e:
        raise FirmwareGenError(f"{path}: cannot read model ({e.strerror or e})") from None


def _options_dict(options) -> dict:
    """Plain dict of the scalar fields of a builtin options object (for MAC formulas)."""
    if options is None:
        return {}
    return {k: v for k, v in vars(options).items() if isinstance(v, (int, float, str, bool))}


def parse_model(data: bytes, source: str = "model") -> ModelInfo:
    """Validate and parse ``data`` as firmware_gen can use it; :class:`FirmwareGenError` naming
    ``source`` if it is corrupt (:func:`read_flatbuffer`) or not a static-shape integer model."""
    info = read_flatbuffer(data, source)
    if info.version != 3:
        raise FirmwareGenError(f"{source}: unsupported schema version {info.version} (need 3)")
    for op in info.operators:
        if op.op.startswith(UNKNOWN_OP):
            raise FirmwareGenError(
                f"{source}: corrupt flatbuffer (unknown builtin op code {op.op[len(UNKNOWN_OP) :]})"
            )
    for tensors in info.subgraphs:
        for t in tensors:
            if t.dtype.startswith(UNKNOWN_TYPE):
                raise FirmwareGenError(
                    f"{source}: corrupt flatbuffer (tensor {t.index} type "
                    f"{t.dtype[len(UNKNOWN_TYPE) :]})"
                )
            if any(d < 0 for d in t.shape):
                raise FirmwareGenError(
                    f"{source}: tensor '{t.name}' has a dynamic shape {list(t.shape)}; TFLM needs "
                    "static shapes (export with a fixed batch size of 1)"
                )
    if not any(o.subgraph == 0 for o in info.operators):
        raise FirmwareGenError(f"{source}: model has no operators")
    _check_integer(info, source)
    return info


def read_flatbuffer(data: bytes, source: str = "model") -> ModelInfo:
    """Read any ``.tflite`` (float or int8, dynamic shapes allowed) with every offset and index
    checked; :class:`FirmwareGenError` naming ``source`` if it is not a readable flatbuffer.

    Ops unknown to the schema are named ``UNKNOWN_OP_<code>``, tensor types ``TYPE<code>``.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise FirmwareGenError(f"{source}: model must be bytes")
    data = bytes(data)
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise FirmwareGenError(
            f"{source}: not a TFLite flatbuffer (no 'TFL3' identifier at byte 4)"
        )
    if len(data) > MAX_MODEL_BYTES:
        raise FirmwareGenError(f"{source}: model is larger than 2 GiB")
    root = int.from_bytes(data[0:4], "little")
    if root < 8 or root + 4 > len(data):
        raise FirmwareGenError(
            f"{source}: corrupt flatbuffer (root offset {root} outside the file)"
        )
    schema = _schema()
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
    except Exception as e:  # any read past the end, bad union type, bad utf-8 ...
        raise FirmwareGenError(
            f"{source}: corrupt or truncated flatbuffer ({type(e).__name__})"
        ) from None
    try:
        return _check(model, data, source, schema)
    except FirmwareGenError:
        raise
    except Exception as e:  # inconsistent but readable: report, never propagate a traceback
        raise FirmwareGenError(f"{source}: corrupt flatbuffer ({type(e).__name__}: {e})") from None


def _check(model, data: bytes, source: str, schema) -> ModelInfo:
    type_names = _enum_names(schema.TensorType)
    op_names = _enum_names(schema.BuiltinOperator)
    buffers = model.buffers or []
    opcodes = model.operatorCodes or []
    subgraphs = model.subgraphs or []
    if not subgraphs:
        raise FirmwareGenError(f"{source}: corrupt flatbuffer (no subgraphs)")
    for i, b in enumerate(buffers):
        if b.offset > 1 and b.offset + b.size > len(data):
            raise FirmwareGenError(f"{source}: truncated model (buffer {i} ends past the file)")
    codes: list[tuple[str, str | None]] = []  # (op name, custom code)
    for oc in opcodes:
        code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
        name = op_names.get(code, f"{UNKNOWN_OP}{code}")
        custom = None
        if name == "CUSTOM":
            custom = oc.customCode.decode("utf-8", "replace") if oc.customCode else ""
            name = f"CUSTOM:{custom or '?'}"
        codes.append((name, custom))

    all_tensors: list[tuple[Tensor, ...]] = []
    io: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    operators: list[Operator] = []
    for si, sg in enumerate(subgraphs):
        tensors = []
        for ti, t in enumerate(sg.tensors or []):
            dtype = type_names.get(t.type, f"{UNKNOWN_TYPE}{t.type}")
            shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
            name = t.name.decode("utf-8", "replace") if t.name else f"tensor_{ti}"
            if any(d < -1 for d in shape) or math.prod(max(d, 1) for d in shape) > 2**31:
                raise FirmwareGenError(
                    f"{source}: corrupt flatbuffer (tensor '{name}' shape {list(shape)})"
                )
            if not 0 <= t.buffer < max(len(buffers), 1):
                raise FirmwareGenError(
                    f"{source}: corrupt flatbuffer (tensor '{name}' buffer {t.buffer} of "
                    f"{len(buffers)})"
                )
            nbytes = 0
            if buffers:
                b = buffers[t.buffer]
                if b.data is not None and len(b.data):
                    nbytes = len(b.data)
                elif b.offset > 1:
                    if b.offset + b.size > len(data):
                        raise FirmwareGenError(
                            f"{source}: truncated model (buffer {t.buffer} ends past the file)"
                        )
                    nbytes = int(b.size)
            expected = math.prod(shape) * TYPE_SIZES.get(dtype, 1)
            if (
                nbytes
                and dtype in TYPE_SIZES  # not STRING, RESOURCE, VARIANT or unknown
                and dtype != "INT4"  # packed two per byte
                and min(shape, default=0) >= 0
                and t.sparsity is None
                and nbytes != expected
            ):
                raise FirmwareGenError(
                    f"{source}: corrupt flatbuffer (tensor '{name}' holds {nbytes} bytes, its "
                    f"shape {list(shape)} {dtype} needs {expected})"
                )
            q = t.quantization
            scale = tuple(
                float(s) for s in (q.scale if q is not None and q.scale is not None else [])
            )
            zp = tuple(
                int(z) for z in (q.zeroPoint if q is not None and q.zeroPoint is not None else [])
            )
            value = None
            if dtype == "INT32" and 0 < nbytes <= SMALL_CONSTANT_BYTES and nbytes == expected:
                if b.data is not None and len(b.data):
                    raw = bytes(b.data[:nbytes])
                else:  # stored after the flatbuffer (offset buffers)
                    raw = data[b.offset : b.offset + nbytes]
                value = struct.unpack(f"<{nbytes // 4}i", raw)
            tensors.append(Tensor(ti, name, shape, dtype, nbytes, scale, zp, value))
        n = len(tensors)

        def check_indices(idx, what, n=n, si=si):
            out = tuple(int(i) for i in (idx if idx is not None else []))
            if any(not -1 <= i < n for i in out):
                raise FirmwareGenError(
                    f"{source}: corrupt flatbuffer ({what} of subgraph {si} names a tensor "
                    f"outside 0..{n - 1})"
                )
            return out

        io.append((check_indices(sg.inputs, "inputs"), check_indices(sg.outputs, "outputs")))
        for oi, op in enumerate(sg.operators or []):
            if not 0 <= op.opcodeIndex < len(codes):
                raise FirmwareGenError(
                    f"{source}: corrupt flatbuffer (operator {oi} uses opcode {op.opcodeIndex} "
                    f"of {len(codes)})"
                )
            operators.append(
                Operator(
                    index=oi,
                    subgraph=si,
                    op=codes[op.opcodeIndex][0],
                    inputs=check_indices(op.inputs, f"operator {oi} inputs"),
                    outputs=check_indices(op.outputs, f"operator {oi} outputs"),
                    options=_options_dict(op.builtinOptions),
                    custom_code=codes[op.opcodeIndex][1],
                )
            )
        all_tensors.append(tuple(tensors))

    sg0 = subgraphs[0]
    inputs = tuple(int(i) for i in (sg0.inputs if sg0.inputs is not None else []))
    outputs = tuple(int(i) for i in (sg0.outputs if sg0.outputs is not None else []))
    if not inputs or not outputs or min(inputs + outputs) < 0:
        raise FirmwareGenError(f"{source}: corrupt flatbuffer (subgraph 0 has no inputs/outputs)")
    return ModelInfo(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        version=int(model.version),
        description=(model.description or b"").decode("utf-8", "replace"),
        subgraphs=tuple(all_tensors),
        operators=tuple(operators),
        subgraph_io=tuple(io),
        inputs=inputs,
        outputs=outputs,
    )


def _check_integer(info: ModelInfo, source: str) -> None:
    """Refuse float compute: firmware_gen is for int8 models (float I/O around them is fine)."""
    for op in info.operators:
        if op.op in FLOAT_OK_OPS:
            continue
        tensors = info.subgraphs[op.subgraph]
        for i in op.inputs + op.outputs:
            if i >= 0 and tensors[i].dtype in ("FLOAT32", "FLOAT16", "FLOAT64"):
                raise FirmwareGenError(
                    f"{source}: float model (operator {op.index} {op.op} computes in "
                    f"{tensors[i].dtype} on '{tensors[i].name}'); quantise it to int8 first"
                )
    if not any(t.dtype in ("INT8", "UINT8", "INT16") for t in info.subgraphs[0]):
        raise FirmwareGenError(f"{source}: model has no int8 tensors; quantise it to int8 first")
