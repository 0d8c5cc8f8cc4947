"""Every README command that trains, exports, detects or measures, run exactly as written.

From a fresh folder beside ``../shared`` (a link to the real one), with ``TFKWS_FAST=1`` (the
same commands as smoke runs: one epoch on a few clips, minutes of streams instead of hours), the
README's blocks run in the order a reader meets them: train/export/verify/eval on Arabic Speech
Commands, the CI gate, ``tfkws detect`` and its detector in C, the device pipeline in QEMU,
``stream-eval``, the streaming export with its step model on the device, a slimmable supernet and
one width cut out, and the clip cache / mirrored-strategy trainings. The recordings the README
assumes you have (``kitchen.flac``, ``speech.wav``, ``stream.wav``) are written from val.csv
clips over noise. Only files and exit codes are checked here: what the outputs must be is tested
on models that fire (tests/test_streaming*.py, tests/test_firmware_gen_on_target_stream.py).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import SHARED_DATA
from readme_blocks import block_with, run_block, run_line

from firmware_gen.toolchain import available, default_tflm_root

ASC = SHARED_DATA / "arabic_speech_commands"
pytestmark = pytest.mark.skipif(not (ASC / "val.csv").exists(), reason=f"no {ASC}")
ON_TARGET = available() or (None if default_tflm_root() else "no TFLM source tree")
SR = 16000


def _recording(path: Path, clips: int, seed: int) -> None:
    """``clips`` val.csv words (seeded pick) with 0.5 s of quiet noise around each."""
    with open(ASC / "val.csv") as f:
        rows = list(csv.DictReader(f))
    rng = np.random.default_rng(seed)
    parts = [0.003 * rng.standard_normal(SR // 2)]
    for i in rng.choice(len(rows), clips, replace=False):
        audio, sr = sf.read(ASC / rows[i]["file"], dtype="float32")
        assert sr == SR
        parts += [audio, 0.003 * rng.standard_normal(SR // 2)]
    sf.write(path, np.concatenate(parts).astype(np.float32), SR, subtype="PCM_16")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh working folder with ``../shared`` beside it, in fast mode."""
    root = tmp_path_factory.mktemp("readme")
    (root / "shared").symlink_to(SHARED_DATA.parent.resolve(), target_is_directory=True)
    work = root / "work"
    work.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TFKWS_FAST", "1")
        yield work


@pytest.fixture(scope="module")
def asc_run(folder: Path) -> Path:
    """The "your own data" block: train, export with firmware, verify, eval."""
    run_block("--out runs/asc --model ds_cnn", folder)
    return folder / "runs" / "asc"


def test_own_data_block_and_ci_gate(asc_run: Path, folder: Path) -> None:
    assert (asc_run / "model_int8.tflite").exists()
    assert (asc_run / "firmware" / "kws_model_data.cc").exists()
    assert json.loads((asc_run / "run_config.json").read_text())["train"]["epochs"] == 1
    (line,) = block_with("--target nrf52840 --check")
    assert run_line(line, folder) == 0
    assert (folder / "fw" / "model_int8_model_data.h").exists()


def test_detect_block_writes_detections_and_the_c_detector(asc_run: Path, folder: Path) -> None:
    _recording(folder / "kitchen.flac", 3, seed=1)
    run_block("--audio kitchen.flac", folder)
    report = json.loads((folder / "detections.json").read_text())
    assert isinstance(report["detections"], list) and report["invokes"] > 0
    assert (folder / "detector.json").exists()
    assert list((folder / "fw").glob("*_detector.h"))


@pytest.mark.skipif(ON_TARGET is not None, reason=ON_TARGET or "")
def test_device_pipeline_block(asc_run: Path, folder: Path) -> None:
    _recording(folder / "speech.wav", 2, seed=2)
    run_block("--stream-audio speech.wav", folder)
    report = json.loads(next((folder / "fw").glob("*_report.json")).read_text())
    assert report["stream"], report.get("stream")


def test_stream_eval_block(asc_run: Path, folder: Path) -> None:
    run_block("tfkws stream-eval", folder)
    rep = json.loads(next((folder / "stream_eval").glob("*.json")).read_text())
    assert rep["thresholds"] and (folder / "stream_eval" / "det.png").exists()


@pytest.mark.skipif(ON_TARGET is not None, reason=ON_TARGET or "")
def test_streaming_export_block(folder: Path) -> None:
    _recording(folder / "stream.wav", 2, seed=3)
    run_block("tfkws export --run runs/asc_valid --streaming", folder)
    run = folder / "runs" / "asc_valid"
    assert (run / "model_int8_step.tflite").exists() and (folder / "det.json").exists()
    features = json.loads((run / "run_config.json").read_text())["features"]
    assert features["enable_pcan"] is False and features["min_signal_remaining"] == 1.0
    report = json.loads(next((folder / "fw_step").glob("*_report.json")).read_text())
    assert report["stream"], report.get("stream")


def test_slimmable_block(folder: Path) -> None:
    run_block("tfkws slim extract", folder)
    assert (folder / "slim_055.tflite").exists()


def test_scaling_blocks(folder: Path) -> None:
    run_block("--out runs/asc_disk", folder)
    run_block("--strategy mirrored", folder)
    assert (folder / "clip_cache").is_dir()


def test_zoo_blocks(folder: Path) -> None:
    run_block("tfkws zoo get demo_synthetic_en", folder)
    assert list((folder / "my_kws").glob("*.tflite"))
    run_block("tfkws slim select", folder)
    assert (folder / "slim" / "nrf52840" / "selected.tflite").exists()
