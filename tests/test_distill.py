"""Knowledge distillation: the student learns what the teachers predict, weighted against labels.

Class-coded feature maps (learnable in seconds); a teacher trained on the true labels, a student
trained on deliberately wrong labels: with weight 1 it must follow the teacher, with weight 0
the labels. Plus the CLI path (``tfkws train --teacher``) and its one-line errors.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import tf_keras as keras
from conftest import run_cli
from helpers import fit

from tfkws.errors import TfkwsError
from tfkws.runs.config import TrainConfig
from tfkws.runs.model import load_trained_model
from tfkws.training.distill import DistillModel


@pytest.fixture(scope="module")
def clips() -> tuple[np.ndarray, np.ndarray]:
    """90 feature maps [49, 40]: noise, plus a band of channels lit per class (the mechanism is
    under test here, not audio)."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    x = rng.normal(size=(90, 49, 40)).astype(np.float32)
    for k in range(3):
        x[y == k, :, 10 * k : 10 * k + 5] += 1.5
    return x, y


def _small(seed: int, shape: tuple) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape)  # [frames, channels]: a tone is a channel, so pool over time only
    x = keras.layers.Conv1D(8, 3, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inp, keras.layers.Dense(3)(x))


def test_student_follows_teacher_with_weight_one_and_labels_with_weight_zero(clips) -> None:
    x, y = clips
    teacher = _small(0, x.shape[1:])
    fit(teacher, x, y, epochs=40, lr=0.02, batch_size=15)
    assert np.mean(np.argmax(teacher.predict(x, verbose=0), -1) == y) >= 0.95
    wrong = (y + 1) % 3  # labels that contradict the teacher on every clip
    for weight, target in ((1.0, y), (0.0, wrong)):
        student = _small(1, x.shape[1:])
        distill = DistillModel(student, teacher, weight=weight, temperature=2.0)
        fit(distill, x, wrong, epochs=40, lr=0.02, batch_size=15)
        pred = np.argmax(student.predict(x, verbose=0), -1)
        assert np.mean(pred == target) >= 0.9, (weight, np.mean(pred == target))
    assert not distill.trainable_weights or all(
        any(w is v for v in student.trainable_weights) for w in distill.trainable_weights
    )  # the teacher is never trained (nor checkpointed) through the wrapper
    with pytest.raises(TfkwsError, match="distill"):
        TrainConfig(distill_weight=1.5)


def test_cli_train_with_teacher(
    capsys: pytest.CaptureFixture, tmp_path: Path, tone_dataset: Path
) -> None:
    common = ["--mode=all", "--verbose=0", "--batch_size=8", "--noaugment"]
    common.append(f"--data={tone_dataset}")
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    code, _, err = run_cli(
        capsys,
        "train",
        *common,
        "--model=repcnn",
        '--params={"channels":[8,8],"strides":[1,2]}',
        "--epochs=3",
        f"--out={teacher}",
    )
    assert code == 0, err
    small = ["--model=ds_cnn", "--params=channels=8,num_blocks=1", "--epochs=2"]
    code, _, err = run_cli(
        capsys, "train", *common, *small, f"--teacher={teacher}", f"--out={student}"
    )
    assert code == 0, err
    cfg = json.loads((student / "run_config.json").read_text())["train"]
    assert cfg["teachers"] == [str(teacher.resolve())] and cfg["distill_weight"] == 0.5
    res = json.loads((student / "results.json").read_text())
    t_res = json.loads((teacher / "results.json").read_text())
    assert res["teachers"]["val_accuracy"] == pytest.approx(t_res["val"]["accuracy"])
    model, _ = load_trained_model(student)  # weight files are the plain student's
    assert model.name.startswith("ds_cnn")
    # A weight-shared Conformer student still reports its parameters per sharing level (the
    # report reads the student inside the distillation wrapper)
    conf = tmp_path / "conformer"
    tiny = '--params={"dim":8,"ff_dim":8,"num_heads":2,"depth":2,"repeat":2,"rank":2}'
    code, _, err = run_cli(
        capsys,
        "train",
        *common,
        "--model=conformer",
        tiny,
        "--epochs=1",
        f"--teacher={teacher}",
        f"--out={conf}",
    )
    assert code == 0, err
    report = json.loads((conf / "results.json").read_text())["param_report"]
    assert report["unique"] < report["used"], report

    # Resuming the finished run restores its checkpoint (student + optimizer only).
    code, _, err = run_cli(
        capsys,
        "train",
        *common,
        *small,
        f"--teacher={teacher}",
        f"--out={student}",
        "--resume",
    )
    assert code == 0, err

    # QAT distilled from the float run it fine-tunes (and a QAT run is refused as a teacher).
    qat = tmp_path / "qat"
    argv = ["qat", f"--run={student}", f"--out={qat}", "--epochs=1", "--verbose=0"]
    code, _, err = run_cli(capsys, *argv, f"--teacher={student}")
    assert code == 0, err
    assert json.loads((qat / "run_config.json").read_text())["train"]["teachers"] == [
        str(student.resolve())
    ]
    code, _, err = run_cli(capsys, "export", f"--run={qat}")
    assert code == 0, err
    code, _, err = run_cli(capsys, *argv[:2], f"--out={tmp_path / 'q2'}", f"--teacher={qat}")
    assert code == 2 and "a QAT run" in err

    # One-line errors: not a run, different features.
    for extra, needle in (
        ([f"--teacher={tmp_path}"], "not a tfkws run folder"),
        ([f"--teacher={teacher}", "--features=logmel"], "feature config differs"),
    ):
        code, _, err = run_cli(
            capsys, "train", *common, *small, *extra, f"--out={tmp_path / 'bad'}"
        )
        lines = [ln for ln in err.strip().splitlines() if ln.startswith("tfkws")]
        assert code == 2 and len(lines) == 1 and needle in lines[0], err
        assert not (tmp_path / "bad").exists()  # nothing written for a refused run
        assert str(teacher if "features" in needle else tmp_path) in lines[0]
