"""Store identical constant buffers of a .tflite once: flash that shows weight sharing.

The TFLite converter keeps one buffer for a weight that one layer object uses in several places
(measured, conversion-facts.md), but a rewrite that turns one shared constant into per-use
copies (a fused scale, a transposed kernel) leaves byte-identical buffers behind. This post-pass
points every tensor at the first buffer with the same bytes and empties the others; the model
computes exactly the same (same bytes, each tensor keeps its own type, shape and quantisation).
Buffers referenced by metadata are left alone. A model without duplicates is returned as is,
byte for byte.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfkws.errors import ModelError

FILE_IDENTIFIER = b"TFL3"
# Buffer data alignment the converter itself uses (TFLM reads int32 biases in place).
ALIGNMENT = 16


def _schema() -> Any:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    return schema


def read_model(data: bytes) -> Any:
    schema = _schema()
    try:
        return schema.ModelT.InitFromObj(schema.Model.GetRootAs(bytes(data), 0))
    except Exception as err:  # a corrupt flatbuffer: any read past the end
        raise ModelError(f"not a readable .tflite flatbuffer ({type(err).__name__})") from err


def duplicate_buffers(data: bytes) -> dict[int, int]:
    """``{buffer index: index of the first buffer with the same bytes}`` over non-empty buffers
    that only tensors reference (empty when the model stores every constant once)."""
    model = read_model(data)
    pinned = {m.buffer for m in (model.metadata or [])}
    first: dict[bytes, int] = {}
    dups: dict[int, int] = {}
    used = sorted({t.buffer for g in model.subgraphs for t in (g.tensors or [])})
    for index in used:
        buf = model.buffers[index]
        if index in pinned or buf.data is None or len(buf.data) == 0 or buf.offset:
            continue
        key = np.asarray(buf.data, np.uint8).tobytes()
        if key in first:
            dups[index] = first[key]
        else:
            first[key] = index
    return dups


def aligned_buffer(buf: Any) -> Any:
    """``buf`` whose ``Pack`` writes its data aligned to ``ALIGNMENT`` bytes."""
    schema = _schema()

    class AlignedBuffer(schema.BufferT):
        def Pack(self, builder: Any) -> int:  # noqa: N802 (flatbuffers' name)
            data = None
            if self.data is not None:
                payload = np.asarray(self.data, np.uint8).tobytes()
                builder.StartVector(1, len(payload), ALIGNMENT)
                builder.head = builder.head - len(payload)
                builder.Bytes[builder.head : builder.head + len(payload)] = payload
                builder.vectorNumElems = len(payload)
                data = builder.EndVector()
            schema.BufferStart(builder)
            if data is not None:
                schema.BufferAddData(builder, data)
            schema.BufferAddOffset(builder, self.offset)
            schema.BufferAddSize(builder, self.size)
            return schema.BufferEnd(builder)

    out = AlignedBuffer()
    out.data, out.offset, out.size = buf.data, buf.offset, buf.size
    return out


def dedup_buffers(data: bytes) -> bytes:
    """``data`` with every duplicated constant buffer stored once (module doc)."""
    dups = duplicate_buffers(data)
    if not dups:
        return bytes(data)
    import flatbuffers

    model = read_model(data)
    for graph in model.subgraphs:
        for tensor in graph.tensors or []:
            tensor.buffer = dups.get(tensor.buffer, tensor.buffer)
    for index in dups:
        model.buffers[index].data = None
    model.buffers = [aligned_buffer(b) for b in model.buffers]
    builder = flatbuffers.Builder(len(data))
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())
