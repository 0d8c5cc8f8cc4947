"""Augmentation: speed perturbation, time shift, SNR mixing (numpy and TF agree), seeded."""

import numpy as np
import pytest
import tensorflow as tf

from tfkws.data.augment import (
    AugmentConfig,
    NoiseBank,
    augment_clip,
    mix_at_snr,
    mix_at_snr_np,
    random_segment_np,
    rms_np,
    speed_perturb,
    speed_perturb_np,
    time_shift,
    time_shift_np,
)
from tfkws.errors import TfkwsError

N = 1600


def speech(seed=0, amp=0.3):
    rng = np.random.default_rng(seed)
    t = np.arange(N) / 16000
    burst = np.sin(2 * np.pi * 500 * t) * np.hanning(N)
    return (amp * burst + 0.01 * rng.standard_normal(N)).astype(np.float32)


def noises():
    rng = np.random.default_rng(7)
    return [
        (0.2 * rng.standard_normal(5000)).astype(np.float32),
        (0.05 * rng.standard_normal(3000)).astype(np.float32),
    ]


@pytest.mark.parametrize("shift", [0, 1, 37, -37, N - 1, -(N - 1), N + 5, -(N + 5)])
def test_time_shift_numpy_and_tf_agree(shift):
    x = speech()
    y = time_shift_np(x, shift)
    assert y.shape == x.shape
    np.testing.assert_array_equal(time_shift(tf.constant(x), tf.constant(shift)).numpy(), y)
    if 0 <= shift < N:
        np.testing.assert_array_equal(y[shift:], x[: N - shift])
        assert not y[:shift].any()
    elif -N < shift < 0:
        np.testing.assert_array_equal(y[: N + shift], x[-shift:])
        assert not y[N + shift :].any()
    else:
        assert not y.any()


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_mix_at_snr_reaches_the_requested_snr(snr_db):
    x, noise = speech(), noises()[0][:N]
    mixed = mix_at_snr_np(x, noise, snr_db)
    added = mixed - x
    measured = 20 * np.log10(rms_np(x) / rms_np(added))
    assert measured == pytest.approx(snr_db, abs=0.05)
    tf_mixed = mix_at_snr(tf.constant(x), tf.constant(noise), tf.constant(snr_db)).numpy()
    np.testing.assert_allclose(tf_mixed, mixed, atol=1e-6)


def test_mix_with_silent_noise_leaves_clip():
    x = speech()
    np.testing.assert_array_equal(mix_at_snr_np(x, np.zeros(N, np.float32), 10.0), x)
    out = mix_at_snr(tf.constant(x), tf.zeros(N), tf.constant(10.0)).numpy()
    np.testing.assert_array_equal(out, x)


def test_noise_bank_cuts_real_segments():
    clips = noises() + [np.arange(10, dtype=np.float32)]  # the short one gets tiled
    bank = NoiseBank(clips, N)
    tiled = np.tile(clips[2], -(-N // 10))
    for i in range(20):
        seg = bank.segment(tf.constant([3, i], tf.int64)).numpy()
        assert seg.shape == (N,)
        found = any(
            np.array_equal(seg, c[s : s + N])
            for c in (*clips[:2], tiled)
            for s in range(0, len(c) - N + 1)
            if c[s] == seg[0]
        )
        assert found
    rng = np.random.default_rng(0)
    seg = random_segment_np(clips[:2], N, rng)
    assert any(seg[0] in c for c in clips[:2]) and seg.shape == (N,)


def test_augment_clip_is_seeded():
    cfg = AugmentConfig(time_shift_ms=20, noise_prob=1.0)
    bank = NoiseBank(noises(), N)
    x = tf.constant(speech())
    a = augment_clip(x, tf.constant([1, 2]), cfg, bank).numpy()
    b = augment_clip(x, tf.constant([1, 2]), cfg, bank).numpy()
    c = augment_clip(x, tf.constant([1, 3]), cfg, bank).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (N,) and np.abs(a).max() <= 1.0


def test_without_noise_the_result_is_a_bounded_shift():
    cfg = AugmentConfig(time_shift_ms=10)  # 160 samples
    x = speech()
    shifts = set()
    for i in range(30):
        y = augment_clip(tf.constant(x), tf.constant([0, i]), cfg, None).numpy()
        match = [s for s in range(-160, 161) if np.array_equal(y, time_shift_np(x, s))]
        assert match, "output is not a shift of the input"
        shifts.add(match[0])
    assert len(shifts) > 10


def test_noise_probability_and_snr_range():
    bank = NoiseBank(noises(), N)
    x = speech()
    never = AugmentConfig(time_shift_ms=0, noise_prob=0.0)
    for i in range(5):
        out = augment_clip(tf.constant(x), tf.constant([i, 0]), never, bank).numpy()
        np.testing.assert_array_equal(out, x)
    always = AugmentConfig(time_shift_ms=0, noise_prob=1.0, snr_db=(10.0, 20.0))
    for i in range(10):
        out = augment_clip(tf.constant(x), tf.constant([i, 0]), always, bank).numpy()
        snr = 20 * np.log10(rms_np(x) / rms_np(out - x))
        assert 10.0 - 0.05 <= snr <= 20.0 + 0.05


def test_silent_clip_gets_noise_at_silence_volume():
    bank = NoiseBank(noises(), N)
    cfg = AugmentConfig(time_shift_ms=0, noise_prob=0.0, silence_volume=(0.05, 0.1))
    peak_noise = max(np.abs(c).max() for c in noises())
    for i in range(10):
        out = augment_clip(tf.zeros(N), tf.constant([i, 9]), cfg, bank).numpy()
        assert 0 < np.abs(out).max() <= 0.1 * peak_noise + 1e-6


@pytest.mark.parametrize("factor", [0.8, 0.9, 1.0, 1.1, 1.25])
def test_speed_perturb_numpy_and_tf_agree(factor):
    factor = float(np.float32(factor))  # the TF factor is a float32 draw
    x = speech(3)
    np.testing.assert_allclose(
        speed_perturb(tf.constant(x), factor).numpy(), speed_perturb_np(x, factor), atol=1e-5
    )


def test_speed_perturb_scales_pitch_about_the_centre():
    n = 16000
    t = np.arange(n) / 16000
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    for factor in (0.9, 1.0, 1.2):
        y = speed_perturb(tf.constant(tone), factor).numpy()
        spectrum = np.abs(np.fft.rfft(y * np.hanning(n)))
        assert abs(np.argmax(spectrum) - 1000 * factor) <= 2  # 1 Hz bins
        # centre fixed: the middle sample is read from the middle of the input
        assert (
            abs(
                y[n // 2]
                - np.interp((n // 2 - (n - 1) / 2) * factor + (n - 1) / 2, np.arange(n), tone)
            )
            < 1e-5
        )
    faster = speed_perturb_np(tone, 1.2)  # reads past the ends -> zeros there, same length
    assert faster.shape == (n,) and np.all(faster[:1000] == 0) and np.all(faster[-1000:] == 0)
    np.testing.assert_array_equal(speed_perturb_np(tone, 1.0), tone)


def test_augment_clip_speed_is_seeded_and_off_by_default():
    x = tf.constant(speech())
    plain = AugmentConfig(time_shift_ms=0)
    np.testing.assert_array_equal(augment_clip(x, tf.constant([4, 5]), plain).numpy(), x.numpy())
    cfg = AugmentConfig(time_shift_ms=0, speed=(0.85, 1.15))
    outs = [augment_clip(x, tf.constant([4, i]), cfg).numpy() for i in range(6)]
    np.testing.assert_array_equal(outs[0], augment_clip(x, tf.constant([4, 0]), cfg).numpy())
    assert len({o.tobytes() for o in outs}) == 6  # a new factor per seed
    for o in outs:  # each is x resampled by some factor within the range
        errs = [
            np.abs(o - speed_perturb_np(x.numpy(), f)).max() for f in np.linspace(0.85, 1.15, 601)
        ]
        assert min(errs) < 0.01


def test_config_validation_and_round_trip():
    cfg = AugmentConfig(snr_db=[0, 12], time_shift_ms=50, speed=[0.9, 1.1])
    assert cfg.speed == (0.9, 1.1)
    assert cfg.snr_db == (0.0, 12.0) and cfg.max_shift_samples == 800
    assert AugmentConfig.from_dict(cfg.to_dict()) == cfg
    for bad in (
        {"noise_prob": 1.5},
        {"snr_db": (20, 5)},
        {"time_shift_ms": -1},
        {"silence_volume": (-0.1, 0.1)},
        {"speed": (0.0, 1.1)},
        {"speed": (1.1, 0.9)},
    ):
        with pytest.raises(TfkwsError):
            AugmentConfig(**bad)
    with pytest.raises(TfkwsError, match="unknown augmentation keys: gain"):
        AugmentConfig.from_dict({"gain": 2})
