"""A keyword-spotting dataset: class order, examples per split, background noise.

``open_dataset`` recognises the two layouts tfkws reads (a Speech Commands folder, or CSV lists)
so the trainer and eval never care which one the user has.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from tfkws.data import csv_list, speech_commands
from tfkws.data.audio import is_audio_file
from tfkws.data.example import UNKNOWN_LABEL
from tfkws.data.kws_dataset import DEFAULT_KEYWORDS, MODES, KwsDataset
from tfkws.data.vocabulary import keep_keywords
from tfkws.errors import DatasetError


def open_dataset(
    path: str | os.PathLike,
    mode: str = "12class",
    keywords: Sequence[str] = DEFAULT_KEYWORDS,
    validation_percentage: float = 10,
    testing_percentage: float = 10,
    silence_percentage: float = 10,
    unknown_percentage: float = 10,
    seed: int = 0,
    labels: Sequence[str] | None = None,
    noise_dir: str | os.PathLike | None = None,
    vocabulary: Sequence[str] | None = None,
) -> KwsDataset:
    """Open a dataset in either layout.

    * a ``.csv`` file (columns ``file,class``): one split, named after the file
      (train/val/test...; any other name is ``training``);
    * a folder holding ``train.csv`` and ``val.csv``/``validation.csv`` (optional
      ``test.csv``/``testing.csv``): one split per CSV;
    * otherwise a Speech Commands folder (a subfolder per word, ``_background_noise_/``,
      optional ``validation_list.txt``/``testing_list.txt``), see
      :func:`tfkws.data.speech_commands.open_speech_commands` for ``mode`` and the percentages.

    ``mode``/``keywords``/percentages only apply to the Speech Commands layout; CSV labels are
    the sorted classes found. With ``labels`` (e.g. a trained model's) the class order is fixed
    and an example whose label is not in it is a ``DatasetError``, except that with
    ``_unknown_`` among them a CSV's other words are ``_unknown_`` (a device vocabulary,
    ``tfkws.data.vocabulary``; the Speech Commands layout's 12class mode does the same).
    ``noise_dir`` adds a folder (or one file) of background-noise recordings. ``vocabulary``
    keeps only those words as keywords, the others become ``_unknown_`` (any layout; an absent
    word is an error).
    """
    root = Path(path)
    if not root.exists():
        raise DatasetError(f"{root}: dataset not found")
    csv_layout = root.is_file() or bool(csv_list.find_csv_splits(root))
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise DatasetError(f"{root}: not a dataset (expected a folder or a .csv list)")
        ds = csv_list.open_csv_file(root)
    elif csv_layout:
        ds = csv_list.open_csv_folder(root)
    else:
        if mode not in MODES:
            raise DatasetError(
                f"{root}: unknown dataset mode {mode!r}; choose one of {', '.join(MODES)}"
            )
        ds = speech_commands.open_speech_commands(
            root,
            mode=mode,
            keywords=keywords,
            validation_percentage=validation_percentage,
            testing_percentage=testing_percentage,
            silence_percentage=silence_percentage,
            unknown_percentage=unknown_percentage,
            seed=seed,
        )
    if noise_dir is not None:
        extra = find_noise_files(noise_dir)
        if not extra:
            raise DatasetError(f"{noise_dir}: no noise audio files found")
        ds.noise_files = sorted(set(ds.noise_files) | set(extra))
    if vocabulary is not None:
        ds = keep_keywords(ds, vocabulary)
    if labels is not None and UNKNOWN_LABEL in labels and csv_layout:
        # as the Speech Commands layout's 12class mode: a model with _unknown_ reads every word
        # that is not one of its keywords as _unknown_ (a device vocabulary)
        keywords = [lab for lab in labels if not lab.startswith("_")]
        ds = keep_keywords(ds, keywords, strict=False)
    if labels is not None:
        ds = apply_labels(ds, labels)
    return ds


def find_noise_files(path: str | os.PathLike) -> list[str]:
    """Audio files of a noise folder (sorted), or ``[path]`` for a single file."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: noise folder not found")
    if p.is_file():
        return [str(p)]
    return sorted(str(f) for f in p.iterdir() if is_audio_file(f))


def apply_labels(ds: KwsDataset, labels: Sequence[str]) -> KwsDataset:
    """Fix the class order to ``labels``; any example with another label is an error."""
    labels = list(labels)
    if len(set(labels)) != len(labels):
        raise DatasetError(f"{ds.root}: duplicate labels in {labels}")
    wanted = set(labels)
    absent = sorted({e.label for ex in ds.splits.values() for e in ex} - wanted)
    if absent:
        raise DatasetError(
            f"{ds.root}: labels absent from the model: {', '.join(absent)} "
            f"(model labels: {', '.join(labels)})"
        )
    return dataclasses.replace(ds, labels=labels)
