"""True streaming with external state: the step model equals the non-streaming model per window.

A DS-CNN built with ``time_padding="valid"`` is rebuilt by ``to_streaming`` into a model taking
``hop`` new frames and its state tensors; after the warm-up, every step's logits equal the
non-streaming model's on the matching window (float to float precision).
"""

from __future__ import annotations

import numpy as np
import pytest
import tf_keras as keras
from streaming_helpers import step_matches_window

from tfkws.errors import TfkwsError
from tfkws.models.ds_cnn import build_ds_cnn
from tfkws.streaming.external_state import to_streaming


def _randomise_batchnorm(model: keras.Model, seed: int = 1) -> None:
    """Non-trivial BN statistics, so a misaligned or mis-stated row would show."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights(
                [
                    g + 0.2 * rng.standard_normal(g.shape),
                    b + 0.2 * rng.standard_normal(b.shape),
                    0.2 * rng.standard_normal(m.shape),
                    0.5 + rng.random(v.shape),
                ]
            )


def _ds_cnn(**params) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = build_ds_cnn((49, 40), 5, batch_size=1, time_padding="valid", **params)
    _randomise_batchnorm(model)
    return model


@pytest.mark.parametrize(
    "params, hop",
    [
        ({"channels": 16, "num_blocks": 2}, 2),  # DS-CNN-S layout: conv0 /2x2
        ({"channels": 12, "num_blocks": 3, "time_dilation": [1, 2, 2]}, 2),
        ({"size": "m", "channels": 12, "num_blocks": 2}, 4),  # conv0 /2x1, first DS /2x2
    ],
)
def test_streaming_equals_non_streaming_at_every_step(params: dict, hop: int) -> None:
    model = _ds_cnn(**params)
    sm = to_streaming(model)
    assert sm.hop == hop and sm.window == 49
    frames = np.random.default_rng(0).standard_normal((140, 40)).astype(np.float32)
    assert step_matches_window(model, sm, frames, sm.run(frames)) >= 10
    # and the warm-up is not padded: the step before it does not match its window yet
    k = sm.warmup_steps - 1
    first = sm.run(frames[: (k + 1) * hop])[k]
    end = max(sm.window_end(k), sm.window)
    assert not np.allclose(first, model(frames[None, end - 49 : end], training=False).numpy()[0])


def test_streaming_keeps_only_the_rows_it_needs() -> None:
    sm = to_streaming(_ds_cnn(channels=16, num_blocks=2))
    # conv0 10 rows /2: 8 kept; each 3-row depthwise: 2; pool over 16 rows, 1 new: 15
    assert [s[1] for s in sm.state_shapes] == [8, 2, 2, 15]
    assert sm.state_shapes[-1] == (1, 15, 20, 16)  # whole rows: one int8 MEAN, as non-streaming
    assert sm.used == 48 and sm.warmup_steps == 23


def test_same_padding_in_time_cannot_stream() -> None:
    keras.utils.set_random_seed(0)
    model = build_ds_cnn((49, 40), 5, batch_size=1, channels=8, num_blocks=1)
    with pytest.raises(TfkwsError, match="time_padding=valid"):
        to_streaming(model)
    with pytest.raises(TfkwsError, match="time_padding"):
        build_ds_cnn((49, 40), 5, time_padding="causal")


@pytest.mark.parametrize(
    "name, params",
    [
        ("conformer", {"depth": 1, "dim": 16, "ff_dim": 16, "num_heads": 2}),
        ("slimmable_kwt", {}),
    ],
)
def test_self_attention_is_named_with_the_sliding_window_instead(name: str, params: dict) -> None:
    """A Conformer or a KWT width has no step form; the error says what to do (not a
    ``time_padding`` these models do not have)."""
    from tfkws.folding.fold import fold_model
    from tfkws.folding.slim_width import extract_width
    from tfkws.models.catalog import build_model

    keras.utils.set_random_seed(0)
    model = build_model(name, (49, 40), 5, params, batch_size=1)
    model = extract_width(model, 0.25) if name.startswith("slimmable") else fold_model(model)
    with pytest.raises(TfkwsError, match="self-attention .* sliding window") as info:
        to_streaming(model)
    assert "time_padding" not in str(info.value)


@pytest.mark.parametrize(
    "params",
    [
        {"channels": 16, "num_blocks": 2},
        {"size": "m", "channels": 12, "num_blocks": 2, "time_dilation": [1, 2]},
    ],
)
def test_int8_step_model_in_tflm_equals_the_int8_window_model(params: dict) -> None:
    """The int8 step model in TFLM, its int8 state fed back each step, gives the non-streaming
    int8 model's outputs on every window after the warm-up (the spec allows 1 LSB; with pinned
    ranges they are bit-identical)."""
    from tfkws.conversion.model_info import inspect_tflite
    from tfkws.features.extract import features_to_int8
    from tfkws.folding.fold import fold_model
    from tfkws.streaming.streaming_int8 import TflmStepper, streaming_int8
    from tfkws.verification.tflm import run_tflm

    rng = np.random.default_rng(0)
    rep = (np.abs(rng.standard_normal((32, 49, 40))) * 3).astype(np.float32)
    res = streaming_int8(fold_model(_ds_cnn(**params)), rep)
    sm = res.streaming
    info = inspect_tflite(res.step_tflite)
    assert {"CONCATENATION", "STRIDED_SLICE"} <= set(info.ops) and not info.float_ops
    window_info = inspect_tflite(res.window_tflite)
    frames = (np.abs(rng.standard_normal((120, 40))) * 3).astype(np.float32)
    q = features_to_int8(frames, window_info.input_scale, window_info.input_zero_point)
    stepper = TflmStepper(res.step_tflite, sm)
    outs = [stepper.step(q[k * sm.hop : (k + 1) * sm.hop]) for k in range(len(q) // sm.hop)]
    ends = [sm.window_end(k) for k in range(sm.warmup_steps, len(outs))]
    ends = [e for e in ends if e <= len(q)]
    ref = run_tflm(res.window_tflite, np.stack([q[e - sm.window : e] for e in ends]))
    got = np.stack(outs[sm.warmup_steps : sm.warmup_steps + len(ends)])
    assert len(ends) >= 10 and np.unique(ref).size > 5  # real, varied outputs
    assert np.abs(got.astype(int) - ref.reshape(len(ends), -1)).max() <= 1
    # pinned min/max ranges are what the converter's own calibration finds: the window model
    # computes what tfkws export's PTQ model of the same folded model computes
    from tfkws.conversion.tflite_convert import to_int8_tflite

    ptq = to_int8_tflite(fold_model(_ds_cnn(**params)), rep, num_calibration=None)
    ptq_ref = run_tflm(ptq, np.stack([q[e - sm.window : e] for e in ends]))
    assert np.abs(ptq_ref.astype(int) - ref.astype(int)).max() <= 1
    # a fresh stepper restarts from zero state: the same first outputs again
    stepper.reset()
    again = [stepper.step(q[k * sm.hop : (k + 1) * sm.hop]) for k in range(sm.warmup_steps + 1)]
    np.testing.assert_array_equal(again[-1], outs[sm.warmup_steps])


def test_rep_ds_cnn_folds_into_the_valid_ds_cnn_and_streams() -> None:
    """``rep=True`` with ``time_padding=valid``: each multi-branch block folds into one valid
    conv (frequency padded before it), and the folded model streams like the plain one."""
    from random_weights import randomize

    from tfkws.folding.fold import fold_model

    keras.utils.set_random_seed(0)
    kw = dict(batch_size=1, time_padding="valid", channels=12, num_blocks=2)
    rep = randomize(build_ds_cnn((49, 40), 5, rep=True, **kw), 0, "network")
    folded = fold_model(rep)
    x = np.random.default_rng(1).standard_normal((2, 49, 40)).astype(np.float32)
    want = np.concatenate([rep(x[i : i + 1], training=False).numpy() for i in range(2)])
    got = np.concatenate([folded(x[i : i + 1]).numpy() for i in range(2)])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    plain = build_ds_cnn((49, 40), 5, **kw)
    assert [w.shape for w in folded.weights] == [w.shape for w in fold_model(plain).weights]
    sm = to_streaming(folded)
    assert sm.hop == 2 and [s[1] for s in sm.state_shapes] == [8, 2, 2, 15]
    frames = np.random.default_rng(0).standard_normal((100, 40)).astype(np.float32)
    assert step_matches_window(folded, sm, frames, sm.run(frames)) >= 10
