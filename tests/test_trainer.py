"""Training: learns, is deterministic for a seed, and a killed run resumes to the same weights."""

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import TONE_WORDS, subprocess_env, train_command, trained_weights


def _train_cmd(data: Path, out: Path, epochs: int, extra: tuple[str, ...] = ()) -> list[str]:
    return train_command(data, out, epochs, 8, 'size="s",channels=16', "--verbose=0", *extra)


@pytest.mark.slow
def test_killed_run_resumes_to_same_weights(tone_dataset: Path, tmp_path: Path) -> None:
    epochs = 4
    full = tmp_path / "full"
    subprocess.run(
        _train_cmd(tone_dataset, full, epochs),
        check=True,
        env=subprocess_env(),
        capture_output=True,
    )
    results = json.loads((full / "results.json").read_text())
    assert results["epochs"] == epochs

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _train_cmd(tone_dataset, killed, epochs),
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    marker = killed / "checkpoints" / "checkpoint"
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    history = json.loads((killed / "history.json").read_text())
    assert 1 <= len(history["loss"]) < epochs
    assert not (killed / "results.json").exists()

    # Resuming without --resume is refused; with it, the run finishes.
    bad = subprocess.run(
        _train_cmd(tone_dataset, killed, epochs),
        env=subprocess_env(),
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "--resume" in bad.stderr
    subprocess.run(
        _train_cmd(tone_dataset, killed, epochs, ("--resume",)),
        check=True,
        env=subprocess_env(),
        capture_output=True,
    )
    history = json.loads((killed / "history.json").read_text())
    assert len(history["loss"]) == len(history["epoch_seconds"]) == epochs
    # Training time counts the killed process's epochs too, not only the resumed one's.
    assert json.loads((killed / "results.json").read_text())["train_seconds"] >= sum(
        history["epoch_seconds"]
    )
    for a, b in zip(trained_weights(full), trained_weights(killed), strict=True):
        np.testing.assert_array_equal(a, b)
    for png in ("learning_curves.png", "confusion_val.png"):
        assert (full / "plots" / png).stat().st_size > 1000


def test_label_smoothing_reaches_the_loss() -> None:
    import tensorflow as tf

    from tfkws.training.trainer import make_loss

    logits = tf.constant([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    y = tf.constant([0, 2])
    plain = float(make_loss(3)(y, logits))
    assert plain == pytest.approx(
        float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))), 1e-6
    )
    eps = 0.1
    target = tf.one_hot(y, 3) * (1 - eps) + eps / 3
    want = float(tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(target, logits)))
    assert float(make_loss(3, eps)(y, logits)) == pytest.approx(want, 1e-6)
    assert want != pytest.approx(plain, 1e-3)


def test_speed_perturb_reaches_the_augmentation_and_is_validated() -> None:
    from tfkws.errors import TfkwsError
    from tfkws.runs.config import TrainConfig
    from tfkws.training.trainer import _augment_config

    assert _augment_config(TrainConfig(speed_perturb=0.1)).speed == (0.9, 1.1)
    assert _augment_config(TrainConfig()).speed == (1.0, 1.0)
    assert _augment_config(TrainConfig(speed_perturb=0.1, augment=False)) is None
    with pytest.raises(TfkwsError, match="speed_perturb"):
        TrainConfig(speed_perturb=0.5)


def test_resume_accepts_a_run_saved_before_a_setting_existed(tmp_path: Path) -> None:
    from tfkws.errors import TfkwsError
    from tfkws.features.config import FeatureConfig
    from tfkws.runs.config import RunConfig, TrainConfig
    from tfkws.runs.files import RUN_CONFIG
    from tfkws.training.trainer import _check_resume

    run = RunConfig(train=TrainConfig(), features=FeatureConfig(), labels=["a", "b"], data="d")
    saved = run.to_dict()
    del saved["train"]["speed_perturb"]  # written by a tfkws without speed perturbation
    (tmp_path / RUN_CONFIG).write_text(json.dumps(saved))
    _check_resume(tmp_path, run, resume=True)
    with pytest.raises(TfkwsError, match="--resume"):
        _check_resume(tmp_path, run, resume=False)
    changed = RunConfig(
        train=TrainConfig(speed_perturb=0.1), features=FeatureConfig(), labels=["a", "b"], data="d"
    )
    with pytest.raises(TfkwsError, match="different settings"):
        _check_resume(tmp_path, changed, resume=True)


def test_resume_accepts_model_params_given_as_tuples(tmp_path: Path) -> None:
    """A run started with tuple params (the Python API, benchmarks' family tables) resumes:
    its saved JSON holds lists; a different value still refuses."""
    from tfkws.errors import TfkwsError
    from tfkws.features.config import FeatureConfig
    from tfkws.runs.config import RunConfig, TrainConfig
    from tfkws.runs.files import RUN_CONFIG
    from tfkws.training.trainer import _check_resume

    def run(channels: tuple[int, ...]) -> RunConfig:
        train = TrainConfig(model="repcnn", model_params={"channels": channels})
        return RunConfig(train=train, features=FeatureConfig(), labels=["a", "b"], data="d")

    (tmp_path / RUN_CONFIG).write_text(json.dumps(run((64, 96)).to_dict()))
    _check_resume(tmp_path, run((64, 96)), resume=True)
    with pytest.raises(TfkwsError, match="different settings"):
        _check_resume(tmp_path, run((64, 64)), resume=True)


@pytest.mark.slow
def test_qat_keeps_its_calibrated_start_when_no_epoch_beats_it(tmp_path: Path) -> None:
    from conftest import write_tone_dataset

    from tfkws.training.qat_finetune import qat_finetune

    tones = write_tone_dataset(tmp_path / "tones", TONE_WORDS, clips_per_word=40)
    float_run, qat_run = tmp_path / "float", tmp_path / "qat"
    cmd = _train_cmd(tones, float_run, 6, ("--noaugment",))
    cmd[cmd.index("--model=ds_cnn")] = "--model=repcnn"  # learns these tones in a few epochs
    cmd[cmd.index('--params=size="s",channels=16')] = '--params={"channels":[8,8],"strides":[1,2]}'
    subprocess.run(cmd, check=True, env=subprocess_env(), capture_output=True)
    # A learning rate this large wrecks the weights in one epoch: the start must be kept.
    res = qat_finetune(float_run, qat_run, epochs=1, lr=50.0, verbose=0)
    history = json.loads((qat_run / "history.json").read_text())
    start = res["qat_start_val_accuracy"]
    assert start >= 0.6, res
    assert history["val_accuracy"][-1] < start
    assert res["qat_kept_start"] and res["best_val_accuracy"] == pytest.approx(start)
    assert res["val"]["accuracy"] == pytest.approx(start)  # best weights = the start's
    # The start's ranges come from the clips PTQ calibrates on: the kept start is the PTQ model.
    _kept_start_is_the_ptq_model(tones, float_run, qat_run, tmp_path)
    # A sane learning rate: an epoch may win, and the start is still reported.
    res = qat_finetune(float_run, tmp_path / "qat_ok", epochs=1, verbose=0)
    assert res["best_val_accuracy"] >= res["qat_start_val_accuracy"]


def _kept_start_is_the_ptq_model(tones: Path, float_run: Path, qat_run: Path, tmp: Path) -> None:
    from tfkws.conversion.export import export_run
    from tfkws.conversion.tflite_convert import qat_to_int8_tflite
    from tfkws.data.dataset import open_dataset
    from tfkws.features.clips import clip_features
    from tfkws.runs.config import RunConfig
    from tfkws.runs.model import load_trained_model
    from tfkws.verification.parity import quantize_features
    from tfkws.verification.tflm import run_tflm

    ptq = export_run(float_run, tmp / "ptq.tflite")
    qat = export_run(qat_run, tmp / "qat.tflite")
    # Exported as the PTQ model it is, bit for bit, and said so.
    assert qat.tflite_path.read_bytes() == ptq.tflite_path.read_bytes()
    assert qat.metadata["quantization"] == "ptq"
    assert qat.metadata["qat"] == {"run": str(qat_run.resolve()), "kept_start": True}
    # The QAT graph's own conversion is that model too: same ranges, per-channel Dense.
    own = qat_to_int8_tflite(load_trained_model(qat_run, batch_size=1)[0])
    ds = open_dataset(tones, mode="all")
    x, _ = clip_features(list(ds.split("all")), ds.labels, RunConfig.load(float_run).features)
    xq = quantize_features(x, ptq.metadata["input"]["scale"], ptq.metadata["input"]["zero_point"])
    a = run_tflm(ptq.tflite_path.read_bytes(), xq).astype(int)
    b = run_tflm(own, xq).astype(int)
    np.testing.assert_array_equal(a, b)
