"""The weight-shared conformer: parameter counts per level, real sharing, gradients, folding."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from conformer_helpers import CLASSES, COMBOS, INPUT, TINY, build, role, set_by_role
from conftest import run_cli

from tfkws.errors import TfkwsError
from tfkws.folding.fold import fold_model
from tfkws.models.catalog import build_model
from tfkws.models.conformer import applied_params, conformer_param_report
from tfkws.models.registry import param_report
from tfkws.models.sharing_plan import LEVELS


def _report(combo: str) -> dict:
    return conformer_param_report(INPUT, CLASSES, **{**TINY, **COMBOS[combo]})


@pytest.mark.parametrize("combo", sorted(COMBOS))
def test_param_counts_equal_the_formula(combo: str) -> None:
    model = build(combo)
    rep = _report(combo)
    assert model.count_params() == rep["unique"]
    assert applied_params(model) == rep["used"]
    after = [rep["unique_after_level"][k] for k in ("none", *LEVELS)]
    assert after == sorted(after, reverse=True) and after[-1] == rep["unique"]
    if combo != "none":  # every level, alone or together, saves weights
        assert rep["unique"] < rep["unique_after_level"]["none"]
        assert rep["unique"] < rep["used"] or combo == "low_rank"


def _role_grads(model: keras.Model, x: tf.Tensor) -> tuple[np.ndarray, dict[str, list]]:
    with tf.GradientTape() as tape:
        y = model(x, training=False)
        loss = tf.reduce_sum(y * tf.range(1.0, CLASSES + 1.0))
    grads = tape.gradient(loss, model.trainable_weights)
    by_role: dict[str, list] = collections.defaultdict(list)
    for w, g in zip(model.trainable_weights, grads, strict=True):
        assert g is not None, f"{w.name} gets no gradient"
        by_role[role(w.name)].append(g.numpy())
    return y.numpy(), by_role


@pytest.mark.parametrize(
    "combo", sorted(set(COMBOS) - {"none", "low_rank"})
)  # low rank alone shares nothing
def test_shared_variable_is_one_and_every_user_trains_it(combo: str) -> None:
    """Against a twin without sharing (same ranks, every copy set to the shared value): same
    outputs, fewer variables, and each shared gradient is the sum of the twin copies'."""
    shared = build(combo)
    twin = build("low_rank" if COMBOS[combo].get("rank") else "none")
    set_by_role(shared)
    set_by_role(twin)
    x = tf.constant(np.random.default_rng(0).normal(size=(2, *INPUT)), tf.float32)
    ys, gs = _role_grads(shared, x)
    yt, gt = _role_grads(twin, x)
    np.testing.assert_allclose(ys, yt, rtol=1e-4, atol=1e-5)
    assert set(gs) == set(gt)
    fewer = [r for r in gs if len(gs[r]) < len(gt[r])]
    assert fewer, "nothing is shared"
    for r in gs:
        np.testing.assert_allclose(sum(gs[r]), sum(gt[r]), rtol=1e-3, atol=1e-5, err_msg=r)
    ids = [id(w) for w in shared.weights]
    assert len(ids) == len(set(ids))


def test_each_level_shares_what_its_plan_says() -> None:
    def calls(model: keras.Model, name: str) -> int:
        return len(model.get_layer(name)._inbound_nodes)

    assert calls(build("repeat"), "block0_ffn1_up") == 2  # one block, two layers
    m = build("modules")
    assert calls(m, "shared_ffn1_up") == calls(m, "shared_attn_query") == 2
    m = build("subcomponents")
    assert calls(m, "block0_ffn1_up") == 2 and calls(m, "block0_attn_query") == 1
    assert not any(la.name.endswith("_key") or "ffn2_up" in la.name for la in m.layers)
    m = build("low_rank_shared")
    assert calls(m, "shared_u_ffn_up") == 4 and calls(m, "shared_u_attn_key") == 2


def test_fold_keeps_sharing_and_folds_the_shared_batchnorm() -> None:
    model = build("all")
    set_by_role(model)
    folded = fold_model(model)
    assert not any(isinstance(la, keras.layers.BatchNormalization) for la in folded.layers)
    assert len(folded.get_layer("shared_conv_dw")._inbound_nodes) == 2
    assert folded.count_params() < model.count_params()  # BN statistics folded away
    x = np.random.default_rng(1).normal(size=(3, *INPUT)).astype(np.float32)
    np.testing.assert_allclose(folded(x), model(x, training=False), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(repeat=3), "repeat 3"),
        (dict(share_factors=True), "share_factors needs a low rank"),
        (dict(share_modules="ffn,mlp"), "unknown module(s) mlp"),
        (dict(num_heads=3), "not a multiple of num_heads"),
    ],
)
def test_bad_plans_are_one_line_errors(params: dict, message: str) -> None:
    with pytest.raises(TfkwsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build("none", **params)


def test_models_command_shows_unique_and_used(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run_cli(capsys, "models")
    lines = out.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("conformer "))
    assert code == 0 and "267,228 unique, 267,228 used" in lines[at + 2]
    code, out, _ = run_cli(capsys, "models", "--json")
    rep = json.loads(out)["conformer"]["param_report"]
    assert code == 0 and rep["unique"] == rep["unique_after_level"]["none"] == 267228


def test_share_modules_spellings() -> None:
    from tfkws.cli.common import parse_params
    from tfkws.models.sharing_plan import parse_modules

    params = parse_params("share_modules=conv+ffn,rank=8")
    assert parse_modules(params["share_modules"]) == ("ffn", "conv") == parse_modules("conv,ffn")
    assert parse_modules(["attn"]) == ("attn",) and parse_modules("") == ()


def test_registered_with_a_param_report() -> None:
    model = build_model("conformer", (49, 40), 12, {"repeat": 2, "rank": 16})
    rep = param_report("conformer", (49, 40), 12, {"repeat": 2, "rank": 16})
    assert rep is not None and model.count_params() == rep["unique"] < rep["used"]
    assert param_report("ds_cnn", (49, 40), 12, {}) is None
