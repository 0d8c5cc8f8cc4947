"""Weight averaging (``--ema_decay``): the average follows its formula, swapping it in is undone,
and a training run validates, checkpoints and exports the average, not the last weights."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from helpers import subprocess_env, train_command, trained_weights

from tfkws.errors import TfkwsError
from tfkws.runs.config import TrainConfig
from tfkws.runs.model import load_trained_model
from tfkws.training.weight_average import WARMUP_OFFSET, WeightAverage


def _model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inp = keras.Input((4,))
    x = keras.layers.Dense(3)(inp)
    x = keras.layers.BatchNormalization()(x)
    return keras.Model(inp, x)


def test_average_follows_the_formula_and_covers_batchnorm_statistics() -> None:
    model = _model()
    average = WeightAverage(model, decay=0.5)
    # Every float weight, BatchNorm's moving statistics included.
    assert len(average.weights) == len(model.weights) == 6
    expected = [w.numpy() for w in model.weights]
    rng = np.random.default_rng(1)
    for n in range(1, 6):
        new = [rng.normal(size=w.shape).astype(np.float32) for w in model.weights]
        for w, v in zip(model.weights, new, strict=True):
            w.assign(v)
        average.update()
        d = min(0.5, (1 + n) / (WARMUP_OFFSET + n))
        expected = [d * e + (1 - d) * v for e, v in zip(expected, new, strict=True)]
    for s, e in zip(average.shadow, expected, strict=True):
        np.testing.assert_allclose(s.numpy(), e, rtol=1e-6, atol=1e-6)
    assert int(average.updates.numpy()) == 5


def test_swapped_puts_the_average_in_and_the_own_weights_back() -> None:
    model = _model()
    average = WeightAverage(model, decay=0.9)
    own = [w.numpy() for w in model.weights]
    for s in average.shadow:
        s.assign(tf.ones_like(s) * 7.0)
    x = np.ones((2, 4), np.float32)
    with pytest.raises(RuntimeError), average.swapped():
        for w in model.weights:
            np.testing.assert_array_equal(w.numpy(), 7.0)
        assert not np.allclose(model(x).numpy(), 0.0)
        raise RuntimeError("an evaluation that fails still gives the weights back")
    for w, v in zip(model.weights, own, strict=True):
        np.testing.assert_array_equal(w.numpy(), v)


def test_decay_is_validated() -> None:
    with pytest.raises(TfkwsError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(_model(), decay=0.0)


@pytest.mark.slow
def test_training_exports_the_average_of_its_best_epoch(tone_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = train_command(tone_dataset, run, 2, 8, 'size="s",channels=16', "--verbose=0")
    subprocess.run([*cmd, "--ema_decay=0.9"], check=True, env=subprocess_env(), capture_output=True)
    history = json.loads((run / "history.json").read_text())
    averaged = history["ema_val_accuracy"]
    assert len(averaged) == len(history["val_accuracy"]) == 2
    results = json.loads((run / "results.json").read_text())
    assert results["best_val_accuracy"] == pytest.approx(max(averaged))
    best_epoch = int(np.argmax(averaged)) + 1  # the first best: a tie keeps the earlier epoch
    # Both epochs' checkpoints are kept (max_to_keep=2): the best epoch's holds its average.
    reader = tf.train.load_checkpoint(str(run / "checkpoints" / f"ckpt-{best_epoch}"))
    keys = sorted(
        (k for k in reader.get_variable_to_shape_map() if k.startswith("average/")),
        key=lambda k: int(k.split("/")[1]),
    )
    shadow = [reader.get_tensor(k) for k in keys]
    exported = trained_weights(run)
    assert len(shadow) == len(exported) > 0
    for s, w in zip(shadow, exported, strict=True):
        np.testing.assert_array_equal(s, w)
    # ... and differs from that epoch's own (last) weights, which the checkpoint holds too.
    model, _ = load_trained_model(run)
    ckpt = str(run / "checkpoints" / f"ckpt-{best_epoch}")
    tf.train.Checkpoint(model=model).restore(ckpt).expect_partial()
    own = model.get_weights()
    assert len(own) == len(exported)
    assert any(not np.array_equal(a, b) for a, b in zip(own, exported, strict=True))


def test_epoch_line_shows_the_average() -> None:
    from tfkws.training.progress import epoch_line

    logs = {"loss": 1.0, "val_accuracy": 0.5, "ema_val_accuracy": 0.625}
    line = epoch_line(0, 2, logs, [3.0])
    assert "val accuracy 50.0 %  averaged 62.5 %" in line
