"""firmware_gen input validation: bad flatbuffers, float models and missing ops are clean errors."""

import pytest
from firmware_gen_models import edit_ops, tiny_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_gen.arena import Prober
from firmware_gen.errors import FirmwareGenError
from firmware_gen.layers import layer_table
from firmware_gen.model import parse_model
from firmware_gen.ops import resolver_ops


@pytest.fixture(scope="module")
def conv_bytes():
    return tiny_model("conv")


def test_parse_conv_model(conv_bytes):
    info = parse_model(conv_bytes)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= set(info.op_names)
    assert info.input_tensors[0].shape == (1, 12, 10, 1)
    assert info.input_tensors[0].dtype == "INT8"
    ops = resolver_ops(info)
    assert [o["op"] for o in ops] == sorted(info.op_names)
    assert sum(o["count"] for o in ops) == len(info.operators)


def test_macs_follow_shapes(conv_bytes):
    info = parse_model(conv_bytes)
    rows = {r["op"]: r for r in layer_table(info)}
    conv = rows["CONV_2D"]
    # 3x3 kernel over 1 input channel, 4 filters, stride 2 on 12x10 -> 6x5x4 outputs
    assert conv["output_shape"] == [1, 6, 5, 4]
    assert conv["macs"] == 6 * 5 * 4 * 3 * 3 * 1
    assert rows["DEPTHWISE_CONV_2D"]["macs"] == 6 * 5 * 4 * 3 * 3
    fc = rows["FULLY_CONNECTED"]
    assert fc["macs"] == 3 * (3 * 5 * 4)  # 3 units over the flattened 3x5x4 pool output
    assert rows["RESHAPE"]["macs"] == 0


@pytest.mark.parametrize(
    "data,match",
    [
        (b"", "not a TFLite flatbuffer"),
        (b"hello world, not a model at all", "not a TFLite flatbuffer"),
        (b"\x00" * 64, "not a TFLite flatbuffer"),
    ],
)
def test_not_a_flatbuffer(data, match):
    with pytest.raises(FirmwareGenError, match=match):
        parse_model(data, "x.tflite")


def test_truncated(conv_bytes):
    with pytest.raises(FirmwareGenError, match="x.tflite: "):
        parse_model(conv_bytes[: len(conv_bytes) // 2], "x.tflite")


def test_float_model_refused():
    with pytest.raises(FirmwareGenError, match="float model"):
        parse_model(tiny_model("dense", int8=False), "f.tflite")


def test_op_tflm_lacks_is_named():
    bad = edit_ops(tiny_model("dense"), {"FULLY_CONNECTED": "REDUCE_PROD"})
    with pytest.raises(FirmwareGenError, match="REDUCE_PROD is not implemented by TFLM"):
        resolver_ops(parse_model(bad, "m.tflite"), "m.tflite")


def test_custom_op_is_named():
    bad = edit_ops(tiny_model("dense"), {"FULLY_CONNECTED": "CUSTOM"}, custom_name="Frobnicate")
    with pytest.raises(FirmwareGenError, match="custom op 'Frobnicate'"):
        resolver_ops(parse_model(bad, "m.tflite"), "m.tflite")


@st.composite
def damaged(draw):
    data = bytearray(tiny_model("dense"))
    kind = draw(st.sampled_from(["truncate", "flip", "bytes"]))
    if kind == "truncate":
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    positions = draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=8))
    for p in positions:
        if kind == "flip":
            data[p] ^= 1 << draw(st.integers(0, 7))
        else:
            data[p] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged())
def test_damaged_models_never_crash(data):
    """Truncated/mutated flatbuffers: a clean FirmwareGenError, or a model TFLM can load in the
    probe child process without taking this process down."""
    try:
        info = parse_model(data, "fuzz.tflite")
        resolver_ops(info, "fuzz.tflite")
        layer_table(info)
    except FirmwareGenError as e:
        assert str(e).startswith("fuzz.tflite: ") and "\n" not in str(e)
        return
    with Prober(data) as p:
        ok, reason = p.try_arena(1 << 20)
    assert isinstance(ok, bool) and isinstance(reason, str)


def test_prober_survives_a_crash(conv_bytes):
    """Arenas of a few bytes segfault TFLM; the probe reports a failure and keeps working."""
    with Prober(conv_bytes) as p:
        assert p.try_arena(16) == (False, "crashed")
        assert p.try_arena(1 << 20)[0]
        assert p.crashes == 1
