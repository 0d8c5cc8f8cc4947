"""Keyword clips played backwards as ``_unknown_``: the keyword speakers' voices saying no keyword.

A keyword dataset's only real voices are its keyword speakers, and its non-keyword speech usually
comes from elsewhere (another corpus, other microphones, synthetic speech). A model can then learn
the shortcut "this voice and channel is a keyword" instead of the words: new speakers of any word
fire it. A clip reversed in time keeps its speaker, microphone, level and spectrum but is no word
of the vocabulary, so as ``_unknown_`` it takes that shortcut away (the model must hear the
word's order of sounds). Only training clips are reversed, so no evaluation speaker leaks in.

Measured on Arabic Speech Commands (README, "Where the false accepts come from"): the model
learns it (new speakers' reversed keywords read as a keyword: 25.5 % -> 0 %), but its false
accepts on new English speakers stay (10.9 -> 11.3 %): there they were not that shortcut.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from tfkws.atomic import output_dir
from tfkws.data.audio import DEFAULT_SAMPLE_RATE, load_audio, to_int16
from tfkws.data.example import Example

SOURCES = "sources.txt"
"""The reversed clips' sources, one path per line: what a folder was made from."""


def pick_keyword_clips(examples: Sequence[Example], count: int, seed: int) -> list[str]:
    """``count`` paths of ``examples``' keyword clips (labels not starting with ``_``), drawn
    without replacement by ``seed`` (all of them when there are fewer), in the drawn order."""
    paths = [e.path for e in examples if e.path is not None and not e.label.startswith("_")]
    order = np.random.default_rng([seed, 11]).permutation(len(paths))
    return [paths[i] for i in order[: max(0, count)]]


def write_reversed(
    paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
) -> list[str]:
    """Each clip of ``paths`` reversed in time, as 16-bit WAV ``rev_NNNNN.wav`` in ``out_dir``
    (written whole or not at all; reused when ``SOURCES`` there lists the same clips). Unreadable
    clips fail with the audio loader's one-line error naming the file."""
    out_dir = Path(out_dir)
    names = [f"rev_{i:05d}.wav" for i in range(len(paths))]
    listing = "".join(f"{os.fspath(p)}\n" for p in paths)
    done = out_dir / SOURCES
    if done.is_file() and done.read_text() == listing:
        return [str(out_dir / n) for n in names]
    with output_dir(out_dir) as tmp:
        for path, name in zip(paths, names, strict=True):
            pcm = to_int16(load_audio(path, sample_rate)[::-1])
            sf.write(str(Path(tmp) / name), pcm, sample_rate, subtype="PCM_16")
        (Path(tmp) / SOURCES).write_text(listing)
    return [str(out_dir / n) for n in names]
