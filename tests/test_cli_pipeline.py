"""The CLI chain a user runs: train -> export (+ firmware) -> verify -> eval, on tiny data.

Also ``eval`` on real FLAC clips from ``../shared/data`` (skipped when it is absent).
"""

import json
import shutil
from pathlib import Path

import pytest

from tfkws.cli.main import main

TINY = "channels=8,num_blocks=1"


def _ok(capsys: pytest.CaptureFixture, *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_train_export_firmware_verify_eval(
    capsys: pytest.CaptureFixture, tmp_path: Path, tone_dataset: Path
) -> None:
    run = tmp_path / "run"
    _ok(
        capsys,
        "train",
        f"--data={tone_dataset}",
        f"--out={run}",
        "--mode=all",
        f"--params={TINY}",
        "--epochs=2",
        "--batch_size=8",
        "--verbose=0",
    )
    for name in ("run_config.json", "best_weights.h5", "results.json", "history.json"):
        assert (run / name).exists(), name
    assert (run / "plots" / "learning_curves.png").stat().st_size > 0

    fw = tmp_path / "fw"
    out = _ok(capsys, "export", f"--run={run}", f"--firmware_dir={fw}", "--target=nrf52840")
    tflite = run / "model_int8.tflite"
    assert str(tflite) in out and "nrf52840" in out
    meta = json.loads((run / "model_int8.metadata.json").read_text())
    assert meta["labels"] == ["high", "low", "mid"]
    assert {p.name for p in fw.iterdir()} >= {
        "kws_model_data.cc",
        "kws_model_data.h",
        "kws_op_resolver.h",
        "kws_report.json",
    }
    header = (fw / "kws_model_data.h").read_text()
    assert "kNumLabels = 3" in header and "kTensorArenaSize" in header
    assert '"high"' in (fw / "kws_model_data.cc").read_text()

    ver = tmp_path / "verify.json"
    _ok(capsys, "verify", f"--model={tflite}", f"--json={ver}", "--max_clips=5")
    report = json.loads(ver.read_text())
    assert report["within_1lsb_share"] >= 0.999 and report["n_clips"] == 5

    ev = tmp_path / "eval.json"
    _ok(
        capsys,
        "eval",
        f"--model={tflite}",
        f"--data={tone_dataset}",
        "--split=validation",
        f"--json={ev}",
        f"--plot={tmp_path / 'cm.png'}",
    )
    rep = json.loads(ev.read_text())
    assert rep["num_clips"] == 9 and sum(map(sum, rep["confusion_matrix"])) == 9
    assert (tmp_path / "cm.png").stat().st_size > 0


@pytest.mark.shared_data
def test_eval_on_real_speech_commands_clips(
    capsys: pytest.CaptureFixture, tmp_path: Path, shared_data: Path
) -> None:
    """A 12-class model trained briefly on a few real clips, evaluated in TFLM on real FLACs."""
    src = shared_data / "speech_commands_test_dev"
    data = tmp_path / "sc"
    counts = {}
    for label_dir in sorted(p for p in src.iterdir() if p.is_dir()):
        files = sorted(label_dir.glob("*.flac"))[:3]
        (data / label_dir.name).mkdir(parents=True)
        for f in files:
            shutil.copy(f, data / label_dir.name / f.name)
        counts[label_dir.name] = len(files)
    assert len(counts) == 12 and all(n == 3 for n in counts.values())

    run = tmp_path / "run"
    _ok(
        capsys,
        "train",
        f"--data={data}",
        f"--out={run}",
        f"--params={TINY}",
        "--epochs=1",
        "--batch_size=8",
        "--verbose=0",
    )
    _ok(capsys, "export", f"--run={run}", "--num_calibration=16")
    ev = tmp_path / "eval.json"
    _ok(
        capsys,
        "eval",
        f"--model={run / 'model_int8.tflite'}",
        f"--data={data}",
        "--split=all",
        f"--json={ev}",
    )
    rep = json.loads(ev.read_text())
    got = {k: v["count"] for k, v in rep["per_class"].items()}
    # 12-class mode adds generated silence to a split that has no _silence_ file.
    assert got.pop("_silence_") >= counts.pop("_silence_")
    assert got == counts
    assert 0.0 <= rep["accuracy"] <= 1.0


def test_train_keyword_repeat_reaches_the_training_split(
    capsys: pytest.CaptureFixture, tmp_path: Path, tone_dataset: Path, monkeypatch
) -> None:
    import tfkws.training.trainer as trainer

    seen = {}

    def fake_train(ds, *args, **kwargs):
        seen["training"] = ds.split("training")
        return {"model": "m", "params": {}, "best_val_accuracy": 0.0, "train_seconds": 0.0}

    monkeypatch.setattr(trainer, "train", fake_train)
    args = (f"--data={tone_dataset}", "--mode=all", f"--params={TINY}", "--epochs=1")
    _ok(capsys, "train", f"--out={tmp_path / 'a'}", *args)
    once = seen["training"]
    _ok(capsys, "train", f"--out={tmp_path / 'b'}", "--keyword_repeat=3", *args)
    keywords = [e for e in once if not e.label.startswith("_")]
    assert keywords and len(seen["training"]) == len(once) + 2 * len(keywords)
    assert main(["train", f"--out={tmp_path / 'c'}", "--keyword_repeat=0", *args]) != 0


def test_csv_device_vocabulary_train_export_eval(
    capsys: pytest.CaptureFixture, tmp_path: Path, tone_dataset: Path
) -> None:
    """``--keywords`` on a CSV dataset keeps those words; the others are ``_unknown_`` in
    training and wherever the run's dataset is read again (export's calibration, eval)."""
    rows = {"train": [], "val": []}
    for wav in sorted(tone_dataset.glob("*/spk*.wav")):
        rows["val" if wav.name.startswith("spk03") else "train"].append(
            f"{wav.relative_to(tone_dataset)},{wav.parent.name}"
        )
    data = tmp_path / "csv"
    data.mkdir()
    (data / "audio").symlink_to(tone_dataset, target_is_directory=True)
    for name, lines in rows.items():
        text = "\n".join(f"audio/{r}" for r in lines)
        (data / f"{name}.csv").write_text("file,class\n" + text + "\n")
    run = tmp_path / "run"
    common = (f"--data={data}", f"--params={TINY}", "--epochs=1", "--batch_size=8")
    code = main(["train", f"--out={tmp_path / 'bad'}", "--keywords=high,loud", *common])
    assert code == 2 and "no clips of loud" in capsys.readouterr().err
    _ok(capsys, "train", f"--out={run}", "--keywords=high", "--verbose=0", *common)
    assert json.loads((run / "run_config.json").read_text())["labels"] == ["_unknown_", "high"]
    _ok(capsys, "export", f"--run={run}", "--num_calibration=16")
    ev = tmp_path / "eval.json"
    tflite = run / "model_int8.tflite"
    _ok(capsys, "eval", f"--model={tflite}", f"--data={data}", "--split=validation", f"--json={ev}")
    got = {k: v["count"] for k, v in json.loads(ev.read_text())["per_class"].items()}
    assert got.get("high") == 3 and got.get("_unknown_") == 6  # low and mid: _unknown_
