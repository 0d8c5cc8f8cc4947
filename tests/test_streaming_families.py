"""External-state streaming beyond DS-CNN: folded RepCNN, a ``slimmable_tc_cnn`` width, BC-ResNet.

Each family built with ``time_padding="valid"`` is folded (and for the supernet, one width cut
out), rebuilt by ``to_streaming`` and stepped over a stream: after the warm-up, every step's float
logits equal the non-streaming model's on the matching window, and the int8 step model in TFLM
(state fed back as int8) gives the int8 window model's outputs within 1 LSB. BC-ResNet is a DAG
(residual and broadcast adds whose shortcut waits for a dilated temporal conv: ``Delay`` states).
Random weights with non-trivial BatchNorm / SubSpectralNorm statistics, tiny widths.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import tf_keras as keras
from random_weights import randomize
from streaming_helpers import step_matches_window

from tfkws.errors import ModelError, TfkwsError
from tfkws.folding.fold import fold_model
from tfkws.folding.slim_width import extract_width
from tfkws.models import bc_resnet
from tfkws.models.repcnn import build_repcnn, build_repcnn_unibranch
from tfkws.models.slimmable_tc_cnn import build_slimmable_tc_cnn
from tfkws.streaming.external_state import StreamingModel, to_streaming

FEATS = 16


def _repcnn() -> keras.Model:
    model = build_repcnn(
        (49, FEATS),
        5,
        batch_size=1,
        channels=[8, 8, 12],
        strides=[1, 2, 1],
        kernel_sizes=[5, 3],
        time_padding="valid",
    )
    return randomize(model, 0, "network")


def _repcnn_separable() -> keras.Model:
    model = build_repcnn(
        (49, FEATS),
        5,
        batch_size=1,
        channels=[8, 12],
        strides=[2, 1],
        kernel_sizes=[7, 3],
        separable=True,
        time_padding="valid",
    )
    return randomize(model, 1, "network")


def _repcnn_unibranch() -> keras.Model:
    model = build_repcnn_unibranch(
        (49, FEATS), 5, batch_size=1, channels=[8, 12], strides=[1, 2], time_padding="valid"
    )
    return randomize(model, 2, "network")


def _tc_cnn_width() -> keras.Model:
    supernet = build_slimmable_tc_cnn(
        (49, FEATS),
        5,
        batch_size=1,
        channels=(16, 24, 24),
        strides=(1, 2, 1),
        kernel_size=5,
        time_padding="valid",
    )
    randomize(supernet, 3, "network")
    return extract_width(supernet, 0.55)


def _bc_resnet(monkeypatch: pytest.MonkeyPatch, frames: int = 49) -> keras.Model:
    # fewer blocks than the paper's (2, 2, 4, 4): same block kinds (transition and identity,
    # frequency strides, dilations 1..4), a quarter of the conversion time
    monkeypatch.setattr(bc_resnet, "_BLOCKS", (2, 1, 1, 1))
    model = bc_resnet.build_bc_resnet(
        (frames, 20),
        4,
        batch_size=1,
        width=0.5,
        dropout=0.0,
        time_padding="valid",
        time_dilation=(1, 2, 2, 4),
    )
    return randomize(model, 4, "network")


FAMILIES: dict[str, Callable[..., keras.Model]] = {
    "repcnn": lambda mp: fold_model(_repcnn()),
    "repcnn_separable": lambda mp: fold_model(_repcnn_separable()),
    "repcnn_unibranch": lambda mp: fold_model(_repcnn_unibranch()),
    "slimmable_tc_cnn_w0.55": lambda mp: fold_model(_tc_cnn_width()),
    "bc_resnet": lambda mp: fold_model(_bc_resnet(mp)),
    # a window of exactly the receptive field: one row left to pool, the pool keeps no state
    "bc_resnet_29_frames": lambda mp: fold_model(_bc_resnet(mp, 29)),
}


def _frames(sm: StreamingModel, feats: int, steps: int, seed: int = 0) -> np.ndarray:
    n = (sm.warmup_steps + steps) * sm.hop + sm.lag + sm.window - sm.used
    return (np.abs(np.random.default_rng(seed).standard_normal((n, feats))) * 3).astype(np.float32)


@pytest.mark.parametrize("family", FAMILIES)
def test_float_step_equals_the_window_model(family: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = FAMILIES[family](monkeypatch)
    sm = to_streaming(model)
    frames = _frames(sm, int(model.input_shape[2]), 12)
    outs = sm.run(frames)
    assert step_matches_window(model, sm, frames, outs) >= 10
    # the step before the warm-up ends has not seen a whole window yet: it differs
    k = sm.warmup_steps - 1
    end = max(sm.window_end(k), sm.window)
    assert not np.allclose(outs[k], model(frames[None, end - sm.window : end]).numpy()[0])


def test_bc_resnet_shortcuts_wait_for_the_temporal_conv(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each block's broadcast add delays its frequency branch by the temporal conv's dilation
    (rows), an identity block's add its shortcut too; the stem and head keep 4 rows."""
    sm = to_streaming(fold_model(_bc_resnet(monkeypatch)))
    rows = dict(zip(sm.model.input_names[1:], (s[1] for s in sm.state_shapes), strict=True))
    assert sm.hop == 1 and sm.lag == 0
    assert rows["stem_conv_state"] == 4 and rows["head_dw_state"] == 4
    assert rows["stage1_block1_time_dw_state"] == 2  # (3 - 1) * dilation 1
    assert rows["stage1_block1_broadcast_add_delay0_state"] == 1
    assert rows["stage1_block1_identity_add_delay1_state"] == 1
    assert (
        rows["stage4_block0_time_dw_state"] == 8
        and rows["stage4_block0_broadcast_add_delay0_state"] == 4
    )
    assert not any("stage4_block0_identity" in name for name in rows)  # transition: no identity
    # the step model (Stream, Delay, StreamingAveragePool) round-trips through its config
    again = keras.Model.from_config(sm.model.get_config())
    again.set_weights(sm.model.get_weights())
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(x.shape).astype(np.float32) for x in sm.model.inputs]
    for want, got in zip(sm.model(xs), again(xs), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_same_time_padding_cannot_stream_and_valid_needs_the_receptive_field() -> None:
    same = bc_resnet.build_bc_resnet((49, 20), 4, batch_size=1, width=0.5)
    with pytest.raises(TfkwsError, match="time_padding=valid"):
        to_streaming(fold_model(same))
    with pytest.raises(ModelError, match="reads 117 frames per output, the input has 98"):
        bc_resnet.build_bc_resnet((98, 40), 4, time_padding="valid")
    with pytest.raises(ModelError, match="time_padding"):
        build_repcnn((49, FEATS), 5, time_padding="causal")
    same = build_repcnn((49, FEATS), 5, batch_size=1, channels=[8], strides=[1])
    with pytest.raises(TfkwsError, match="time_padding=valid"):
        to_streaming(fold_model(same))
    with pytest.raises(TfkwsError, match="fold the model first"):
        to_streaming(_repcnn())
    supernet = build_slimmable_tc_cnn((49, FEATS), 5, batch_size=1, time_padding="valid")
    with pytest.raises(TfkwsError, match="cut one width out first"):
        to_streaming(supernet)


@pytest.mark.parametrize(
    "family", ["repcnn", "slimmable_tc_cnn_w0.55", "bc_resnet", "bc_resnet_29_frames"]
)
def test_int8_step_model_in_tflm_equals_the_int8_window_model(
    family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The int8 step model in TFLM, its int8 state fed back each step, gives the int8 window
    model's outputs within 1 LSB at every step after the warm-up."""
    from tfkws.conversion.model_info import inspect_tflite
    from tfkws.features.extract import features_to_int8
    from tfkws.streaming.streaming_int8 import TflmStepper, streaming_int8
    from tfkws.verification.tflm import run_tflm

    model = FAMILIES[family](monkeypatch)
    feats = int(model.input_shape[2])
    rng = np.random.default_rng(0)
    rep = (np.abs(rng.standard_normal((16, *model.input_shape[1:]))) * 3).astype(np.float32)
    res = streaming_int8(model, rep)
    sm, step, window = res.streaming, res.step_tflite, res.window_tflite
    assert not inspect_tflite(res.step_tflite).float_ops
    window_info = inspect_tflite(res.window_tflite)
    frames = _frames(sm, feats, 12, seed=1)
    q = features_to_int8(frames, window_info.input_scale, window_info.input_zero_point)
    stepper = TflmStepper(res.step_tflite, sm)
    outs = [stepper.step(q[k * sm.hop : (k + 1) * sm.hop]) for k in range(len(q) // sm.hop)]
    ends = [sm.window_end(k) for k in range(sm.warmup_steps, len(outs))]
    ends = [e for e in ends if e <= len(q)]
    ref = run_tflm(res.window_tflite, np.stack([q[e - sm.window : e] for e in ends]))
    got = np.stack(outs[sm.warmup_steps : sm.warmup_steps + len(ends)])
    assert len(ends) >= 10 and np.unique(ref).size > 5  # real, varied outputs
    assert np.abs(got.astype(int) - ref.reshape(len(ends), -1)).max() <= 1
    # the budget, in MACs (firmware_gen's per-op counts): a step <= 1/5 of a window
    from firmware_gen.layers import layer_table
    from firmware_gen.model import parse_model

    macs = [sum(r["macs"] for r in layer_table(parse_model(d))) for d in (step, window)]
    assert 5 * macs[0] <= macs[1], macs
