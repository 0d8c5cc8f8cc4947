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
    from firmware_gen_models import tiny_model

    from firmware_gen.pipeline import generate

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


def _run_cli(*args, env=None):
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    env = dict(env or os.environ)
    env["PYTHONPATH"] = str(repo) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "firmware_gen.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=repo,
    )


@needs_target
def test_cli_check_uses_the_on_target_arena(tiny, measured, tmp_path):
    """A Cortex-M4 board with RAM between the on-target and the host recommendation: it fails
    the host-based check and passes once the model was measured on a Cortex-M4."""
    import json

    gen, _, data, report = tiny
    model = tmp_path / "tiny.tflite"
    model.write_bytes(data)
    margin = 1 + report["arena"]["margin_pct"] / 100
    on_target_rec = -(-int(measured["arena"]["min_bytes"] * margin) // 16) * 16 + 16
    assert on_target_rec < report["recommended_arena_bytes"]
    ram = (on_target_rec + report["recommended_arena_bytes"]) // 2
    targets = tmp_path / "t.json"
    board = {
        "core": "cortex-m4f",
        "sram_bytes": ram,
        "flash_bytes": 1 << 20,
        "clock_hz": 64_000_000,
    }
    targets.write_text(json.dumps({"targets": {"tiny_m4_board": board}}))
    host = _run_cli(model, "--out", tmp_path / "host", "--targets-file", targets, "--check")
    assert host.returncode == 1 and "RAM needs" in host.stderr, host.stderr
    out = tmp_path / "qemu"
    common = ["--on-target", "m4", "--kernels", "reference", "--tflm-library", "model"]
    r = _run_cli(model, "--out", out, "--targets-file", targets, "--check", *common)
    assert r.returncode == 0, r.stderr
    assert "on target cortex-m4/reference" in r.stdout and "bit-exact" in r.stdout
    rep = json.loads((out / "tiny_report.json").read_text())
    (variant,) = rep["on_target"]["variants"]
    assert variant["arena"]["min_bytes"] == measured["arena"]["min_bytes"]  # deterministic
    (t,) = rep["targets"]
    assert t["basis"].startswith("on-target cortex-m4/reference") and t["fits"]
    assert t["on_target"]["latency_estimate_ms"]["reference"] > 0
    header = (out / "tiny_model_data.h").read_text()
    assert f"kTensorArenaMinCortexM4Reference = {variant['arena']['min_bytes']};" in header
    assert "On target (TFLM C++ in QEMU)" in (out / "tiny_report.md").read_text()


def test_cli_says_what_to_install_when_tools_are_missing(tmp_path):
    import os
    import sys

    from firmware_gen_models import tiny_model

    model = tmp_path / "m.tflite"
    model.write_bytes(tiny_model("dense"))
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))
    r = _run_cli(model, "--out", tmp_path / "o", "--on-target", "m4", env=env)
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("firmware-gen: error: on-target measurement needs arm-none-eabi-gcc")
    assert "apt-get install" in line and "qemu-system-arm" in line
    assert not (tmp_path / "o").exists()
