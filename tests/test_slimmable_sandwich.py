"""Sandwich-rule training: one step trains largest + smallest + random widths, updates the
weights, each trained width's own BN statistics (only those) and the cost counter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tf_keras as keras

from tfkws.errors import ModelError
from tfkws.layers.slimmable_base import slimmable_layers
from tfkws.models.catalog import build_model
from tfkws.training.sandwich import SandwichModel, soft_cross_entropy, wrap_slimmable

INPUT = (13, 10)
PARAMS = dict(channels=16, num_blocks=1, dropout=0.0, sandwich_random_widths=2)


def _compiled(seed: int = 0) -> SandwichModel:
    keras.utils.set_random_seed(seed)
    model = wrap_slimmable(build_model("slimmable_ds_cnn", INPUT, 3, PARAMS), seed=seed)
    assert isinstance(model, SandwichModel) and model.num_random == 2
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _data(n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, *INPUT)).astype(np.float32), np.arange(n) % 3


def test_one_step_trains_sandwich_widths_and_counts_cost() -> None:
    model = _compiled()
    x, y = _data()
    supernet = model.supernet
    kernels = {w.name: w.numpy().copy() for w in supernet.trainable_weights}
    bn = supernet.get_layer("conv0_bn")
    mean_before = bn.moving_mean.numpy().copy()
    hist = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    # weights moved
    assert any(not np.array_equal(kernels[w.name], w.numpy()) for w in supernet.trainable_weights)
    # the sub-widths: smallest first, then random ones strictly between smallest and largest
    sub = model.last_indices.numpy().tolist()
    largest = len(model.widths) - 1
    assert sub[0] == 0 and len(sub) == 3 and all(0 < i < largest for i in sub[1:])
    # cost: 1 full step + each trained sub-width's MACs relative to the full width
    costs = model.relative_costs
    want = 1.0 + sum(costs[i] for i in sub)
    assert model.steps_total.numpy() == 1
    assert model.cost_total.numpy() == pytest.approx(want)
    assert hist.history["width_cost"][0] == pytest.approx(want, rel=1e-6)
    assert model.cost_report()["cost_per_step"] == pytest.approx(want)
    assert 1.0 < want < 1.0 + 3.0
    # switchable BN: exactly the trained widths' statistics moved
    moved = {
        i
        for i in range(len(model.widths))
        if not np.array_equal(mean_before[i], bn.moving_mean.numpy()[i])
    }
    assert moved == {largest, *sub}
    # the supernet is left at its largest width (validation / prediction use it)
    assert all(layer.index == largest for layer in slimmable_layers(supernet))


def test_random_widths_vary_per_step_and_repeat_for_a_seed() -> None:
    model = _compiled(seed=5)
    x, y = _data()
    seen: list[tuple[int, ...]] = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda *_: seen.append(tuple(model.last_indices.numpy().tolist()))
    )
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[record])
    assert len(seen) == 4 and model.steps_total.numpy() == 4
    assert len(set(seen)) > 1
    # stateless in (seed, step): a resumed run (same step counter) draws the same widths
    for step, want in enumerate(seen):
        model.optimizer.iterations.assign(step)
        assert tuple(model._sub_indices().numpy().tolist()) == want


def test_validation_runs_full_width_and_weights_are_the_supernets(tmp_path: Path) -> None:
    model = _compiled()
    x, y = _data()
    hist = model.fit(x, y, batch_size=8, epochs=1, verbose=0, validation_data=(x, y))
    assert "val_accuracy" in hist.history and "val_width_cost" not in hist.history
    path = tmp_path / "w.h5"
    model.save_weights(str(path))
    fresh = build_model("slimmable_ds_cnn", INPUT, 3, PARAMS)
    fresh.load_weights(str(path))
    np.testing.assert_allclose(fresh(x, training=False), model(x, training=False), atol=1e-6)
    assert model.count_params() == fresh.count_params()


def test_wrap_leaves_plain_models_alone_and_rejects_bad_settings() -> None:
    plain = build_model("ds_cnn", INPUT, 3, dict(channels=8, num_blocks=1))
    assert wrap_slimmable(plain) is plain
    with pytest.raises(ModelError, match="no slimmable"):
        SandwichModel(plain)
    with pytest.raises(ModelError, match="temperature"):
        SandwichModel(build_model("slimmable_ds_cnn", INPUT, 3, PARAMS), temperature=0.0)


def test_soft_cross_entropy_is_minimal_at_the_teacher() -> None:
    teacher = np.array([[0.7, 0.2, 0.1]], np.float32)
    at_teacher = float(soft_cross_entropy(teacher, np.log(teacher)))
    elsewhere = float(soft_cross_entropy(teacher, np.zeros((1, 3), np.float32)))
    entropy = -float((teacher * np.log(teacher)).sum())
    assert at_teacher == pytest.approx(entropy, rel=1e-5) and elsewhere > at_teacher
