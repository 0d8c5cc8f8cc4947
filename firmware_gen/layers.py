"""Per-layer table and compute: op, output shape, tensor bytes and MACs for every operator.

MAC formulas (one multiply-accumulate = 1; batch included in the output element count):

- CONV_2D: out_elements x Kh x Kw x Cin_per_group (filter ``[Cout, Kh, Kw, Cin_g]``)
- DEPTHWISE_CONV_2D: out_elements x Kh x Kw (filter ``[1, Kh, Kw, Cout]``)
- FULLY_CONNECTED: out_elements x in_features (filter ``[units, in_features]``)
- TRANSPOSE_CONV: input_elements x Kh x Kw x Cout (every input pixel scatters a kernel)
- BATCH_MATMUL: out_elements x K (the shared inner dimension)
- SVDF: out_elements x (feature_filter_in + rank x memory)
- AVERAGE_POOL_2D, MAX_POOL_2D, L2_POOL_2D: out_elements x filter_h x filter_w
- MEAN, SUM, REDUCE_MAX, REDUCE_MIN: input_elements (one accumulate per element read)
- data movement (RESHAPE, SQUEEZE, EXPAND_DIMS, CONCATENATION, PAD, TRANSPOSE, SLICE, ...): 0
- every other op (ADD, MUL, SUB, activations, QUANTIZE, SOFTMAX ...): out_elements (one op per
  output element; these are not true MACs but keep the total an honest count of arithmetic)
"""

from __future__ import annotations

import math

from firmware_gen.loops import subgraph_runs
from firmware_gen.model import ModelInfo, Operator

DATA_MOVEMENT = {
    "RESHAPE",
    "SQUEEZE",
    "EXPAND_DIMS",
    "CONCATENATION",
    "PAD",
    "PADV2",
    "MIRROR_PAD",
    "TRANSPOSE",
    "SLICE",
    "STRIDED_SLICE",
    "GATHER",
    "GATHER_ND",
    "PACK",
    "UNPACK",
    "SPLIT",
    "SPLIT_V",
    "SHAPE",
    "FILL",
    "ZEROS_LIKE",
    "BROADCAST_TO",
    "BROADCAST_ARGS",
    "DEPTH_TO_SPACE",
    "SPACE_TO_DEPTH",
    "SPACE_TO_BATCH_ND",
    "BATCH_TO_SPACE_ND",
    "REVERSE_V2",
    "CAST",
    "READ_VARIABLE",
    "ASSIGN_VARIABLE",
    "VAR_HANDLE",
    "CALL_ONCE",
    "IF",
    "WHILE",
    "EMBEDDING_LOOKUP",
    "RESIZE_NEAREST_NEIGHBOR",
    "DYNAMIC_UPDATE_SLICE",
}
REDUCTIONS = {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ALL"}
POOLS = {"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"}


def _shape(info: ModelInfo, op: Operator, i: int) -> tuple[int, ...]:
    return info.subgraphs[op.subgraph][i].shape if i >= 0 else ()


def op_macs(info: ModelInfo, op: Operator) -> int:
    """MACs of one operator by the formulas in the module docstring."""
    out = _shape(info, op, op.outputs[0]) if op.outputs else ()
    out_elems = math.prod(out) if out else 0
    inp = _shape(info, op, op.inputs[0]) if op.inputs else ()
    w = _shape(info, op, op.inputs[1]) if len(op.inputs) > 1 else ()
    name = op.op
    if name == "CONV_2D" and len(w) == 4:
        return out_elems * w[1] * w[2] * w[3]
    if name == "DEPTHWISE_CONV_2D" and len(w) == 4:
        return out_elems * w[1] * w[2]
    if name == "FULLY_CONNECTED" and len(w) == 2:
        return out_elems * w[1]
    if name == "TRANSPOSE_CONV" and len(op.inputs) > 2:
        filt = _shape(info, op, op.inputs[1])
        data = _shape(info, op, op.inputs[2])
        if len(filt) == 4 and data:
            return math.prod(data) * filt[0] * filt[1] * filt[2]
    if name == "BATCH_MATMUL" and inp:
        k = inp[-2] if op.options.get("adjX") else inp[-1]
        return out_elems * k
    if name == "SVDF" and len(op.inputs) > 2:
        feat = _shape(info, op, op.inputs[1])
        time = _shape(info, op, op.inputs[2])
        if len(feat) == 2 and len(time) == 2:
            return math.prod(inp[:-1] or (1,)) * (feat[0] * feat[1] + feat[0] * time[1])
    if name in POOLS:
        return (
            out_elems
            * int(op.options.get("filterHeight", 1))
            * int(op.options.get("filterWidth", 1))
        )
    if name in REDUCTIONS:
        return math.prod(inp) if inp else 0
    if name in DATA_MOVEMENT:
        return 0
    return out_elems


def layer_table(info: ModelInfo) -> list[dict]:
    """One row per operator in execution order (subgraph 0 first); ``runs``: how many times it
    runs per Invoke (a WHILE loop's body runs once per iteration), ``macs`` per run."""
    runs, _ = subgraph_runs(info)
    rows = []
    for op in info.operators:
        tensors = info.subgraphs[op.subgraph]
        outs = [tensors[i] for i in op.outputs if i >= 0]
        consts = [tensors[i] for i in op.inputs if i >= 0 and tensors[i].is_constant]
        rows.append(
            {
                "subgraph": op.subgraph,
                "index": op.index,
                "op": op.op,
                "output_shape": list(outs[0].shape) if outs else [],
                "output_dtype": outs[0].dtype.lower() if outs else "",
                "output_bytes": sum(t.nbytes for t in outs),
                "weight_bytes": sum(t.buffer_bytes for t in consts),
                "macs": op_macs(info, op),
                "runs": runs[op.subgraph],
            }
        )
    return rows


def total_macs(rows: list[dict]) -> int:
    """MACs per Invoke of a ``layer_table``: each operator's MACs times its runs."""
    return int(sum(row["macs"] * row["runs"] for row in rows))
