"""Decoded clips on disk: a dataset of any size trains in bounded memory.

A split's clips are decoded once (in parallel, with a progress line) into fixed-size int16
records in shard files under the cache folder, in a sub-folder named by a key: the hash of the
split's file list (path, label, size, mtime of every file and noise recording) and every
setting that changes the decoded audio. The next run with the same data reuses it; a changed
file, label or setting gives a new key, so a new cache. Records are read by clip index, so
training keeps the in-memory path's global per-(seed, epoch) permutation and per-clip
augmentation keys: the same batches, the same weights, whichever way the clips are held.
Augmentation stays on the fly, so it is cached as audio, not features.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from absl import logging

from tfkws.data.audio import DEFAULT_SAMPLE_RATE
from tfkws.data.example import Example
from tfkws.data.pipeline import decode_example
from tfkws.errors import DatasetError
from tfkws.progress import Progress

FORMAT = 1
SHARD_CLIPS = 4096  # 128 MiB of 1 s 16 kHz clips per shard file
META = "meta.json"
LABELS = "labels.npy"


def default_cache_dir() -> Path:
    """``$TFKWS_CACHE_DIR``, else ``$XDG_CACHE_HOME/tfkws``, else ``~/.cache/tfkws``."""
    if os.environ.get("TFKWS_CACHE_DIR"):
        return Path(os.environ["TFKWS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tfkws"


class DiskClips:
    """The clips of one cached split: ``read(i)`` is clip ``i`` as int16 [num_samples]; only the
    label ids (4 bytes a clip) are held in memory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        meta = json.loads((self.root / META).read_text())
        self.num_clips = int(meta["num_clips"])
        self.num_samples = int(meta["num_samples"])
        self.shard_clips = int(meta["shard_clips"])
        self.key = str(meta["key"])
        self.labels = np.load(self.root / LABELS).astype(np.int32)
        self._fds: dict[int, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.num_clips

    @property
    def shape(self) -> tuple[int, int]:
        return self.num_clips, self.num_samples

    def _fd(self, shard: int) -> int:
        with self._lock:
            if shard not in self._fds:
                self._fds[shard] = os.open(self.root / _shard_name(shard), os.O_RDONLY)
            return self._fds[shard]

    def read(self, i: int) -> np.ndarray:
        """Clip ``i`` (a positioned read: no file offset shared between threads)."""
        i = int(i)
        if not 0 <= i < self.num_clips:
            raise IndexError(f"clip {i} of {self.num_clips}")
        size = self.num_samples * 2
        shard, row = divmod(i, self.shard_clips)
        data = os.pread(self._fd(shard), size, row * size)
        if len(data) != size:
            raise DatasetError(f"{self.root}: shard {shard} is truncated; delete the folder")
        return np.frombuffer(data, "<i2").astype(np.int16)

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: os may be gone
            pass


def _shard_name(shard: int) -> str:
    return f"shard-{shard:05d}.pcm"


def cache_key(
    examples: Sequence[Example],
    labels: Sequence[str],
    num_samples: int,
    noise_files: Sequence[str],
    seed: int,
    sample_rate: int,
    silence_volume: tuple[float, float],
) -> str:
    """Hash of everything the decoded clips depend on (a file is named by path, size, mtime)."""

    def stat(path: str) -> list:
        st = os.stat(path)
        return [path, st.st_size, st.st_mtime_ns]

    h = hashlib.sha256()
    head = {
        "format": FORMAT,
        "labels": list(labels),
        "num_samples": num_samples,
        "sample_rate": sample_rate,
        "seed": seed,
        "silence_volume": list(silence_volume),
        "noise": [stat(p) for p in noise_files],
    }
    h.update(json.dumps(head).encode())
    for ex in examples:
        try:
            item = [*stat(ex.path), ex.label] if ex.path else [None, ex.label]
        except OSError:
            item = [ex.path, None, None, ex.label]  # unreadable: skipped by the build too
        h.update(json.dumps(item).encode())
    return h.hexdigest()[:24]


def cached_clips(
    examples: Sequence[Example],
    labels: Sequence[str],
    num_samples: int,
    noise_clips: Sequence[np.ndarray],
    noise_files: Sequence[str],
    seed: int,
    cache_dir: str | os.PathLike,
    *,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    silence_volume: tuple[float, float] = (0.0, 0.1),
    workers: int | None = None,
) -> DiskClips:
    """The clips ``load_clips`` would return, held on disk: built once under ``cache_dir``,
    reused while the key matches. ``noise_clips`` are ``noise_files`` loaded (generated
    silence is cut from them)."""
    if not examples:
        raise DatasetError("no examples to load")
    key = cache_key(examples, labels, num_samples, noise_files, seed, sample_rate, silence_volume)
    root = Path(cache_dir) / f"clips-{key}"
    if (root / META).exists():
        logging.info("clip cache %s: reused (%d examples)", root, len(examples))
        return DiskClips(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        count, ids = _build(
            tmp,
            examples,
            labels,
            num_samples,
            noise_clips,
            seed,
            sample_rate,
            silence_volume,
            workers,
        )
        np.save(tmp / LABELS, ids)
        meta = {
            "format": FORMAT,
            "key": key,
            "num_clips": count,
            "num_samples": num_samples,
            "shard_clips": SHARD_CLIPS,
            "examples": len(examples),
        }
        (tmp / META).write_text(json.dumps(meta, indent=1))  # last: marks the folder complete
        try:
            os.rename(tmp, root)
        except OSError:  # another process built it first: use theirs
            if not (root / META).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logging.info("clip cache %s: built, %d clips", root, count)
    return DiskClips(root)


def _build(
    out: Path,
    examples: Sequence[Example],
    labels: Sequence[str],
    num_samples: int,
    noise_clips: Sequence[np.ndarray],
    seed: int,
    sample_rate: int,
    silence_volume: tuple[float, float],
    workers: int | None,
) -> tuple[int, np.ndarray]:
    """Decode with a thread pool (decoding releases the GIL), write records in example order."""
    index = {label: i for i, label in enumerate(labels)}
    noise = list(noise_clips)

    def decode(i: int) -> np.ndarray | None:
        return decode_example(
            examples[i], i, index, num_samples, noise, seed, sample_rate, silence_volume
        )

    ids: list[int] = []
    skipped = 0
    shard_file = None
    progress = Progress("caching clips", len(examples))
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for i, clip in enumerate(_ordered(pool, decode, len(examples))):
            progress.update()
            if clip is None:
                skipped += 1
                continue
            if len(ids) % SHARD_CLIPS == 0:
                if shard_file is not None:
                    shard_file.close()
                shard_file = open(out / _shard_name(len(ids) // SHARD_CLIPS), "wb")  # noqa: SIM115
            shard_file.write(clip.astype("<i2").tobytes())
            ids.append(index[examples[i].label])
    if shard_file is not None:
        shard_file.close()
    progress.close()
    if skipped:
        logging.warning("skipped %d unreadable clip(s) of %d", skipped, len(examples))
    if not ids:
        first = examples[0].path or "generated silence"
        raise DatasetError(f"no usable clip among {len(examples)} (first: {first})")
    return len(ids), np.asarray(ids, np.int32)


def _ordered(pool: ThreadPoolExecutor, fn, n: int, window: int = 256) -> Iterator:
    """``fn(0..n-1)`` in order with at most ``window`` in flight (bounded memory)."""
    pending: deque = deque()
    for i in range(n):
        pending.append(pool.submit(fn, i))
        if len(pending) >= window:
            yield pending.popleft().result()
    for f in pending:
        yield f.result()
