"""From examples to batches: load every clip once, then a deterministic tf.data graph.

Clips are held as int16 (half the memory of float32; lossless for 16-bit sources), in memory or
on disk (``tfkws.data.clip_cache``, read by index: the same batches either way). Evaluation
features are computed once and cached (in memory); training with augmentation re-augments every
epoch with stateless random ops keyed on (per-epoch random stream, clip index), so the same seed
gives the same batches in the same order on every run while each epoch sees different
augmentation. With several workers each one's pipeline yields only its replicas' parts of every
global batch (``ReplicaSlice``).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import tensorflow as tf
from absl import logging

from tfkws.data.audio import DEFAULT_SAMPLE_RATE, INT16_SCALE, load_audio, load_noise, to_int16
from tfkws.data.augment import AugmentConfig, NoiseBank, augment_clip, random_segment_np
from tfkws.data.example import Example
from tfkws.data.kws_dataset import KwsDataset
from tfkws.data.spec_augment import SpecAugmentConfig, spec_augment
from tfkws.errors import AudioError, DatasetError
from tfkws.progress import Progress

FeatureFn = Callable[[tf.Tensor], tf.Tensor]


def load_clips(
    examples: Sequence[Example],
    labels: Sequence[str],
    num_samples: int,
    noise_clips: Sequence[np.ndarray] | None = (),
    seed: int = 0,
    *,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    silence_volume: tuple[float, float] = (0.0, 0.1),
    return_kept: bool = False,
) -> tuple[np.ndarray, ...]:
    """Load every example once: ``(audio int16 [N, num_samples], label ids int32 [N])``.

    ``labels`` gives the class order (``dataset.labels``). Unreadable files are skipped with a
    warning naming each, and counted at the end; with ``return_kept`` a third array holds the
    indices into ``examples`` of the clips returned. Generated silence (``path=None``) is a
    random noise segment scaled by a volume in ``silence_volume``, seeded by (seed, index) —
    zeros when there is no noise. No usable clip at all is a ``DatasetError``.
    """
    if isinstance(labels, str | int) or not all(isinstance(x, str) for x in labels):
        raise TypeError("load_clips(examples, labels, num_samples, ...): labels is a list of names")
    noise_clips = list(noise_clips or ())
    index = {label: i for i, label in enumerate(labels)}
    total = len(examples)
    if total == 0:
        raise DatasetError("no examples to load")
    audio = np.zeros((total, num_samples), np.int16)
    ids = np.zeros(total, np.int32)
    kept = np.zeros(total, bool)
    skipped = 0
    progress = Progress("loading clips", total)
    for i, ex in enumerate(examples):
        progress.update()
        clip = decode_example(
            ex, i, index, num_samples, noise_clips, seed, sample_rate, silence_volume
        )
        if clip is None:
            skipped += 1
            continue
        audio[i] = clip
        ids[i] = index[ex.label]
        kept[i] = True
    progress.close()
    if skipped:
        logging.warning("skipped %d unreadable clip(s) of %d", skipped, total)
    if not kept.any():
        first = examples[0].path or "generated silence"
        raise DatasetError(f"no usable clip among {total} (first: {first})")
    kept_idx = np.flatnonzero(kept)
    out = (audio[kept_idx], ids[kept_idx])
    return (*out, kept_idx) if return_kept else out


def decode_example(
    ex: Example,
    i: int,
    index: dict[str, int],
    num_samples: int,
    noise_clips: Sequence[np.ndarray],
    seed: int,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    silence_volume: tuple[float, float] = (0.0, 0.1),
) -> np.ndarray | None:
    """Example ``i`` as int16 [num_samples] (see ``load_clips``); ``None`` for an unreadable file
    (a warning names it). Its own function so the disk cache decodes exactly as memory does."""
    if ex.label not in index:
        where = ex.path or "generated silence"
        raise DatasetError(f"{where}: label {ex.label!r} is not one of {', '.join(index)}")
    if ex.path is None:
        if noise_clips:
            rng = np.random.default_rng([seed, i])
            clip = random_segment_np(list(noise_clips), num_samples, rng)
            clip = clip * np.float32(rng.uniform(*silence_volume))
        else:
            clip = np.zeros(num_samples, np.float32)
    else:
        try:
            clip = load_audio(ex.path, sample_rate, num_samples)
        except AudioError as e:
            logging.warning("skipping clip: %s", e)
            return None
    return to_int16(clip)


def load_split(
    dataset: KwsDataset,
    split: str,
    num_samples: int = DEFAULT_SAMPLE_RATE,
    seed: int = 0,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """``(audio, label ids, noise clips)`` of one split of ``dataset``, ready for make_dataset."""
    noise = load_noise(dataset.noise_files, sample_rate, min_samples=num_samples)
    audio, ids = load_clips(
        dataset.split(split), dataset.labels, num_samples, noise, seed, sample_rate=sample_rate
    )
    return audio, ids, noise


def class_counts(label_ids: np.ndarray, labels: Sequence[str]) -> dict[str, int]:
    """Clips per class name (every class listed, in class order)."""
    counts = collections.Counter(int(i) for i in np.asarray(label_ids).reshape(-1))
    return {name: counts.get(i, 0) for i, name in enumerate(labels)}


def _to_float(clip: tf.Tensor) -> tf.Tensor:
    if clip.dtype == tf.int16:
        return tf.cast(clip, tf.float32) / INT16_SCALE
    return tf.cast(clip, tf.float32)


class ClipReader(Protocol):
    """Clips held elsewhere (``tfkws.data.clip_cache.DiskClips``): read one by index."""

    labels: np.ndarray
    shape: tuple[int, int]

    def read(self, i: int) -> np.ndarray: ...


@dataclasses.dataclass(frozen=True)
class ReplicaSlice:
    """The replicas one input pipeline (one worker) feeds: ``local`` replicas from ``first``,
    of ``total`` in sync. Each global batch is cut into ``total`` equal parts in order, and
    this pipeline yields its parts: no clip twice per epoch, and the replicas' mean gradient is
    the global batch's."""

    first: int
    local: int
    total: int

    def __post_init__(self) -> None:
        if not (self.local >= 1 and 0 <= self.first and self.first + self.local <= self.total):
            raise DatasetError(f"bad replica slice {self}")


def replica_indices(
    order: np.ndarray, batch_size: int, part: ReplicaSlice
) -> tuple[np.ndarray, np.ndarray, int]:
    """``(indices of full batches, indices of the last batch, its part size)`` of ``part``.

    The last global batch, when short, is cut into ``total`` equal parts too: its last
    ``len % total`` clips are dropped for the epoch (fewer than ``total``; a different few each
    epoch, as the order changes).
    """
    if batch_size % part.total:
        raise DatasetError(
            f"batch size {batch_size} must be a multiple of the {part.total} replicas in sync"
        )
    per = batch_size // part.total
    mine = slice(part.first * per, (part.first + part.local) * per)
    full = len(order) // batch_size
    main = order[: full * batch_size].reshape(full, batch_size)[:, mine].reshape(-1)
    rest = order[full * batch_size :]
    last_per = len(rest) // part.total
    last = rest[part.first * last_per : (part.first + part.local) * last_per]
    return main, last, last_per


def make_dataset(
    audio: np.ndarray | ClipReader,
    labels: np.ndarray | None,
    feature_fn: FeatureFn,
    batch_size: int,
    training: bool,
    seed: int = 0,
    augment: AugmentConfig | None = None,
    noise: Sequence[np.ndarray] | NoiseBank | None = None,
    epoch: int | None = None,
    spec: SpecAugmentConfig | None = None,
    replicas: ReplicaSlice | None = None,
) -> tf.data.Dataset:
    """Batches of ``(features float32 [B, frames, feats], label int32 [B])``.

    ``audio``: int16/float clips [N, samples] in memory, or a ``ClipReader`` (clips on disk,
    ``labels`` then ``None`` or the reader's). ``feature_fn`` maps one float32 clip [samples]
    to [frames, feats]. Not training: features in input order (cached when in memory).
    Training: a seeded shuffle, and with ``augment`` clips are time-shifted and mixed with
    ``noise`` before the features.

    ``epoch=None``: one dataset for the whole run; each pass over it (each Keras epoch) gets a
    new order and new augmentation, reproducible for ``seed`` (features cached when there is no
    augmentation). ``epoch=k``: a dataset for epoch ``k`` only, its order and augmentation a pure
    function of ``(seed, k)`` — so a resumed run sees exactly the batches an uninterrupted one
    would; build a new one each epoch. ``spec`` (training only) masks the features afterwards.
    ``replicas`` (with ``epoch``): only this worker's parts of each global batch
    (``ReplicaSlice``), batched per replica; clip ``i`` is augmented the same on any worker.
    """
    reader = None if isinstance(audio, np.ndarray) else audio
    if reader is not None and not hasattr(reader, "read"):
        reader, audio = None, np.asarray(audio)
    if reader is not None:
        labels = reader.labels if labels is None else labels
        n, num_samples = reader.shape
    else:
        audio = np.asarray(audio)
        if audio.ndim != 2 or audio.shape[0] == 0:
            raise DatasetError(
                f"audio must be a non-empty [clips, samples] array, got {audio.shape}"
            )
        if audio.dtype != np.int16:
            audio = audio.astype(np.float32)
        n, num_samples = audio.shape
    labels = np.asarray(labels, np.int32).reshape(-1)
    if labels.shape[0] != n:
        raise DatasetError(f"{labels.shape[0]} labels for {n} clips")
    if batch_size <= 0:
        raise DatasetError(f"batch size must be positive, got {batch_size}")
    if replicas is not None and (not training or epoch is None):
        raise DatasetError("replicas: only for a training dataset of one epoch")
    options = tf.data.Options()
    options.deterministic = True
    # No autotuning thread: Keras drops each fit call's iterators when the call ends, and with
    # tf.data's autotune model thread running that teardown blocked for 14-57 s after every
    # 25 s epoch of a 10,400-clip run on 2 cores (more than the epoch itself). AUTOTUNE
    # parallelism then means one map call per CPU; the elements, in order, are the same.
    options.autotune.enabled = False
    if replicas is not None:  # already this worker's slice: tf.distribute must not shard it
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    autotune = tf.data.AUTOTUNE
    labels_t = tf.constant(labels)
    clip_at = _clip_reader(reader, audio, num_samples)

    def features(clip: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.cast(feature_fn(_to_float(clip)), tf.float32), label

    spec = spec if training and spec is not None and spec.enabled else None
    if reader is not None and not training:
        ds = tf.data.Dataset.range(n).map(
            lambda i: features(clip_at(i), tf.gather(labels_t, i)),
            num_parallel_calls=autotune,
            deterministic=True,
        )  # not cached: bounded memory is why the clips are on disk
        return ds.batch(batch_size).prefetch(autotune).with_options(options)
    if reader is not None and epoch is None:
        raise DatasetError("clips on disk train one epoch per dataset: pass epoch")
    if not training or (augment is None and spec is None and epoch is None):
        ds = tf.data.Dataset.from_tensor_slices((audio, labels))
        ds = ds.map(features, num_parallel_calls=autotune, deterministic=True).cache()
        if training:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(autotune).with_options(options)

    bank = None
    if augment is not None:
        bank = noise if isinstance(noise, NoiseBank) else NoiseBank(list(noise or ()), num_samples)
        if bank.num_samples != num_samples:
            raise DatasetError(
                f"noise bank cuts {bank.num_samples} samples, clips have {num_samples}"
            )
    if epoch is None:
        order = tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True)
        keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    else:
        if epoch < 0 or seed < 0:
            raise DatasetError(f"seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")
        perm = np.random.default_rng([seed, epoch]).permutation(n).astype(np.int64)
        key = np.random.SeedSequence([seed, epoch]).generate_state(2, np.uint32)
        key = int(key[0]) << 31 | int(key[1]) >> 1  # a non-negative int64 per (seed, epoch)
        order = tf.data.Dataset.from_tensor_slices(perm)
        keys = tf.data.Dataset.from_tensors(tf.constant(key, tf.int64)).repeat()

    def load(i: tf.Tensor, key: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        clip = _to_float(clip_at(i))
        if augment is not None:
            clip = augment_clip(clip, tf.stack([key, i]), augment, bank)
        feats, label = features(clip, tf.gather(labels_t, i))
        if spec is not None:  # its own stream: (key, i) with the high bit of i set
            feats = spec_augment(feats, tf.stack([key, i + (1 << 40)]), spec)
        return feats, label

    def batches(indices: tf.data.Dataset, size: int) -> tf.data.Dataset:
        ds = tf.data.Dataset.zip((indices, keys))
        return ds.map(load, num_parallel_calls=autotune, deterministic=True).batch(size)

    if replicas is None:
        ds = batches(order, batch_size)
    else:
        main, last, last_per = replica_indices(perm, batch_size, replicas)
        ds = batches(tf.data.Dataset.from_tensor_slices(main), batch_size // replicas.total)
        if last_per:
            ds = ds.concatenate(batches(tf.data.Dataset.from_tensor_slices(last), last_per))
    return ds.prefetch(autotune).with_options(options)


def _clip_reader(
    reader: ClipReader | None, audio: np.ndarray | None, num_samples: int
) -> Callable[[tf.Tensor], tf.Tensor]:
    """``clip index -> clip`` (int16 or float32 [num_samples]): a gather from memory, or a
    positioned read from disk (the same values, so the same batches either way)."""
    if reader is None:
        audio_t = tf.constant(audio)
        return lambda i: tf.gather(audio_t, i)

    def read(i: tf.Tensor) -> tf.Tensor:
        clip = tf.numpy_function(reader.read, [i], tf.int16, stateful=False)
        return tf.ensure_shape(clip, [num_samples])

    return read
