"""firmware_gen stands alone: it runs where TensorFlow, tf_keras and tfkws cannot be imported.

The model is built here (TensorFlow is available to the test); ``firmware-gen`` then runs in a
child process whose ``sitecustomize`` makes ``import tensorflow`` / ``tf_keras`` / ``tfkws`` raise
ImportError, in that process and in every Python child it starts (the TFLM probe inherits
PYTHONPATH). It runs from a temp working directory with every path given relative to it.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from firmware_gen_models import tiny_model

import firmware_gen
from firmware_gen.toolchain import available, default_tflm_root

REPO = Path(__file__).resolve().parents[1]
BLOCKED = ("tensorflow", "tf_keras", "tfkws")
SITECUSTOMIZE = f'''
import importlib.abc
import sys

BLOCKED = {BLOCKED!r}


class BlockImports(importlib.abc.MetaPathFinder):
    """firmware_gen must not need these: any import of them fails, as if not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is blocked (firmware_gen must stand alone)")
        return None


sys.meta_path.insert(0, BlockImports())
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """Environment whose Python processes cannot import TensorFlow, tf_keras or tfkws."""
    blocker = tmp_path_factory.mktemp("blocker")
    (blocker / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join([str(blocker), str(REPO), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path)


def run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_blocker_blocks(env, tmp_path):
    for name in BLOCKED:
        r = run(env, tmp_path, "-c", f"import {name}")
        assert r.returncode == 1 and "ImportError" in r.stderr and "is blocked" in r.stderr
    r = run(env, tmp_path, "-c", "import tflite_micro.tensorflow.lite.micro.python")
    assert r.returncode == 0, r.stderr  # only the top-level names are blocked


def test_every_module_imports_without_tensorflow_or_tfkws(env, tmp_path):
    modules = sorted(m.name for m in pkgutil.iter_modules(firmware_gen.__path__, "firmware_gen."))
    assert "firmware_gen.cli" in modules and "firmware_gen.pipeline" in modules
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    r = run(env, tmp_path, "-c", code, *modules)
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A working directory holding the model, its metadata, inputs and a targets file."""
    d = tmp_path_factory.mktemp("work")
    data = tiny_model("conv")
    (d / "models").mkdir()
    (d / "models" / "tiny.tflite").write_bytes(data)
    meta = {"format": "tfkws-model-metadata", "labels": ["yes", "no", "other"]}
    (d / "tiny.meta.json").write_text(json.dumps(meta))
    board = {"core": "cortex-m4f", "sram_bytes": 1 << 18, "flash_bytes": 1 << 20, "clock_hz": 1}
    (d / "boards.json").write_text(json.dumps({"targets": {"board": board}}))
    rng = np.random.default_rng(1)
    np.save(d / "inputs.npy", rng.integers(-128, 128, (2, 12, 10, 1), dtype=np.int8))
    return d


def test_firmware_gen_check_and_arena_search(env, workdir, tmp_path):
    out = tmp_path / "out"
    common = ["-m", "firmware_gen.cli", "models/tiny.tflite", "--metadata", "tiny.meta.json"]
    r = run(env, workdir, *common, "--out", str(out), "--targets-file", "boards.json", "--check")
    assert r.returncode == 0, r.stderr
    assert "check passed: fits board" in r.stdout
    rep = json.loads((out / "tiny_report.json").read_text())
    assert rep["model"]["labels"] == ["yes", "no", "other"]
    search = rep["arena"]["search"]
    assert search["probes"] > 5 and search["min_minus_16_fails"]
    assert rep["min_arena_bytes"] % 16 == 0 and rep["min_arena_bytes"] > 0

    limits = ["--ram", "1K", "--flash", "1M", "--check"]
    small = run(env, workdir, *common, "--out", str(tmp_path / "o1"), *limits)
    assert small.returncode == 1 and "RAM needs" in small.stderr, small.stderr
    bad = run(env, workdir, "-m", "firmware_gen.cli", "inputs.npy", "--out", "never")
    assert bad.returncode == 2 and "firmware-gen: error: " in bad.stderr
    assert "Traceback" not in bad.stderr and not (workdir / "never").exists()


REASON = available()
TFLM = default_tflm_root()


@pytest.mark.skipif(REASON is not None or TFLM is None, reason=REASON or "no TFLM source tree")
def test_on_target_with_relative_paths_and_no_tensorflow(env, workdir):
    """Every path flag relative to the working directory (``--out fw`` failed to compile before),
    on a Cortex-M4 in QEMU, with only the TFLM sources the model needs (cached after the first)."""
    tflm = os.path.relpath(TFLM.resolve(), workdir)
    args = [
        *("-m", "firmware_gen.cli", "models/tiny.tflite", "--out", "fw", "--json", "r/rep.json"),
        *("--metadata", "tiny.meta.json", "--targets-file", "boards.json", "--check"),
        *("--tflm-root", tflm, "--inputs", "inputs.npy", "--on-target", "m4"),
        *("--kernels", "reference", "--tflm-library", "model"),
    ]
    r = run(env, workdir, *args)
    assert r.returncode == 0, r.stderr
    assert "on target cortex-m4/reference" in r.stdout and "bit-exact" in r.stdout
    rep = json.loads((workdir / "r" / "rep.json").read_text())
    assert rep == json.loads((workdir / "fw" / "tiny_report.json").read_text())
    (variant,) = rep["on_target"]["variants"]
    assert variant["parity"]["records"] == 2 and variant["parity"]["bit_exact"]
    assert variant["arena"]["min_minus_16_fails"] and variant["arena"]["min_bytes"] > 0
    assert rep["targets"][0]["basis"].startswith("on-target cortex-m4/reference")
