"""load_clips and make_dataset: skipping bad files, silence, shapes, caching, determinism."""

import logging

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from tfkws.data.augment import AugmentConfig
from tfkws.data.example import Example
from tfkws.data.pipeline import class_counts, load_clips, load_split, make_dataset, to_int16
from tfkws.errors import DatasetError

N = 1600  # 0.1 s clips keep the tests fast
LABELS = ["_silence_", "low", "high"]
FRAMES, FEATS = 8, 16


def feature_fn(clip):
    """A small log-mel stand-in for tfkws.features: [N] -> [8, 16]."""
    spec = tf.abs(tf.signal.stft(clip, 400, 160, 512))
    mel = tf.signal.linear_to_mel_weight_matrix(FEATS, 257, 16000, 60.0, 7600.0)
    return tf.math.log(tf.matmul(spec, mel) + 1e-6)


def write_clips(root, count=6):
    rng = np.random.default_rng(0)
    examples = []
    for i in range(count):
        for label, hz in (("low", 300), ("high", 3000)):
            t = np.arange(N - 100 * i) / 16000
            x = 0.4 * np.sin(2 * np.pi * (hz + 20 * i) * t) + 0.01 * rng.standard_normal(t.size)
            path = root / f"{label}_{i}.wav"
            sf.write(path, x.astype(np.float32), 16000, subtype="PCM_16")
            examples.append(Example(str(path), label))
    return examples


def noise_clips():
    rng = np.random.default_rng(1)
    return [(0.3 * rng.standard_normal(8000)).astype(np.float32)]


def test_load_clips_skips_bad_files_and_pads(tmp_path, caplog):
    examples = write_clips(tmp_path, count=3)
    (tmp_path / "bad.wav").write_bytes(b"RIFF....junk")
    examples.insert(2, Example(str(tmp_path / "bad.wav"), "low"))
    examples.append(Example(str(tmp_path / "missing.flac"), "high"))
    with caplog.at_level(logging.WARNING):
        audio, ids, kept = load_clips(examples, LABELS, N, return_kept=True)
    assert audio.shape == (6, N) and audio.dtype == np.int16 and ids.dtype == np.int32
    assert kept.tolist() == [0, 1, 3, 4, 5, 6]
    assert ids.tolist() == [LABELS.index(examples[k].label) for k in kept]
    assert "bad.wav" in caplog.text and "missing.flac" in caplog.text
    assert "skipped 2 unreadable clip(s) of 8" in caplog.text
    ref = sf.read(examples[3].path, dtype="int16")[0]  # 1500 samples, padded to 1600
    np.testing.assert_array_equal(audio[2, : len(ref)], ref)
    assert not audio[2, len(ref) :].any()


def test_load_clips_errors(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="no usable clip among 1"):
        load_clips([Example(str(tmp_path / "bad.wav"), "low")], LABELS, N)
    with pytest.raises(DatasetError, match="label 'mid' is not one of"):
        load_clips([Example(None, "mid")], LABELS, N)
    with pytest.raises(DatasetError, match="no examples"):
        load_clips([], LABELS, N)


def test_generated_silence_is_quiet_noise_and_seeded():
    silence = [Example(None, "_silence_")] * 4
    a, ids = load_clips(silence, LABELS, N, noise_clips(), seed=5)
    b, _ = load_clips(silence, LABELS, N, noise_clips(), seed=5)
    c, _ = load_clips(silence, LABELS, N, noise_clips(), seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert ids.tolist() == [0, 0, 0, 0]
    assert len({row.tobytes() for row in a}) == 4  # each silence clip differs
    peak = np.abs(noise_clips()[0]).max() * 0.1
    assert 0 < np.abs(a).max() / 32768 <= peak + 1e-4
    zeros, _ = load_clips(silence, LABELS, N, ())
    assert not zeros.any()


def _batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def _same(a, b):
    return len(a) == len(b) and all(
        np.array_equal(x1, x2) and np.array_equal(y1, y2)
        for (x1, y1), (x2, y2) in zip(a, b, strict=True)
    )


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    examples = write_clips(root) + [Example(None, "_silence_")] * 2
    audio, ids = load_clips(examples, LABELS, N, noise_clips(), seed=0)
    return audio, ids


def test_eval_dataset_is_ordered_cached_and_exact(loaded):
    audio, ids = loaded
    ds = make_dataset(audio, ids, feature_fn, 5, training=False)
    first, second = _batches(ds), _batches(ds)
    assert _same(first, second)
    assert [x.shape for x, _ in first] == [(5, FRAMES, FEATS)] * 2 + [(4, FRAMES, FEATS)]
    assert first[0][0].dtype == np.float32 and first[0][1].dtype == np.int32
    np.testing.assert_array_equal(np.concatenate([y for _, y in first]), ids)
    expected = feature_fn(tf.constant(audio[3].astype(np.float32) / 32768)).numpy()
    np.testing.assert_allclose(first[0][0][3], expected, rtol=1e-5, atol=1e-5)


def counting(fn):
    calls = tf.Variable(0, dtype=tf.int64)

    def wrapped(clip):
        with tf.control_dependencies([calls.assign_add(1)]):
            return tf.identity(fn(clip))

    return wrapped, calls


def test_features_are_computed_once_for_eval_and_per_epoch_with_augmentation(loaded):
    audio, ids = loaded
    fn, calls = counting(feature_fn)
    ds = make_dataset(audio, ids, fn, 4, training=False)
    _batches(ds), _batches(ds)
    assert int(calls.numpy()) == len(ids)
    fn, calls = counting(feature_fn)
    ds = make_dataset(audio, ids, fn, 4, True, 0, AugmentConfig(), noise_clips())
    _batches(ds), _batches(ds)
    assert int(calls.numpy()) == 2 * len(ids)


def test_training_without_augmentation_reshuffles_deterministically(loaded):
    audio, ids = loaded
    run = [
        _batches(ds)
        for ds in [make_dataset(audio, ids, feature_fn, 4, True, seed=3)]
        for _ in range(2)
    ]
    again = make_dataset(audio, ids, feature_fn, 4, True, seed=3)
    assert _same(run[0], _batches(again))
    order0 = np.concatenate([y for _, y in run[0]])
    assert sorted(order0.tolist()) == sorted(ids.tolist())
    feats0 = np.concatenate([x for x, _ in run[0]])
    feats1 = np.concatenate([x for x, _ in run[1]])
    assert not np.array_equal(feats0, feats1)  # another order in epoch 2
    # same feature rows, just permuted: no augmentation happened
    assert sorted(map(bytes, feats0)) == sorted(map(bytes, feats1))


def test_training_with_augmentation_is_deterministic_and_varies(loaded):
    audio, ids = loaded
    cfg = AugmentConfig(time_shift_ms=20, noise_prob=0.8)

    def two_epochs(seed):
        ds = make_dataset(audio, ids, feature_fn, 4, True, seed, cfg, noise_clips())
        return _batches(ds), _batches(ds)

    a1, a2 = two_epochs(11)
    b1, b2 = two_epochs(11)
    c1, _ = two_epochs(12)
    assert _same(a1, b1) and _same(a2, b2)
    assert not _same(a1, a2)
    assert not _same(a1, c1)
    assert [x.shape for x, _ in a1] == [(4, FRAMES, FEATS)] * 3 + [(2, FRAMES, FEATS)]
    labels1 = np.concatenate([y for _, y in a1])
    labels2 = np.concatenate([y for _, y in a2])
    assert sorted(labels1.tolist()) == sorted(labels2.tolist()) == sorted(ids.tolist())
    # augmented features differ from the clean ones of the same clip order
    clean = make_dataset(audio, ids, feature_fn, 100, False)
    clean_rows = {bytes(r) for r in next(iter(clean))[0].numpy()}
    aug_rows = {bytes(r) for x, _ in a1 for r in x}
    assert len(aug_rows - clean_rows) > len(ids) // 2


def test_per_epoch_datasets_depend_only_on_seed_and_epoch(loaded):
    """The trainer builds one dataset per epoch: resuming at epoch k must replay epoch k."""
    audio, ids = loaded
    cfg = AugmentConfig(time_shift_ms=20)

    def epoch_batches(seed, epoch, augment=cfg):
        return _batches(
            make_dataset(audio, ids, feature_fn, 4, True, seed, augment, noise_clips(), epoch=epoch)
        )

    e3 = epoch_batches(5, 3)
    _ = epoch_batches(5, 0)  # building/iterating other epochs first changes nothing
    assert _same(e3, epoch_batches(5, 3))
    ds = make_dataset(audio, ids, feature_fn, 4, True, 5, cfg, noise_clips(), epoch=3)
    assert _same(_batches(ds), _batches(ds))  # re-iterating an epoch dataset replays it
    assert not _same(e3, epoch_batches(5, 4))
    assert not _same(e3, epoch_batches(6, 3))
    labels = np.concatenate([y for _, y in e3])
    assert sorted(labels.tolist()) == sorted(ids.tolist())
    # without augmentation: same feature rows as evaluation, only reordered per epoch
    plain = [np.concatenate([x for x, _ in epoch_batches(5, e, None)]) for e in (0, 1)]
    clean = next(iter(make_dataset(audio, ids, feature_fn, 100, False)))[0].numpy()
    assert not np.array_equal(plain[0], plain[1])
    for rows in plain:
        np.testing.assert_allclose(
            np.sort(rows.reshape(len(ids), -1), axis=0),
            np.sort(clean.reshape(len(ids), -1), axis=0),
            atol=1e-5,
        )


def test_float_audio_and_argument_errors(loaded):
    audio, ids = loaded
    as_float = audio.astype(np.float32) / 32768
    x_int = next(iter(make_dataset(audio, ids, feature_fn, 3, False)))[0].numpy()
    x_float = next(iter(make_dataset(as_float, ids, feature_fn, 3, False)))[0].numpy()
    np.testing.assert_allclose(x_int, x_float, atol=1e-5)
    with pytest.raises(DatasetError, match="labels for"):
        make_dataset(audio, ids[:-1], feature_fn, 3, False)
    with pytest.raises(DatasetError, match="non-empty"):
        make_dataset(audio[0], ids, feature_fn, 3, False)
    with pytest.raises(DatasetError, match="batch size"):
        make_dataset(audio, ids, feature_fn, 0, False)
    with pytest.raises(TypeError, match="labels is a list of names"):
        load_clips([Example(None, "low")], N, LABELS)


def test_helpers(loaded):
    audio, ids = loaded
    assert class_counts(ids, LABELS) == {"_silence_": 2, "low": 6, "high": 6}
    x = np.array([0.0, 0.5, -1.0, 1.0, -2.0], np.float32)
    assert to_int16(x).tolist() == [0, 16384, -32768, 32767, -32768]


@pytest.mark.shared_data
def test_real_files_end_to_end(shared_data):
    from tfkws.data.dataset import open_dataset

    ds = open_dataset(shared_data / "speech_commands_test_dev")
    few = {}
    for e in ds.split("testing"):
        few.setdefault(e.label, e)
    examples = list(few.values())
    audio, ids = load_clips(examples, ds.labels, 16000)
    assert audio.shape == (len(examples), 16000) and len(set(ids.tolist())) == len(examples)
    batch = next(iter(make_dataset(audio, ids, feature_fn, 32, False)))
    assert batch[0].shape == (len(examples), 1 + (16000 - 400) // 160, FEATS)
    assert np.isfinite(batch[0].numpy()).all()
    # load_split loads the noise too (none in this folder)
    small = type(ds)(ds.root, ds.labels, {"testing": examples[:2]}, [])
    a2, i2, noise = load_split(small, "testing")
    assert a2.shape == (2, 16000) and noise == []
