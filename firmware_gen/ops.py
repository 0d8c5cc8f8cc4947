"""Which TFLM resolver call registers each op, and the check that TFLM implements them all.

The table ``tflm_ops.json`` is parsed from TFLM's ``micro_mutable_op_resolver.h`` by
``python -m firmware_gen.refresh_tables ops`` so it follows the TFLM version firmware builds with.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from firmware_gen.errors import FirmwareGenError
from firmware_gen.model import ModelInfo

HERE = Path(__file__).resolve().parent


@functools.cache
def op_table() -> dict:
    """``{"source": ..., "builtin_ops": {OP_NAME: "AddMethod"}}`` from the package data."""
    return json.loads((HERE / "tflm_ops.json").read_text())


def resolver_ops(info: ModelInfo, source: str = "model") -> list[dict]:
    """``[{"op", "method", "count"}]`` sorted by op name; error naming any op TFLM lacks."""
    methods = op_table()["builtin_ops"]
    counts: dict[str, int] = {}
    for o in info.operators:
        counts[o.op] = counts.get(o.op, 0) + 1
    missing = sorted(op for op in counts if op not in methods)
    if missing:
        custom = [m for m in missing if m.startswith("CUSTOM:")]
        if custom:
            raise FirmwareGenError(
                f"{source}: custom op {custom[0][7:]!r} cannot be registered automatically "
                "(firmware_gen only handles builtin ops TFLM implements)"
            )
        raise FirmwareGenError(
            f"{source}: op {missing[0]} is not implemented by TFLM (no "
            f"MicroMutableOpResolver method for it)"
            + (f"; also missing: {', '.join(missing[1:])}" if len(missing) > 1 else "")
        )
    return [{"op": op, "method": methods[op], "count": counts[op]} for op in sorted(counts)]
