"""The CSV layout: ``file,class`` lists (paths relative to the CSV's folder), one per split.

This is how Arabic Speech Commands and most non-English KWS corpora ship their speaker-disjoint
splits, so the split is taken as given rather than re-hashed.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from absl import logging

from tfkws.data.audio import is_audio_file
from tfkws.data.example import Example
from tfkws.data.kws_dataset import BACKGROUND_NOISE_DIR, SPLITS, KwsDataset
from tfkws.errors import DatasetError

COLUMNS = ("file", "class")
# file stem -> split; the first name found for a split wins, in this order
SPLIT_NAMES = {
    "train": "training",
    "training": "training",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "test": "testing",
    "testing": "testing",
}


def split_name(csv_path: str | os.PathLike) -> str:
    """The split a CSV stands for, from its name; an unrecognised name is ``training``."""
    return SPLIT_NAMES.get(Path(csv_path).stem.lower(), "training")


def find_csv_splits(folder: str | os.PathLike) -> dict[str, Path]:
    """Split -> CSV of a folder in the CSV layout (``train.csv``, ``val.csv``, ...); may be {}."""
    folder = Path(folder)
    found: dict[str, Path] = {}
    for stem, split in SPLIT_NAMES.items():
        p = folder / f"{stem}.csv"
        if split not in found and p.is_file():
            found[split] = p
    return found


def read_csv_list(csv_path: str | os.PathLike) -> list[Example]:
    """Examples listed in a ``file,class`` CSV.

    Bad structure (missing/unknown columns, no rows, a row without a path or class) is a
    ``DatasetError`` naming the CSV and line; a listed file that does not exist is skipped with a
    warning, like an unreadable clip later on.
    """
    csv_path = Path(csv_path)
    base = csv_path.parent
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise DatasetError(f"{csv_path}: CSV list not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{csv_path}: cannot read CSV list ({e})") from None
    rows = [(i + 1, r) for i, r in enumerate(rows) if any(c.strip() for c in r)]
    if not rows:
        raise DatasetError(f"{csv_path}: empty CSV (expected a header 'file,class' and rows)")
    header = [c.strip().lower() for c in rows[0][1]]
    missing = [c for c in COLUMNS if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    if missing or unknown or len(header) != len(COLUMNS):
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown column(s) {', '.join(unknown)}")
        if not problems:
            problems.append("duplicate columns")
        raise DatasetError(
            f"{csv_path}: {'; '.join(problems)} (expected exactly the columns file,class)"
        )
    file_col, class_col = header.index("file"), header.index("class")
    if len(rows) == 1:
        raise DatasetError(f"{csv_path}: empty CSV (a header but no rows)")

    examples: list[Example] = []
    skipped = 0
    for line, row in rows[1:]:
        if len(row) != len(COLUMNS):
            raise DatasetError(f"{csv_path}:{line}: expected 2 fields (file,class), got {len(row)}")
        rel, label = row[file_col].strip(), row[class_col].strip()
        if not rel:
            raise DatasetError(f"{csv_path}:{line}: missing file path")
        if not label:
            raise DatasetError(f"{csv_path}:{line}: missing class")
        path = Path(rel) if os.path.isabs(rel) else base / rel
        if not path.is_file():
            logging.warning("%s:%d: skipping missing audio file %s", csv_path, line, path)
            skipped += 1
            continue
        examples.append(Example(str(path), label))
    if skipped:
        logging.warning(
            "%s: skipped %d missing audio file(s) of %d listed", csv_path, skipped, len(rows) - 1
        )
    if not examples:
        raise DatasetError(f"{csv_path}: none of the {len(rows) - 1} listed audio files exist")
    return examples


def _noise_files(folder: Path) -> list[str]:
    noise_dir = folder / BACKGROUND_NOISE_DIR
    if not noise_dir.is_dir():
        return []
    return sorted(str(f) for f in noise_dir.iterdir() if is_audio_file(f))


def _dataset(root: Path, splits: dict[str, list[Example]]) -> KwsDataset:
    labels = sorted({e.label for ex in splits.values() for e in ex})
    folder = root if root.is_dir() else root.parent
    return KwsDataset(str(root), labels, splits, _noise_files(folder))


def open_csv_file(csv_path: str | os.PathLike) -> KwsDataset:
    """A dataset of one CSV: one split, named from the file (:func:`split_name`)."""
    csv_path = Path(csv_path)
    return _dataset(csv_path, {split_name(csv_path): read_csv_list(csv_path)})


def open_csv_folder(folder: str | os.PathLike) -> KwsDataset:
    """A folder of ``train.csv``/``val.csv``/``test.csv`` lists: each CSV is a split."""
    folder = Path(folder)
    found = find_csv_splits(folder)
    if not found:
        raise DatasetError(f"{folder}: no train.csv/val.csv/test.csv lists found")
    splits = {s: read_csv_list(found[s]) for s in SPLITS if s in found}
    return _dataset(folder, splits)
