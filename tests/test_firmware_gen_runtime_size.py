"""The TFLM runtime code-size table is a measurement, and the estimate adds up from it."""

from firmware_gen.ops import op_table
from firmware_gen.runtime_size import FALLBACK_OP, code_size_table, runtime_estimate


def test_table_is_measured_for_cortex_m4() -> None:
    table = code_size_table()
    assert "cortex-m4" in table["target"].lower()
    assert "PLACEHOLDER" not in table["basis"]
    # An interpreter with an empty resolver is tens of KB on a Cortex-M4; kernels add KBs each.
    assert 5_000 < table["base_bytes"] < 200_000
    per_op = table["per_op_bytes"]
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD"} <= set(per_op)
    assert all(0 < v < 100_000 for v in per_op.values())
    assert set(per_op) <= set(op_table()["builtin_ops"])


def test_estimate_is_base_plus_each_distinct_op() -> None:
    table = code_size_table()
    est = runtime_estimate(["CONV_2D", "CONV_2D", "FULLY_CONNECTED"])
    want = table["base_bytes"] + sum(
        table["per_op_bytes"][o] for o in ("CONV_2D", "FULLY_CONNECTED")
    )
    assert est["bytes"] == want and est["label"] == "estimate"
    odd = runtime_estimate(["CONV_2D", "NOT_A_REAL_OP"])
    assert FALLBACK_OP in odd["basis"] and "NOT_A_REAL_OP" in odd["basis"]
    assert odd["bytes"] > table["base_bytes"] + table["per_op_bytes"]["CONV_2D"]
