"""What a user sees: tfkws's own lines (one per epoch, progress with ETA), not TensorFlow's logs.

The train runs as a subprocess from a fresh shell's environment (no TF_CPP_MIN_LOG_LEVEL set by
the test suite), so TensorFlow's C++ lines at import would show if tfkws did not hide them.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from tfkws.progress import Progress, format_seconds
from tfkws.training.progress import epoch_line

NOISE = ("Epoch 1/", "oneDNN", "cuda", "E0000", "I0000", "W0000", "Sharding callback")
EPOCH = re.compile(r"^epoch (\d+)/3  loss \d+\.\d{4}  accuracy [\d.]+ %  val accuracy [\d.]+ %")


def _train(tmp_path: Path, data: Path, *extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tfkws.cli.main",
            "train",
            f"--data={data}",
            "--out=run",  # relative: made absolute at the command line
            "--mode=all",
            "--params=channels=8,num_blocks=1",
            "--epochs=3",
            "--batch_size=8",
            *extra,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    return out


@pytest.mark.slow
def test_train_prints_tfkws_lines_only(tmp_path: Path, tone_dataset: Path) -> None:
    out = _train(tmp_path, tone_dataset)
    epochs = [int(m.group(1)) for m in map(EPOCH.match, out.splitlines()) if m]
    assert epochs == [1, 2, 3], out
    assert "ETA" in out
    for noise in NOISE:
        assert noise not in out, f"{noise!r} in:\n{out}"
    assert f"run folder: {tmp_path / 'run'}" in out


@pytest.mark.slow
def test_verbose_shows_keras_progress(tmp_path: Path, tone_dataset: Path) -> None:
    out = _train(tmp_path, tone_dataset, "--verbose")
    assert "val_accuracy:" in out  # Keras's own epoch line, beside tfkws's
    assert sum(bool(EPOCH.match(line)) for line in out.splitlines()) == 3


def test_epoch_line() -> None:
    logs = {"loss": 0.5, "accuracy": 0.75, "val_accuracy": 0.5}
    line = epoch_line(1, 4, logs, [10.0, 20.0])
    assert line == "epoch 2/4  loss 0.5000  accuracy 75.0 %  val accuracy 50.0 %  20 s  ETA 30 s"
    assert "ETA" not in epoch_line(3, 4, logs, [10.0])
    assert epoch_line(0, 2, {}, [1.0], " (QAT)").startswith("epoch 1/2 (QAT)  1 s")


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (0.4, 59, 61, 3725)] == [
        "0 s",
        "59 s",
        "1 min 01 s",
        "1 h 02 min",
    ]


def test_progress_lines_off_a_terminal() -> None:
    """Off a terminal: a quick step prints one line, its last; counts are exact."""
    stream = io.StringIO()
    with Progress("loading clips", 7, stream=stream) as p:
        for _ in range(7):
            p.update()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("loading clips: 7/7 (100 %)")
    stream = io.StringIO()
    with Progress("nothing", 0, stream=stream) as p:
        p.update()
    assert stream.getvalue() == ""


def test_progress_bar_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    with Progress("rendering", 3, stream=stream) as p:
        for _ in range(3):
            p.update()
    text = stream.getvalue()
    assert text.startswith("\r[") and text.endswith("\n")
    assert "rendering: 3/3 (100 %)" in text and "#" * 24 in text
