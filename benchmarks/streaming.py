"""Streaming keyword spotting on Arabic Speech Commands: external-state streaming vs sliding window.

Trains a DS-CNN-S built for streaming (``time_padding=valid``, the micro frontend without its
stateful stages: streams and clips then give the same features) on train.csv plus ``_silence_``
(noise) and ``_unknown_`` (English Speech Commands clips of half the speakers), exports it, and
builds the int8 step model (``tfkws.streaming.streaming_int8``). Then ``tfkws stream-eval``'s
API scores both forms on the same long streams: keywords from val.csv speakers placed into
background noise and non-keyword speech (the other half of the English speakers, espeak-ng
words), and keyword-free audio for false accepts per hour.

Writes ``results/streaming.json`` and ``results/streaming.md``.

    python benchmarks/streaming.py                      # DS-CNN-S, 12 epochs, 2 h keyword-free
    python benchmarks/streaming.py --epochs 1 --max_clips 200 --fa_hours 0.05 \
        --keyword_clips 40 --out /tmp/stream-smoke                           # smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import common
import numpy as np

from tfkws.data.example import SILENCE_LABEL, UNKNOWN_LABEL, Example
from tfkws.data.kws_dataset import KwsDataset

DEFAULT_ENGLISH = common.DEFAULT_DATA.parent / "speech_commands_test_dev"
# the micro frontend without PCAN and with noise reduction subtracting nothing: a stream's
# windows then have exactly a clip's features (tests/test_streaming.py, STATELESS)
STREAM_FEATURES = "enable_pcan=false,min_signal_remaining=1.0"


def english_speakers(root: Path) -> tuple[list[str], list[str]]:
    """English Speech Commands clips (every word folder but ``_silence_``) split by a hash of
    the speaker: (for training ``_unknown_``, for the test streams). Never the same speaker."""
    from tfkws.data.audio import is_audio_file
    from tfkws.data.speech_commands import speaker_id

    train, stream = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != SILENCE_LABEL):
        for f in sorted(folder.iterdir()):
            if not is_audio_file(f):
                continue
            digit = hashlib.sha1(speaker_id(f.name).encode()).hexdigest()[0]
            (train if digit < "8" else stream).append(str(f))
    return train, stream


def training_dataset(ds: KwsDataset, english: Path, seed: int) -> KwsDataset:
    """``ds`` plus ``_silence_`` (10 % generated from noise) and ``_unknown_`` (English clips of
    the training-half speakers, 10 % of training; a quarter of them for validation)."""
    rng = np.random.default_rng(seed)
    unknown, _ = english_speakers(english)
    rng.shuffle(unknown)
    splits = {k: list(v) for k, v in ds.splits.items()}
    for split in ("training", "validation"):
        n = max(1, len(splits[split]) // 10)
        splits[split] += [Example(None, SILENCE_LABEL)] * n
    n_train = max(1, len(ds.splits["training"]) // 10)
    n_val = max(1, len(ds.splits["validation"]) // 10)
    speakers_val = unknown[: len(unknown) // 4]
    speakers_train = unknown[len(unknown) // 4 :]
    splits["training"] += [Example(p, UNKNOWN_LABEL) for p in speakers_train[:n_train]]
    splits["validation"] += [Example(p, UNKNOWN_LABEL) for p in speakers_val[:n_val]]
    labels = sorted(set(ds.labels) | {SILENCE_LABEL, UNKNOWN_LABEL})
    return dataclasses.replace(ds, labels=labels, splits=splits)


def add_args(p: argparse.ArgumentParser) -> None:
    common.add_common_args(p, epochs=12)
    p.set_defaults(features=STREAM_FEATURES)
    p.add_argument("--english", type=Path, default=DEFAULT_ENGLISH)
    p.add_argument("--size", default="s", help="DS-CNN size (s, m, l)")
    p.add_argument("--train_only", action="store_true", help="stop after training")


def train_model(args: argparse.Namespace) -> tuple[Path, dict[str, Any], KwsDataset]:
    from tfkws.data.dataset import open_dataset

    ds = open_dataset(args.data, noise_dir=args.noise_dir)
    ds = common.subsample(ds, args.max_clips, args.seed)
    ds = training_dataset(ds, args.english, args.seed)
    params = {"size": args.size, "time_padding": "valid"}
    run_dir = Path(args.work_dir) / f"ds_cnn_{args.size}_valid_stateless"
    trained = common.train_run("ds_cnn", params, ds, args, run_dir)
    return run_dir, trained, ds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_args(p)
    args = p.parse_args(argv)
    args.work_dir = args.work_dir or common.WORK / "streaming"
    t0 = time.time()
    run_dir, trained, _ = train_model(args)
    print(json.dumps({"run": str(run_dir), "val": trained["val"], "s": time.time() - t0}))
    if args.train_only:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
