"""firmware-gen CLI: exit codes 0/1/2, one-line errors, no partial output."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from firmware_gen_models import tiny_model

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "firmware_gen.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    good = tiny_model("dense")
    paths = {
        "good": good,
        "truncated": good[: len(good) * 2 // 3],
        "float": tiny_model("dense", int8=False),
        "text": b"definitely not a model\n",
    }
    for name, data in paths.items():
        (d / f"{name}.tflite").write_bytes(data)
    return d


def test_check_passes_and_writes_files(models, tmp_path):
    out = tmp_path / "out"
    r = run_cli(
        models / "good.tflite",
        "--out",
        out,
        "--target",
        "nrf52840,stm32f746",
        "--check",
        "--json",
        tmp_path / "r.json",
    )
    assert r.returncode == 0, r.stderr
    assert "check passed" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"good_{s}"
        for s in ("model_data.h", "model_data.cc", "op_resolver.h", "report.json", "report.md")
    )
    assert (tmp_path / "r.json").read_text() == (out / "good_report.json").read_text()


def test_check_fails_with_one_line_reason(models, tmp_path):
    r = run_cli(
        models / "good.tflite", "--out", tmp_path / "out", "--ram", "1K", "--flash", "1M", "--check"
    )
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not fit custom" in lines[0] and "RAM needs" in lines[0]


@pytest.mark.parametrize(
    "model,extra,match",
    [
        ("text", [], "not a TFLite flatbuffer"),
        ("truncated", [], "truncated.tflite: "),
        ("float", [], "float model"),
        ("good", ["--target", "no_such_board"], "unknown target 'no_such_board'"),
        ("missing", [], "cannot read model"),
        ("good", ["--check"], "--check needs"),
        ("good", ["--ram", "12 parsecs", "--flash", "1M"], "not a size in bytes"),
    ],
)
def test_bad_input_exit_2_one_line_no_output(models, tmp_path, model, extra, match):
    out = tmp_path / "out"
    r = run_cli(models / f"{model}.tflite", "--out", out, *extra)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("firmware-gen: error: "), r.stderr
    assert match in lines[0]
    assert "Traceback" not in r.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no temp leftovers


def test_unwritable_output_dir(models, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    r = run_cli(models / "good.tflite", "--out", blocker / "out")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write output" in lines[0]


def test_unknown_flag_is_exit_2(models, tmp_path):
    r = run_cli(models / "good.tflite", "--out", tmp_path / "o", "--bogus-flag")
    assert r.returncode == 2 and r.stderr.startswith("firmware-gen: error: ")


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_flag_with_its_help(flag):
    from firmware_gen.cli import FLAGS

    r = run_cli(flag)
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.startswith("usage: firmware-gen MODEL.tflite --out DIR")
    text = " ".join(r.stdout.split())  # help lines are wrapped
    for name in FLAGS:
        f = FLAGS[name]
        assert f"--{name}: " in text or f"--[no]{name}: " in text, name
        assert " ".join(f.help.split()) in text, name
    assert "Try --helpfull" not in r.stdout


def test_relative_paths_from_another_working_directory(models, tmp_path, monkeypatch, capsys):
    """Every path flag relative to the working directory, resolved once at the CLI edge; the
    library resolves too (compilers and QEMU run in temp folders)."""
    import json

    import numpy as np

    from firmware_gen.cli import main
    from firmware_gen.pipeline import generate
    from firmware_gen.toolchain import default_tflm_root

    work = tmp_path / "work"
    (work / "in").mkdir(parents=True)
    (work / "in" / "m.tflite").write_bytes((models / "good.tflite").read_bytes())
    (work / "in" / "meta.json").write_text(
        json.dumps({"format": "tfkws-model-metadata", "labels": ["a", "b", "c", "d"]})
    )
    board = {"core": "cortex-m4f", "sram_bytes": 1 << 18, "flash_bytes": 1 << 20, "clock_hz": 1}
    (work / "in" / "t.json").write_text(json.dumps({"targets": {"b": board}}))
    np.save(work / "in" / "x.npy", np.zeros((1, 16), np.int8))
    monkeypatch.chdir(work)
    tflm = default_tflm_root()
    args = [
        *("firmware-gen", "in/m.tflite", "--out", "out", "--json", "j/r.json", "--compile"),
        *("--metadata", "in/meta.json", "--targets-file", "in/t.json", "--check"),
        *("--inputs", "in/x.npy"),
        *(("--tflm-root", os.path.relpath(tflm.resolve(), work)) if tflm else ()),
    ]
    assert main(args) == 0, capsys.readouterr().err
    assert f"wrote 5 files to {work / 'out'}" in capsys.readouterr().out
    rep = json.loads((work / "j" / "r.json").read_text())
    assert rep == json.loads((work / "out" / "m_report.json").read_text())
    assert rep["model"]["labels"] == ["a", "b", "c", "d"] and rep["targets"][0]["key"] == "b"
    assert "host" in rep["compile"]["compilers"]
    if tflm:
        assert rep["compile"]["op_resolver"] == "compiled"
    result = generate("in/m.tflite", "lib_out", name="m")
    assert result.out_dir == work / "lib_out" and (work / "lib_out" / "m_report.json").exists()
