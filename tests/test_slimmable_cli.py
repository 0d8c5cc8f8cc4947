"""``tfkws train`` on a slimmable supernet (sandwich rule via the trainer hook), then
``tfkws slim extract`` writes one width as int8 .tflite + metadata that runs in TFLM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli


@pytest.mark.slow
def test_train_supernet_then_extract_a_width(
    capsys: pytest.CaptureFixture, tone_dataset: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    code, _, err = run_cli(
        capsys,
        "train",
        f"--data={tone_dataset}",
        "--mode=all",
        f"--out={run}",
        "--epochs=1",
        "--batch_size=16",
        "--model=slimmable_ds_cnn",
        "--params=channels=8,num_blocks=1,sandwich_random_widths=1",
        "--verbose=0",
        "--noaugment",
    )
    assert code == 0, err
    results = json.loads((run / "results.json").read_text())
    cost = results["sandwich_cost"]  # trainer hook: the run was sandwich-trained
    assert cost["steps"] >= 1 and 1.0 < cost["cost_per_step"] < 3.0
    assert "width_cost" in json.loads((run / "history.json").read_text())

    out_path = tmp_path / "w055.tflite"
    code, out, err = run_cli(
        capsys,
        "slim",
        "extract",
        f"--run={run}",
        "--width=0.55",
        f"--out={out_path}",
        "--num_calibration=8",
    )
    assert code == 0, err
    assert "width 0.55" in out and out_path.exists()
    meta = json.loads(out_path.with_name("w055.metadata.json").read_text())
    assert meta["slim"]["width"] == 0.55 and meta["slim"]["widths"][-1] == 1.0
    assert 0.0 < meta["slim"]["relative_macs"] < 1.0
    assert meta["params"] < meta["slim"]["supernet_params"]
    assert meta["fold_max_abs_diff"] <= 1e-4 and "CONV_2D" in meta["ops"]

    from tfkws.verification.tflm import run_tflm

    x = np.zeros((1, *meta["input"]["shape"][1:]), np.int8)
    assert run_tflm(out_path.read_bytes(), x).shape == (1, len(meta["labels"]))

    code, _, err = run_cli(capsys, "export", f"--run={run}")  # a supernet is not one model
    assert code == 2 and "slim extract" in err and not (run / "model_int8.tflite").exists()
    code, _, err = run_cli(capsys, "slim", "extract", f"--run={run}", "--width=0.5")
    assert code == 2 and "not one of" in err
    code, _, err = run_cli(capsys, "slim", "select", f"--run={run}")
    assert code == 2 and "--target" in err and "--max_arena" in err  # select needs a budget
