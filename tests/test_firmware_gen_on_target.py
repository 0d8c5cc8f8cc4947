"""On-target truth: a tiny int8 model built with TFLM C++ for Cortex-M4 runs in QEMU.

One variant (Cortex-M4, reference kernels) and only the TFLM sources the model needs, so a cold
cache costs about two minutes on two cores; later runs reuse the cached objects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firmware_gen import FirmwareGenError
from firmware_gen.cpus import CPUS
from firmware_gen.model import parse_model
from firmware_gen.ops import resolver_ops
from firmware_gen.tflm_lib import REF_GLOBS, _glob, source_list
from firmware_gen.toolchain import available, default_tflm_root

REASON = available()
TFLM = default_tflm_root()
needs_target = pytest.mark.skipif(
    REASON is not None or TFLM is None,
    reason=REASON or "no TFLM source tree (set TFLM_ROOT or provide ../shared/tflm)",
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, str, bytes]:
    """Generated sources of the tiny conv model (Conv2D, depthwise, pool, FC, softmax)."""
    from firmware_gen.pipeline import generate
    from firmware_gen.testing import tiny_model

    root = tmp_path_factory.mktemp("tiny")
    model = root / "tiny.tflite"
    model.write_bytes(tiny_model("conv"))
    result = generate(model, root / "gen", name="tiny")
    return root / "gen", "tiny", model.read_bytes(), result.report


def _measure(gen: Path, ident: str, data: bytes, host_arena: int, inputs=None) -> dict:
    from firmware_gen.on_target import measure

    info = parse_model(data)
    return measure(
        gen,
        ident,
        info,
        ["m4"],
        ["reference"],
        methods=[o["method"] for o in resolver_ops(info)],
        tflm_root=TFLM,
        host_arena=host_arena,
        inputs=inputs,
        library="model",
    )


@pytest.fixture(scope="module")
def measured(tiny) -> dict:
    gen, ident, data, report = tiny
    rng = np.random.default_rng(1)
    inputs = rng.integers(-128, 128, size=(5, 12, 10, 1), dtype=np.int8)
    return _measure(gen, ident, data, report["min_arena_bytes"], inputs)["variants"][0]


@needs_target
def test_outputs_equal_the_python_interpreter(measured):
    p = measured["parity"]
    assert measured["cpu"] == "cortex-m4" and measured["kernels"] == "reference"
    assert p["records"] == 5 and p["elements"] == 5 * 3
    assert p["bit_exact"] and p["differing_elements"] == 0 and p["ok"]


@needs_target
def test_min_arena_succeeds_and_16_less_fails_on_target(tiny, measured):
    import tempfile

    from firmware_gen.on_target import Harness
    from firmware_gen.tflm_lib import build_library

    a = measured["arena"]
    assert a["min_bytes"] % 16 == 0 and a["min_minus_16_fails"]
    # Independently, in fresh QEMU runs of a freshly linked harness.
    gen, ident, data, _ = tiny
    methods = [o["method"] for o in resolver_ops(parse_model(data))]
    lib = build_library(TFLM, CPUS["m4"], "reference", ops_methods=methods)
    with tempfile.TemporaryDirectory() as work:
        h = Harness(gen, ident, lib, Path(work))
        assert h.build().returncode == 0
        assert h.alloc(a["min_bytes"]).alloc_ok is True
        below = h.alloc(a["min_bytes"] - 16)
        # TFLM's own message says why (arena exhausted, or planner scratch too small)
        assert below.alloc_ok is False and below.fault is None and below.log


@needs_target
def test_instruction_count_is_positive_and_cross_checked(measured):
    ins = measured["instructions"]
    assert ins["invokes"] == 5
    assert ins["per_invoke"] > 10_000  # a conv + dense net is far more than a few instructions
    # the SysTick under -icount shift=0 counts the same instructions, to its 40-instruction step
    assert ins["systick_cross_check"]["agrees_within_pct"] < 1.0


@needs_target
def test_flash_is_split_from_the_elf(tiny, measured):
    fl = measured["flash"]["flash_bytes"]
    assert fl["model"] == len(tiny[2])
    assert 10_000 < fl["tflm"] < fl["total"]
    assert fl["model"] + fl["tflm"] + fl["harness"] + fl["c_library"] <= fl["total"]


@needs_target
def test_op_missing_from_the_resolver_fails_clearly(tiny, tmp_path):
    gen, ident, data, report = tiny
    edited = tmp_path / "gen"
    edited.mkdir()
    for f in gen.iterdir():
        text = f.read_text()
        if f.name.endswith("_op_resolver.h"):
            text = text.replace("resolver.AddSoftmax()", "kTfLiteOk")
        (edited / f.name).write_text(text)
    with pytest.raises(FirmwareGenError, match=r"op resolver lacks SOFTMAX"):
        _measure(edited, ident, data, report["min_arena_bytes"])


@pytest.mark.skipif(TFLM is None or not (TFLM / "lists").exists(), reason="no TFLM tree")
def test_source_globs_reproduce_the_tflm_lists():
    # A plain tflite-micro checkout has no lists/: the globs must give the same library.
    assert sorted(_glob(TFLM, REF_GLOBS)) == source_list(TFLM, "reference")
