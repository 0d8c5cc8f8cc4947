"""The disk clip cache and per-replica slices: a cache is reused while nothing changed and rebuilt
when a file changed, holds exactly the clips memory would, and trains to the same weights; each
worker's slices of the global batches put together are the one-process batches."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import write_tone_dataset

from tfkws.data.augment import AugmentConfig
from tfkws.data.clip_cache import cached_clips
from tfkws.data.dataset import open_dataset
from tfkws.data.pipeline import ReplicaSlice, load_clips, make_dataset, replica_indices
from tfkws.errors import DatasetError

TONES = {"high": 2500.0, "low": 400.0, "mid": 1100.0}
N = 16000


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    return write_tone_dataset(tmp_path / "data", TONES, clips_per_word=8)


def _cache(data: Path, cache: Path, seed: int = 0):
    ds = open_dataset(data, mode="all")
    noise = [sf.read(f, dtype="float32")[0] for f in ds.noise_files]
    return ds, cached_clips(ds.split("all"), ds.labels, N, noise, ds.noise_files, seed, cache)


def test_cache_is_reused_then_rebuilt_when_a_file_changes(data: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ds, first = _cache(data, cache)
    audio, ids = load_clips(ds.split("all"), ds.labels, N)
    assert first.shape == audio.shape
    np.testing.assert_array_equal(first.labels, ids)
    for i in range(len(first)):
        np.testing.assert_array_equal(first.read(i), audio[i])
    meta = (first.root / "meta.json").stat().st_mtime_ns

    _, again = _cache(data, cache)
    assert again.root == first.root and (again.root / "meta.json").stat().st_mtime_ns == meta
    assert len(list(cache.iterdir())) == 1

    # Another seed only changes generated silence, but the key holds every setting.
    _, seeded = _cache(data, cache, seed=1)
    assert seeded.root != first.root

    changed = Path(ds.split("all")[0].path)
    sf.write(changed, np.zeros(N, np.float32), 16000, subtype="PCM_16")
    _, rebuilt = _cache(data, cache)
    assert rebuilt.root not in (first.root, seeded.root)
    assert not rebuilt.read(0).any() and first.read(0).any()


def test_unreadable_clips_are_skipped_like_memory(data: Path, tmp_path: Path) -> None:
    bad = next((data / "low").glob("*.wav"))
    bad.write_bytes(b"not audio")
    ds, disk = _cache(data, tmp_path / "cache")
    audio, ids = load_clips(ds.split("all"), ds.labels, N)
    assert len(disk) == len(ids) == len(ds.split("all")) - 1
    np.testing.assert_array_equal(disk.labels, ids)
    np.testing.assert_array_equal(disk.read(len(disk) - 1), audio[-1])


def test_replica_slices_make_up_the_global_batches() -> None:
    order = np.random.default_rng(0).permutation(29)
    parts = [replica_indices(order, 8, ReplicaSlice(w, 1, 2)) for w in range(2)]
    seen = np.concatenate([np.concatenate([m, last]) for m, last, _ in parts])
    assert len(set(seen.tolist())) == len(seen) == 28  # 29 % 8 = 5 -> 2 + 2, one left out
    for b in range(3):
        got = np.concatenate([m[b * 4 : (b + 1) * 4] for m, _, _ in parts])
        np.testing.assert_array_equal(got, order[b * 8 : (b + 1) * 8])
    assert [p[2] for p in parts] == [2, 2]
    with pytest.raises(DatasetError, match="multiple"):
        replica_indices(order, 9, ReplicaSlice(0, 1, 2))


def test_worker_batches_put_together_are_the_one_process_batches(
    data: Path, tmp_path: Path
) -> None:
    import tensorflow as tf

    ds, disk = _cache(data, tmp_path / "cache")
    noise = [sf.read(f, dtype="float32")[0] for f in ds.noise_files]

    def feats(clip: tf.Tensor) -> tf.Tensor:
        return tf.reshape(clip[:1600], [40, 40])

    def batches(part: ReplicaSlice | None) -> list:
        out = make_dataset(disk, None, feats, 6, True, 5, AugmentConfig(), noise, 2, None, part)
        return list(out.as_numpy_iterator())

    one = batches(None)
    memory = make_dataset(
        *load_clips(ds.split("all"), ds.labels, N), feats, 6, True, 5, AugmentConfig(), noise, 2
    )
    for (x, y), (xm, ym) in zip(one, memory.as_numpy_iterator(), strict=True):
        np.testing.assert_array_equal(x, xm)
        np.testing.assert_array_equal(y, ym)
    w0, w1 = batches(ReplicaSlice(0, 1, 2)), batches(ReplicaSlice(1, 1, 2))
    assert len(w0) == len(w1) == len(one) == 4  # 24 clips, batches of 6
    for (x, y), (x0, y0), (x1, y1) in zip(one, w0, w1, strict=True):
        np.testing.assert_array_equal(x, np.concatenate([x0, x1]))
        np.testing.assert_array_equal(y, np.concatenate([y0, y1]))


@pytest.mark.slow
def test_training_from_the_cache_gives_the_weights_of_memory(data: Path, tmp_path: Path) -> None:
    from tfkws.features.config import FeatureConfig
    from tfkws.runs.config import TrainConfig
    from tfkws.runs.model import load_trained_model
    from tfkws.training.trainer import train

    cfg = TrainConfig(
        model="ds_cnn",
        model_params={"size": "s", "channels": 8},
        epochs=2,
        batch_size=8,
        learning_rate=0.01,
        seed=3,
        time_masks=1,
        time_mask_frames=4,
        strategy="cpu",
    )
    ds = open_dataset(data, mode="all")
    runs = {}
    for store in ("memory", "disk"):
        runs[store] = tmp_path / store
        train(ds, FeatureConfig(), cfg, runs[store], verbose=0, clip_store=store,
              cache_dir=tmp_path / "cache")  # fmt: skip
    assert len(list((tmp_path / "cache").glob("clips-*"))) == 2  # training + validation
    a, _ = load_trained_model(runs["memory"])
    b, _ = load_trained_model(runs["disk"])
    for x, y in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)
    shutil.rmtree(tmp_path / "cache")
