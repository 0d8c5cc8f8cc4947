"""Shrink a .tflite's graph overhead without changing what any interpreter computes.

The converter writes every small array on its own: each per-channel weight carries a zero-point
vector of int64 zeros (8 bytes a channel), every tensor its own shape vector, every tensor without
data its own empty buffer, and every tensor a long TF name (``model/layer/Tensordot;...``). On a
weight-shared conformer this overhead was three times the constant data. This post-pass rewrites
the flatbuffer so that:

* identical vectors (zero points, scales, shapes, op input/output lists ...) are stored once and
  referenced from every table that has them -- flatbuffers allow any number of references to a
  vector (as ``CreateSharedString`` does for strings); the values every reader sees are the same;
* tensors without data all reference buffer 0 (the schema's empty sentinel) and the converter's
  per-tensor empty buffers are dropped;
* with ``strip_names``, tensor names are removed except those of the model's inputs and outputs
  (TFLM does not read them; ``firmware_gen`` shows ``tensor_<i>`` instead).

Tensor order, types, shapes, quantisation parameters, constant bytes (kept 16-byte aligned) and
operators are unchanged, so TFLM and LiteRT give identical outputs (the tests check it).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from tfkws.conversion.dedup_buffers import FILE_IDENTIFIER, aligned_buffer, read_model


@dataclasses.dataclass(frozen=True)
class SizeBreakdown:
    """Where a .tflite's bytes go (``constant_bytes``: buffers the tensors use, each once)."""

    total_bytes: int
    constant_bytes: int
    name_bytes: int
    quantization_entries: int
    tensors: int
    operators: int
    buffers: int

    @property
    def overhead_bytes(self) -> int:
        return self.total_bytes - self.constant_bytes


def size_breakdown(data: bytes) -> SizeBreakdown:
    """Constant data, tensor name bytes and quantisation entries of a .tflite (all subgraphs)."""
    model = read_model(data)
    graphs = model.subgraphs or []
    used = {t.buffer for g in graphs for t in (g.tensors or [])}
    tensors = [t for g in graphs for t in (g.tensors or [])]
    return SizeBreakdown(
        total_bytes=len(data),
        constant_bytes=sum(
            len(model.buffers[i].data) for i in used if model.buffers[i].data is not None
        ),
        name_bytes=sum(len(t.name or b"") for t in tensors),
        quantization_entries=sum(
            len(t.quantization.scale)
            for t in tensors
            if t.quantization is not None and t.quantization.scale is not None
        ),
        tensors=len(tensors),
        operators=sum(len(g.operators or []) for g in graphs),
        buffers=len(model.buffers or []),
    )


def _shared_vectors_builder(size: int) -> Any:
    """A flatbuffers ``Builder`` that writes each distinct numpy vector once."""
    import flatbuffers

    class SharedVectorBuilder(flatbuffers.Builder):
        def __init__(self, initial: int) -> None:
            super().__init__(initial)
            self.vectors: dict[tuple[str, bytes], int] = {}

        def CreateNumpyVector(self, x: np.ndarray) -> int:  # noqa: N802 (flatbuffers' name)
            key = (x.dtype.str, np.ascontiguousarray(x).tobytes())
            if key not in self.vectors:
                self.vectors[key] = super().CreateNumpyVector(x)
            return self.vectors[key]

    return SharedVectorBuilder(size)


def _as_numpy(obj: Any, fields: tuple[tuple[str, Any], ...]) -> None:
    """List fields of a schema object as numpy arrays: the generated ``Pack`` then writes them
    through ``CreateNumpyVector`` (where the builder shares them)."""
    for name, dtype in fields:
        value = getattr(obj, name, None)
        if value is not None and not isinstance(value, np.ndarray):
            setattr(obj, name, np.asarray(value, dtype))


def compact_tflite(data: bytes, strip_names: bool = True) -> bytes:
    """``data`` with its graph overhead reduced (module doc); same computation, fewer bytes."""
    model = read_model(data)
    graphs = model.subgraphs or []
    pinned = {m.buffer for m in (model.metadata or [])} | set(model.metadataBuffer or [])
    keep = [0] + [
        i
        for i, b in enumerate(model.buffers or [])
        if i and (i in pinned or b.data is not None and len(b.data) or b.offset)
    ]
    remap = {old: new for new, old in enumerate(keep)}
    for graph in graphs:
        io = {
            *(graph.inputs if graph.inputs is not None else []),
            *(graph.outputs if graph.outputs is not None else []),
        }
        for index, tensor in enumerate(graph.tensors or []):
            tensor.buffer = remap.get(tensor.buffer, 0)
            if strip_names and index not in io:
                tensor.name = None
            _as_numpy(tensor, (("shape", np.int32), ("shapeSignature", np.int32)))
            if tensor.quantization is not None:
                _as_numpy(tensor.quantization, (("scale", np.float32), ("zeroPoint", np.int64)))
        for op in graph.operators or []:
            _as_numpy(op, (("inputs", np.int32), ("outputs", np.int32)))
    for meta in model.metadata or []:
        meta.buffer = remap[meta.buffer]
    if model.metadataBuffer is not None:
        model.metadataBuffer = [remap[i] for i in model.metadataBuffer]
    model.buffers = [aligned_buffer(model.buffers[i]) for i in keep]
    builder = _shared_vectors_builder(len(data))
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())
