"""``tfkws slim select``: every width of a tiny supernet exported and measured (TFLM accuracy,
arena, flash, MACs); the most accurate width that fits the budget becomes selected.tflite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

from tfkws.cli.main import main


@pytest.fixture(scope="module")
def supernet_run(tone_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("slim_select") / "run"
    code = main(
        [
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
        ]
    )
    assert code == 0
    return run


def _select(capsys: pytest.CaptureFixture, run: Path, out: Path, *budget: str):
    return run_cli(
        capsys,
        "slim",
        "select",
        f"--run={run}",
        *budget,
        f"--out_dir={out}",
        "--max_clips=8",
        "--num_calibration=8",
    )


@pytest.mark.slow
def test_select_picks_most_accurate_fitting_width(
    capsys: pytest.CaptureFixture, supernet_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sel"
    code, stdout, err = _select(capsys, supernet_run, out, "--target=stm32h743")
    assert code == 0, err
    doc = json.loads((out / "widths.json").read_text())
    rows = doc["widths"]
    assert [r["width"] for r in rows] == json.loads((out / "selected.metadata.json").read_text())[
        "slim"
    ]["widths"]
    assert len({r["width"] for r in rows}) == len(rows) == 8
    for r in rows:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["num_clips"] == 8
        assert r["macs"] > 0 and r["arena_min_bytes"] > 0
        assert r["arena_recommended_bytes"] >= r["arena_min_bytes"]
        assert r["flash_bytes"] == r["model_bytes"] + r["runtime_code_bytes"]
        assert r["fits"] and (out / r["file"]).exists()
    best = max(rows, key=lambda r: (r["accuracy"], -r["macs"], -r["width"]))
    assert [r["width"] for r in rows if r["chosen"]] == [best["width"]]
    assert doc["selected"]["width"] == best["width"] and doc["targets"][0]["key"] == "stm32h743"
    sel = out / "selected.tflite"
    assert sel.read_bytes() == (out / best["file"]).read_bytes()
    assert (
        json.loads((out / "selected.metadata.json").read_text())["slim"]["width"] == best["width"]
    )
    assert (out / "pareto.png").stat().st_size > 1000
    md = (out / "widths.md").read_text()
    assert md.count("\n| ") == 8 + 1 and "**yes**" in md
    assert f"selected: width {best['width']:g}" in stdout

    # A budget below every width's arena: exit 1, one line naming the smallest width's needs.
    smallest = min(rows, key=lambda r: r["macs"])
    limit = min(r["arena_recommended_bytes"] for r in rows) - 16
    out2 = tmp_path / "none"
    code, _, err = _select(
        capsys, supernet_run, out2, f"--max_arena={limit}", "--max_flash=100000000"
    )
    assert code == 1, err
    line = err.strip()
    assert "\n" not in line and "no width fits" in line
    assert f"width {smallest['width']:g}" in line and f"has {limit}" in line
    assert not (out2 / "selected.tflite").exists()
    doc2 = json.loads((out2 / "widths.json").read_text())
    assert doc2["selected"] is None and not any(r["fits"] or r["chosen"] for r in doc2["widths"])


def test_select_needs_a_budget(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "slim", "select", f"--run={tmp_path}", f"--out_dir={tmp_path}/o")
    assert code == 2 and "--target" in err and "--max_arena" in err and len(err.splitlines()) == 1
    code, _, err = run_cli(capsys, "slim", "select", f"--run={tmp_path}", "--max_arena=1000")
    assert code == 2 and "together" in err
    code, _, err = run_cli(capsys, "slim", "select", f"--run={tmp_path}", "--target=nope")
    assert code == 2 and "unknown target" in err
