"""The Speech Commands folder layout and its canonical 12-class benchmark split.

Reproduces TF's ``speech_commands/input_data.py``: the sha1 hash split on the speaker id (so a
speaker never straddles splits and adding files never moves old ones), ``_silence_`` and
``_unknown_`` added at fixed percentages, ``validation_list.txt``/``testing_list.txt`` honoured.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from absl import logging

from tfkws.data.audio import is_audio_file
from tfkws.data.example import SILENCE_LABEL, UNKNOWN_LABEL, Example
from tfkws.data.kws_dataset import (
    BACKGROUND_NOISE_DIR,
    DEFAULT_KEYWORDS,
    MODES,
    SPLITS,
    KwsDataset,
)
from tfkws.errors import DatasetError

MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # as in TF's input_data.py: keeps the hash split stable
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"


def speaker_id(filename: str) -> str:
    """The part of ``<speaker>_nohash_<n>.wav`` that identifies the speaker.

    A word prefix (``backward_<speaker>_nohash_0``, as in a merged ``_unknown_`` folder) is
    dropped so the same speaker lands in the same split. Names without ``_nohash_`` are hashed
    whole, as TF does.
    """
    base = os.path.basename(filename)
    if "_nohash_" not in base:
        return base
    prefix = re.sub(r"_nohash_.*$", "", base)
    return prefix.rsplit("_", 1)[-1]


def which_set(filename: str, validation_percentage: float, testing_percentage: float) -> str:
    """``training``/``validation``/``testing`` for a file, by TF's sha1 speaker hash."""
    hashed = hashlib.sha1(speaker_id(filename).encode("utf-8")).hexdigest()
    percentage_hash = (int(hashed, 16) % (MAX_NUM_WAVS_PER_CLASS + 1)) * (
        100.0 / MAX_NUM_WAVS_PER_CLASS
    )
    if percentage_hash < validation_percentage:
        return "validation"
    if percentage_hash < testing_percentage + validation_percentage:
        return "testing"
    return "training"


def _list_key(relpath: str) -> str:
    """``word/file`` without extension, so lists naming .wav also match .flac copies."""
    rel = relpath.strip().replace("\\", "/").lstrip("./")
    return os.path.splitext(rel)[0]


def _read_list(path: Path) -> set[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read split list ({e})") from None
    return {_list_key(line) for line in lines if line.strip()}


def word_folders(root: Path) -> dict[str, list[str]]:
    """Audio files (sorted) of each label subfolder, noise and hidden folders excluded."""
    folders: dict[str, list[str]] = {}
    for sub in sorted(root.iterdir()):
        if not sub.is_dir() or sub.name.startswith(".") or sub.name == BACKGROUND_NOISE_DIR:
            continue
        files = sorted(str(f) for f in sub.iterdir() if is_audio_file(f))
        if files:
            folders[sub.name] = files
    return folders


def open_speech_commands(
    root: str | os.PathLike,
    mode: str = "12class",
    keywords: Sequence[str] = DEFAULT_KEYWORDS,
    validation_percentage: float = 10,
    testing_percentage: float = 10,
    silence_percentage: float = 10,
    unknown_percentage: float = 10,
    seed: int = 0,
    unknown_cap_splits: Sequence[str] = ("training", "validation"),
) -> KwsDataset:
    """Read a Speech Commands folder.

    ``mode="12class"``: labels ``_silence_, _unknown_, *keywords``; other word folders become
    ``_unknown_``, capped (seeded pick) at ``unknown_percentage`` of the split's keyword count in
    ``unknown_cap_splits``; a split without ``_silence_`` files gets ``silence_percentage`` of
    generated silence (``Example(None, "_silence_")``). Files of an explicit ``_unknown_`` or
    ``_silence_`` folder are kept as they are (such a folder is already balanced, e.g. a test set).
    ``mode="all"``: one label per word folder, sorted, nothing added.
    """
    root = Path(root)
    if mode not in MODES:
        choices = ", ".join(MODES)
        raise DatasetError(f"{root}: unknown dataset mode {mode!r}; choose one of {choices}")
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    folders = word_folders(root)
    if not folders:
        raise DatasetError(f"{root}: no audio files in label subfolders (empty dataset folder?)")
    noise_dir = root / BACKGROUND_NOISE_DIR
    noise_files = []
    if noise_dir.is_dir():
        noise_files = sorted(str(f) for f in noise_dir.iterdir() if is_audio_file(f))

    lists = {}
    for name, split in ((VALIDATION_LIST, "validation"), (TESTING_LIST, "testing")):
        if (root / name).is_file():
            lists[split] = _read_list(root / name)

    def split_of(path: str) -> str:
        if lists:
            key = _list_key(os.path.relpath(path, root))
            for split, keys in lists.items():
                if key in keys:
                    return split
            return "training"
        return which_set(path, validation_percentage, testing_percentage)

    if mode == "all":
        labels = sorted(folders)
        splits: dict[str, list[Example]] = {s: [] for s in SPLITS}
        for word, files in folders.items():
            for f in files:
                splits[split_of(f)].append(Example(f, word))
        return KwsDataset(str(root), labels, {s: e for s, e in splits.items() if e}, noise_files)

    keywords = list(keywords)
    if not keywords:
        raise DatasetError(f"{root}: no keywords given for 12class mode")
    if len(set(keywords)) != len(keywords) or {SILENCE_LABEL, UNKNOWN_LABEL} & set(keywords):
        raise DatasetError(f"{root}: keywords must be distinct words, got {keywords}")
    absent = [k for k in keywords if k not in folders]
    if absent:
        logging.warning("%s: no folder of examples for keyword(s) %s", root, ", ".join(absent))
    labels = [SILENCE_LABEL, UNKNOWN_LABEL, *keywords]
    keyword_set = set(keywords)
    known = {s: [] for s in SPLITS}
    silence = {s: [] for s in SPLITS}
    unknown_given = {s: [] for s in SPLITS}
    unknown_pool = {s: [] for s in SPLITS}
    for word, files in folders.items():
        for f in files:
            s = split_of(f)
            if word in keyword_set:
                known[s].append(Example(f, word))
            elif word == SILENCE_LABEL:
                silence[s].append(Example(f, SILENCE_LABEL))
            elif word == UNKNOWN_LABEL:
                unknown_given[s].append(Example(f, UNKNOWN_LABEL))
            else:
                unknown_pool[s].append(Example(f, UNKNOWN_LABEL))

    splits = {}
    for i, s in enumerate(SPLITS):
        set_size = len(known[s])
        examples = list(known[s])
        if silence[s]:
            examples += silence[s]
        else:
            n = int(math.ceil(set_size * silence_percentage / 100))
            examples += [Example(None, SILENCE_LABEL)] * n
        pool = unknown_pool[s]
        if s in unknown_cap_splits:
            n = int(math.ceil(set_size * unknown_percentage / 100))
            order = np.random.default_rng([seed, i]).permutation(len(pool))
            pool = [pool[j] for j in sorted(order[:n])]
        examples += unknown_given[s] + pool
        if examples:
            splits[s] = examples
    if not splits:
        raise DatasetError(f"{root}: no examples (no keyword, unknown or silence files)")
    return KwsDataset(str(root), labels, splits, noise_files)
