"""Features: shapes, determinism, numpy == tf.data, int16/int8 conversion, real-speech sanity."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from tfkws.errors import AudioError, TfkwsError
from tfkws.features.config import KINDS, FeatureConfig
from tfkws.features.extract import compute_features, feature_fn_tf, features_to_int8
from tfkws.features.microfrontend import float_to_int16

NON_DEFAULT = [
    dict(window_size_ms=25, window_stride_ms=10),  # 98 frames
    dict(clip_duration_ms=1500, num_channels=32, num_mfcc=13),
    dict(sample_rate=8000, upper_band_limit=3800.0, window_size_ms=32, window_stride_ms=16),
    dict(clip_duration_ms=777, window_size_ms=40, window_stride_ms=15),
]


def _noise(n: int, seed: int = 0, level: float = 0.1, batch: int | None = None) -> np.ndarray:
    shape = (n,) if batch is None else (batch, n)
    return (np.random.default_rng(seed).standard_normal(shape) * level).astype(np.float32)


def _burst(config: FeatureConfig) -> tuple[np.ndarray, slice]:
    """Digital silence with a 300 ms noisy chirp in the middle; also the frames fully inside it."""
    n, sr = config.clip_samples, config.sample_rate
    start, stop = n // 2 - int(0.15 * sr), n // 2 + int(0.15 * sr)
    t = np.arange(stop - start) / sr
    clip = np.zeros(n, np.float32)
    clip[start:stop] = 0.3 * np.sin(2 * np.pi * (300 + 2000 * t) * t) + _noise(stop - start, 1)
    first = -(-start // config.stride_samples)
    last = (stop - config.window_samples) // config.stride_samples
    return clip, slice(first, last + 1)


def _read_clip(path: Path, config: FeatureConfig) -> np.ndarray:
    audio, sr = sf.read(path, dtype="float32")
    assert sr == config.sample_rate
    return np.pad(audio, (0, max(0, config.clip_samples - len(audio))))[: config.clip_samples]


@pytest.mark.parametrize("kind", KINDS)
def test_default_shapes(kind):
    config = FeatureConfig(kind=kind)
    one = compute_features(_noise(config.clip_samples), config)
    assert one.shape == config.shape == (49, 40 if kind != "mfcc" else 10)
    assert one.dtype == np.float32 and np.isfinite(one).all()
    batch = compute_features(_noise(config.clip_samples, batch=3), config)
    assert batch.shape == (3, *config.shape) and batch.dtype == np.float32


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("params", NON_DEFAULT, ids=lambda p: ",".join(map(str, p.values())))
def test_non_default_shapes(kind, params):
    config = FeatureConfig(kind=kind, **params)
    out = compute_features(_noise(config.clip_samples, batch=2), config)
    expected_frames = 1 + (config.clip_samples - config.window_samples) // config.stride_samples
    expected_feats = config.num_mfcc if kind == "mfcc" else config.num_channels
    assert out.shape == (2, expected_frames, expected_feats) == (2, *config.shape)
    assert np.isfinite(out).all()


def test_microfrontend_is_deterministic_and_batch_equals_single():
    config = FeatureConfig()
    clips = _noise(config.clip_samples, seed=3, batch=3)
    a = compute_features(clips, config)
    b = compute_features(clips.copy(), config)
    np.testing.assert_array_equal(a, b)
    for i in range(3):
        np.testing.assert_array_equal(compute_features(clips[i], config), a[i])
    # different audio -> different features (the op is not returning a constant)
    assert not np.array_equal(a[0], a[1])


@pytest.mark.parametrize("kind", KINDS)
def test_numpy_and_tf_data_paths_agree(kind):
    config = FeatureConfig(kind=kind)
    clips = _noise(config.clip_samples, seed=5, batch=3)
    clips[1] *= 20  # saturates: exercises the int16 clipping in both paths
    fn = feature_fn_tf(config)
    ds = tf.data.Dataset.from_tensor_slices(clips).map(fn, num_parallel_calls=2)
    assert tuple(ds.element_spec.shape) == config.shape
    assert ds.element_spec.dtype == tf.float32
    via_tf = np.stack([x.numpy() for x in ds])
    np.testing.assert_array_equal(via_tf, compute_features(clips, config))


@pytest.mark.parametrize("kind", KINDS)
def test_silence_is_lower_than_sound(kind):
    config = FeatureConfig(kind=kind)
    clip, inside = _burst(config)
    feats = compute_features(clip, config)
    silent = feats[:3]  # the first 60 ms are digital zeros
    # for mfcc compare the 0th coefficient (overall log energy); the others are spectral shape
    energy = feats[..., 0] if kind == "mfcc" else feats.mean(axis=-1)
    silent_energy = silent[..., 0] if kind == "mfcc" else silent.mean(axis=-1)
    assert energy[inside].min() > silent_energy.max() + 1.0
    zeros = compute_features(np.zeros(config.clip_samples, np.float32), config)
    assert np.ptp(zeros) == 0 or kind == "mfcc"  # a constant floor
    if kind == "microfrontend":
        assert (zeros == 0).all()


def test_float_to_int16_is_exact_pcm_inverse():
    pcm = np.array([-32768, -32767, -1, 0, 1, 12345, 32767], np.int16)
    np.testing.assert_array_equal(float_to_int16(pcm.astype(np.float32) / 32768), pcm)
    # saturation as an ADC would, and round half to even
    np.testing.assert_array_equal(
        float_to_int16(np.array([1.0, 2.0, -1.0, -3.0, 0.5 / 32768, 1.5 / 32768], np.float32)),
        [32767, 32767, -32768, -32768, 0, 2],
    )


def test_int16_input_equals_float_input():
    config = FeatureConfig()
    pcm = float_to_int16(_noise(config.clip_samples, seed=7))
    np.testing.assert_array_equal(
        compute_features(pcm, config),
        compute_features(pcm.astype(np.float32) / 32768, config),
    )


def test_features_to_int8_matches_tflite_quantize_rule():
    scale = 0.25  # a power of two, so x / scale lands exactly on the .5 ties
    x = np.array([0.0, 0.125, 0.375, 0.625, 0.65, -0.125, -0.625, 1e6, -1e6], np.float32)
    q = features_to_int8(x, scale, 0)
    assert q.dtype == np.int8
    # std::round: ties go away from zero (half-to-even would give 0, 2, 2, ..., 0, -2), then clip
    np.testing.assert_array_equal(q, [0, 1, 2, 3, 3, -1, -3, 127, -128])
    np.testing.assert_array_equal(
        features_to_int8(x, scale, -128), [-128, -127, -126, -125, -125, -128, -128, 127, -128]
    )
    # real features: dequantizing gives back the value within half a step
    feats = compute_features(_noise(16000, seed=2), FeatureConfig())
    step = 26.0 / 255
    q = features_to_int8(feats, step, -128).astype(np.float64)
    assert np.abs((q + 128) * step - feats).max() <= 0.5 * step + 1e-5


@pytest.mark.parametrize(
    "scale,zero_point", [(0.0, 0), (-1.0, 0), (float("nan"), 0), (0.1, 200), (0.1, 0.5)]
)
def test_features_to_int8_rejects_bad_params(scale, zero_point):
    with pytest.raises(TfkwsError):
        features_to_int8(np.zeros(3, np.float32), scale, zero_point)


def test_input_errors():
    config = FeatureConfig()
    with pytest.raises(AudioError, match="16000"):
        compute_features(np.zeros(15999, np.float32), config)
    with pytest.raises(AudioError, match="NaN"):
        compute_features(np.full(16000, np.nan, np.float32), config)
    with pytest.raises(AudioError, match="dtype"):
        compute_features(np.zeros(16000, np.int32), config)
    with pytest.raises(AudioError):
        compute_features(np.zeros((1, 2, 16000), np.float32), config)


@pytest.mark.parametrize(
    "params,match",
    [
        # the C frontend aborts the whole process on this one: it must be caught first
        (dict(window_size_ms=30, window_stride_ms=40), "stride"),
        (dict(sample_rate=8000), "band"),
        (dict(kind="mfcc", num_mfcc=41), "num_mfcc"),
        (dict(kind="logmel", lower_band_limit=8000.0, upper_band_limit=7000.0), "band"),
    ],
)
def test_config_errors(params, match):
    # FeatureConfig refuses these itself, so no feature path can ever see them.
    with pytest.raises(TfkwsError, match=match):
        FeatureConfig(**params)


@pytest.mark.shared_data
def test_microfrontend_on_real_speech(shared_data):
    """Real keywords sit in micro_speech's documented range and loud frames beat quiet ones."""
    config = FeatureConfig()
    files = sorted((shared_data / "speech_commands_test_dev" / "yes").glob("*.flac"))[:3]
    assert files
    for path in files:
        clip = _read_clip(path, config)
        pcm, _ = sf.read(path, dtype="int16")
        n = min(len(pcm), config.clip_samples)
        np.testing.assert_array_equal(float_to_int16(clip[:n]), pcm[:n])  # device sees the file
        feats = compute_features(clip, config)
        assert feats.shape == (49, 40)
        assert feats.min() >= 0.0 and feats.max() <= 27.0  # uint16 * 10/256, about [0, 26]
        assert feats.max() > 15.0 and 1.0 < feats.mean() < 15.0
        # frame energy from the PCM vs. feature energy (skip 5 warm-up frames of the noise estimate)
        frames = np.arange(5, config.num_frames)
        pcm_energy = np.array(
            [np.mean(clip[i * 320 : i * 320 + 480] ** 2) for i in frames], dtype=np.float64
        )
        order = frames[np.argsort(pcm_energy)]
        quiet, loud = feats[order[:8]].mean(), feats[order[-8:]].mean()
        assert loud > quiet + 5.0, (path.name, loud, quiet)
