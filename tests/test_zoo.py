"""The pretrained model zoo: list / get work, and every card figure firmware_gen can measure is
recomputed here and must equal the card exactly (bytes, MACs, host arena; on-target arenas where
the Cortex-M toolchain and QEMU are present). Accuracy is measured by ``benchmarks/zoo.py``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import SHARED_DATA, run_cli

from tfkws.zoo.catalog import (
    CARD_MD,
    METADATA,
    STEP_METADATA,
    TFLITE,
    ZOO_DIR,
    card_markdown,
    deployed_params,
    get_model,
    list_models,
)

MODELS = list_models()
NAMES = [m.name for m in MODELS]


def test_zoo_ships_models_and_stays_small() -> None:
    assert NAMES, f"no model in {ZOO_DIR}"
    total = sum(f.stat().st_size for f in ZOO_DIR.rglob("*") if f.is_file())
    assert total < 10 * 2**20, f"zoo is {total:,} bytes (limit 10 MB)"


@pytest.mark.parametrize("name", NAMES)
def test_card_matches_its_files(name: str) -> None:
    m = get_model(name)
    meta = json.loads((m.folder / METADATA).read_text())
    assert meta["tflite_sha256"] == hashlib.sha256(m.tflite.read_bytes()).hexdigest()
    assert m.card["labels"] == meta["labels"]
    assert m.card["features"] == meta["feature_config"]
    assert m.card["trained_params"] == meta["params"]
    assert m.card["params"] == deployed_params(m.tflite)
    assert m.card["tflite_bytes"] == m.tflite.stat().st_size
    assert (m.folder / CARD_MD).read_text() == card_markdown(m.card)
    for key in ("train_command", "eval_command", "data"):
        assert m.card[key], f"{name}: card has no {key}"
    st = m.card.get("streaming")
    assert (m.step_tflite is None) == (st is None), f"{name}: step model and card disagree"
    if st:
        step_meta = json.loads((m.folder / STEP_METADATA).read_text())
        assert step_meta["tflite_sha256"] == hashlib.sha256(m.step_tflite.read_bytes()).hexdigest()
        assert step_meta["labels"] == meta["labels"]
        assert step_meta["streaming"]["window_model"] == TFLITE
        assert st["step_tflite_bytes"] == m.step_tflite.stat().st_size
        assert st["window_tflite_bytes"] == m.card["tflite_bytes"]
        assert st["state_bytes"] == step_meta["streaming"]["state_bytes"]
        assert st["operating_points"], f"{name}: streaming card without operating points"


@pytest.mark.parametrize("name", NAMES)
def test_card_figures_equal_firmware_gen(name: str, tmp_path: Path) -> None:
    from firmware_gen.pipeline import generate

    m = get_model(name)
    report = generate(m.tflite, tmp_path / "fw", name="kws").report
    assert report["model_bytes"] == m.card["tflite_bytes"]
    assert report["total_macs"] == m.card["macs"]
    assert report["min_arena_bytes"] == m.card["arena_bytes"]["host"]
    assert [o["op"] for o in report["ops"]] == m.card["ops"]
    if m.step_tflite:
        st = m.card["streaming"]
        step = generate(m.step_tflite, tmp_path / "fw_step", name="kws").report
        assert step["model_bytes"] == st["step_tflite_bytes"]
        assert step["total_macs"] == st["step_macs"]
        assert step["min_arena_bytes"] == st["step_arena_bytes"]["host"]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_card_on_target_arenas_equal_firmware_gen(name: str, tmp_path: Path) -> None:
    from firmware_gen.pipeline import generate
    from tfkws.firmware import on_target_skip_reason

    skip = on_target_skip_reason()
    if skip:
        pytest.skip(skip)
    m = get_model(name)
    models = [(m.tflite, m.card["arena_bytes"])]
    if m.step_tflite:  # a streaming entry's step model (instructions depend on the compiler)
        models.append((m.step_tflite, m.card["streaming"]["step_arena_bytes"]))
    for i, (tflite, arenas) in enumerate(models):
        wanted = {k: v for k, v in arenas.items() if k != "host"}
        if not wanted:
            pytest.skip(f"{name}: card has no on-target arena")
        cpus = sorted({k.split("/")[0].removeprefix("cortex-") for k in wanted})
        kernels = sorted({k.split("/")[1] for k in wanted})
        report = generate(
            tflite,
            tmp_path / f"fw{i}",
            name="kws",
            on_target=cpus,
            kernels=kernels,
            tflm_library="model",
        ).report
        got = {
            f"{v['cpu']}/{v['kernels']}": v["arena"]["min_bytes"]
            for v in report["on_target"]["variants"]
        }
        assert got == wanted, tflite.name


def test_zoo_list_cli(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run_cli(capsys, "zoo", "list")
    assert code == 0
    for name in NAMES:
        assert name in out
    code, out, _ = run_cli(capsys, "zoo", "list", "--json")
    assert code == 0 and set(json.loads(out)) == set(NAMES)


def test_zoo_get_cli_relative_out(
    capsys: pytest.CaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = NAMES[0]
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "zoo", "get", name, "--out", "got", "--target", "nrf52840")
    assert code == 0, err
    got = tmp_path / "got"
    assert (got / TFLITE).read_bytes() == get_model(name).tflite.read_bytes()
    assert (got / METADATA).exists() and (got / "card.json").exists()
    for f in ("kws_model_data.cc", "kws_model_data.h", "kws_op_resolver.h", "kws_report.json"):
        assert (got / "firmware" / f).exists(), f
    assert "alignas(16)" in (got / "firmware" / "kws_model_data.cc").read_text()
    # a second get into the same folder refuses rather than mixing two models' files
    code, _, err = run_cli(capsys, "zoo", "get", name, "--out", "got")
    assert code == 2 and "not empty" in err


def test_zoo_errors_are_one_line(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "zoo", "get", "no_such_model", "--out", str(tmp_path / "x"))
    assert code == 2 and "no model 'no_such_model'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    code, _, err = run_cli(capsys, "zoo", "fetch")
    assert code == 2 and "expected one action" in err


SUPERNETS = [m.name for m in MODELS if m.supernet]


@pytest.mark.slow
@pytest.mark.parametrize("name", SUPERNETS)
def test_shipped_supernet_gives_back_its_tflite(
    name: str, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    """The supernet a user gets (for ``slim select``) is the one the card's ``.tflite`` came
    from: its width-1 extraction, calibrated on the same training clips, is byte-identical."""
    model = get_model(name)
    data = SHARED_DATA / "arabic_speech_commands"
    if not data.is_dir():
        pytest.skip(f"{data} not found (the supernet's training data, for calibration)")
    width = json.loads(model.metadata.read_text())["slim"]["width"]
    out = tmp_path / "w.tflite"
    code, _, err = run_cli(
        capsys, "slim", "extract", "--run", str(model.supernet), "--width", str(width),
        "--data", str(data), "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    assert out.read_bytes() == model.tflite.read_bytes()


def test_readme_streaming_zoo_commands_run_as_written(tmp_path: Path) -> None:
    """The README's ``zoo get repcnn_stream_asc`` + ``tfkws detect`` on its step model, exactly
    as written, from a fresh folder holding a ``recording.wav`` (noise around two quiet gaps)."""
    import numpy as np
    import soundfile as sf
    from readme_blocks import run_block

    rng = np.random.default_rng(0)
    audio = 0.02 * rng.standard_normal(16000 * 4)
    audio[16000:24000] = 0.0
    sf.write(tmp_path / "recording.wav", audio.astype(np.float32), 16000, subtype="PCM_16")
    run_block("zoo get repcnn_stream_asc", tmp_path)
    m = get_model("repcnn_stream_asc")
    got = tmp_path / "kws_stream"
    assert (got / "model_int8_step.tflite").read_bytes() == m.step_tflite.read_bytes()
    report = json.loads((tmp_path / "detections.json").read_text())
    assert isinstance(report["detections"], list)
    assert all(d["label"] in m.card["labels"] for d in report["detections"])


def test_readme_wake_word_commands_find_receive_and_nothing_else(
    shared_data: Path, tmp_path: Path
) -> None:
    """The README's ``zoo get repcnn_receive_stream_asc`` + ``tfkws detect`` at the card's
    threshold, exactly as written, on a ``recording.wav`` of val.csv clips (speakers never trained
    on): three of ``receive`` between six other words. Each ``receive`` is detected once, within
    its clip or 0.25 s after it; no other word fires."""
    import numpy as np
    import soundfile as sf
    from readme_blocks import block_with, run_block

    asc = shared_data / "arabic_speech_commands" / "audio"
    clips = [
        ("send", "00000012_NO_02"),
        ("receive", "00000012_NO_03"),
        ("record", "00000008_NO_05"),
        ("yes", "00000025_NO_01"),
        ("receive", "00000008_NO_06"),
        ("previous", "00000021_NO_04"),
        ("cancel", "00000002_NO_03"),
        ("receive", "00000025_NO_06"),
        ("open", "00000007_NO_02"),
    ]
    rng = np.random.default_rng(0)
    gap = 16000  # 1 s of quiet noise between clips
    audio, spans = [0.002 * rng.standard_normal(gap)], []
    for word, name in clips:
        x, sr = sf.read(asc / word / f"{name}.flac", dtype="float32")
        assert sr == 16000
        start = sum(map(len, audio))
        spans.append((word, start / sr, (start + len(x)) / sr))
        audio += [x, 0.002 * rng.standard_normal(gap)]
    sf.write(tmp_path / "recording.wav", np.concatenate(audio), 16000, subtype="PCM_16")
    run_block("zoo get repcnn_receive_stream_asc", tmp_path)
    m = get_model("repcnn_receive_stream_asc")
    detect = next(
        line for line in block_with("zoo get repcnn_receive_stream_asc") if "detect" in line
    )
    threshold = float(detect.split("--threshold ")[1].split()[0])
    assert any(
        abs(p["threshold"] - threshold) < 1e-9 for p in m.card["streaming"]["operating_points"]
    ), f"README threshold {threshold} is not one of the card's operating points"
    found = json.loads((tmp_path / "wake.json").read_text())["detections"]
    assert [d["label"] for d in found] == ["receive"] * 3, found
    for d, (_, start, end) in zip(found, [s for s in spans if s[0] == "receive"], strict=True):
        assert start <= d["time_s"] <= end + 0.25, (d, start, end)
