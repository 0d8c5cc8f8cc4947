"""What a user sees: tfkws's own lines (one per epoch, progress with ETA), not TensorFlow's logs.

The train runs as a subprocess from a fresh shell's environment (no TF_CPP_MIN_LOG_LEVEL set by
the test suite), so TensorFlow's C++ lines at import would show if tfkws did not hide them.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from helpers import run_command

from tfkws.progress import Progress, format_seconds
from tfkws.quiet import NOISE as TF_NOISE
from tfkws.training.progress import epoch_line

NOISE = ("Epoch 1/", "oneDNN", "cuda", "E0000", "I0000", "W0000", "Sharding callback")
EPOCH = re.compile(r"^epoch (\d+)/3  loss \d+\.\d{4}  accuracy [\d.]+ %  val accuracy [\d.]+ %")


def _train(tmp_path: Path, data: Path, *extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",)}
    return run_command(
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
    )


@pytest.mark.slow
def test_train_prints_tfkws_lines_only(tmp_path: Path, tone_dataset: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(tone_dataset, data)
    (data / "high" / "spk00_nohash_99.wav").write_bytes(b"not a wav file")
    out = _train(tmp_path, data)
    assert "spk00_nohash_99.wav" in out  # a warning that matters stays visible
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


def test_noise_pattern() -> None:
    """TF's C++ log lines (both formats) are noise; tracebacks and tfkws's lines are not."""
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796311217.394873    5671 cudart_stub.cc:31] Could not find cuda drivers on "
        "your machine, GPU will not be used.",
        "E0000 00:00:1758131045.203198 3722035 op_def_util.cc:12] NodeDef mentions attribute "
        "use_unbounded_threadpool which is not in the op definition",
        "2025-09-17 14:44:05.157831: I tensorflow/core/util/port.cc:153] oneDNN custom operations "
        "are on. You may see slightly different numerical results.",
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow "
        "with the appropriate compiler flags.",
        "fully_quantize: 0, inference_type: 6, input_inference_type: INT8, output_inference_type: "
        "INT8",
    ]
    kept = [
        "Traceback (most recent call last):",
        "skipping clip: /data/x.wav: not a readable audio file",
        "F0000 00:00:1796311217.394873    5671 check.cc:1] Check failed: x",
        "epoch 1/3  loss 1.1037  accuracy 33.3 %  val accuracy 33.3 %  5 s  ETA 9 s",
    ]
    assert all(TF_NOISE.match(line) for line in noise)
    assert not any(TF_NOISE.match(line) for line in kept)


def test_filtered_stderr_keeps_what_is_not_noise(tmp_path: Path) -> None:
    """At file-descriptor level, as C++ writes it: noise dropped, other lines given back."""
    code = (
        "import os\n"
        "from tfkws import quiet\n"
        "with quiet.filtered_stderr():\n"
        "    os.write(2, b'I0000 00:00:17.5 12 cudart_stub.cc:31] Could not find cuda\\n')\n"
        "    os.write(2, b'a real error\\n')\n"
        "quiet.set_verbose(True)\n"
        "with quiet.filtered_stderr():\n"
        "    os.write(2, b'I0000 00:00:18.5 12 x.cc:1] shown when verbose\\n')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert proc.stderr.splitlines() == [
        "a real error",
        "I0000 00:00:18.5 12 x.cc:1] shown when verbose",
    ]
