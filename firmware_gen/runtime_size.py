"""An estimate of the TFLM runtime's flash (code) size for the model's ops, with its basis.

From ``code_size_cm4.json`` (regenerate with ``python -m firmware_gen.refresh_tables codesize``):
TFLM's reference kernels linked for Cortex-M4 with ``-Os --gc-sections``; base = interpreter with
an empty resolver, plus per op the growth when that op alone is registered. The estimate is base +
the sum over the model's distinct ops. Not included: your application, a logging backend
(``DebugLog``), startup code beyond newlib's, CMSIS-NN kernels (usually larger, much faster).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
FALLBACK_OP = "median of measured ops"


@functools.cache
def code_size_table() -> dict:
    return json.loads((HERE / "code_size_cm4.json").read_text())


def runtime_estimate(op_names: list[str]) -> dict:
    """``{"bytes", "base_bytes", "per_op_bytes", "basis", "target", "label"}`` for these ops."""
    table = code_size_table()
    per_op_all: dict[str, int] = table["per_op_bytes"]
    measured = sorted(per_op_all.values())
    median = measured[len(measured) // 2] if measured else 0
    per_op = {}
    unmeasured = []
    for op in sorted(set(op_names)):
        if op in per_op_all:
            per_op[op] = per_op_all[op]
        else:
            per_op[op] = median
            unmeasured.append(op)
    basis = table["basis"]
    if unmeasured:
        basis += f" Not measured, counted at the {FALLBACK_OP}: {', '.join(unmeasured)}."
    return {
        "label": "estimate",
        "bytes": table["base_bytes"] + sum(per_op.values()),
        "base_bytes": table["base_bytes"],
        "per_op_bytes": per_op,
        "target": table["target"],
        "basis": basis,
    }
