"""Long labelled test streams built from clips: keywords at known times in noise and other speech.

A 1 s keyword clip scores well in isolation; on a device the model sees every window of an
endless stream, so false accepts come from the speech and noise between keywords. A stream here is
a sequence of events separated by random gaps, all over a looped background noise: a keyword
clip (labelled), or a distractor (a non-keyword word: another word of the dataset, an English
Speech Commands clip, synthetic speech). A keyword-free stream has distractors only: its false
accepts per hour are what a user hears. Everything is drawn from one seed.

Each clip is trimmed to its speech (energy above a fraction of the loudest frame, plus a margin),
so a keyword's ``start``/``end`` in the labels CSV are the bounds of the spoken word, not of its
mostly silent 1 s file. Audio is written event by event to a 16-bit FLAC/WAV: memory stays at one
clip and one chunk of noise, whatever the length.

The labels CSV has the columns ``keyword,start,end`` (seconds) and, for a built stream,
``source``: the clip each keyword came from, so a miss can be listened to and traced to its
speaker. ``read_labels`` reads one written by hand too (without ``source``).
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tfkws.errors import TfkwsError

LABEL_COLUMNS = ("keyword", "start", "end")
SOURCE_COLUMN = "source"
TRIM_FRAME = 320  # 20 ms at 16 kHz


@dataclasses.dataclass(frozen=True)
class Placement:
    """A keyword in a stream: its label, the start and end of the spoken word (seconds) and the
    clip it came from (``""``: not known, e.g. a stream labelled by hand)."""

    keyword: str
    start: float
    end: float
    source: str = ""


@dataclasses.dataclass(frozen=True)
class StreamRecipe:
    """What a stream is made of.

    ``keywords``: (path, label) clips to place; ``distractors``: non-keyword speech clips (paths)
    or synthetic speech arrays at ``sample_rate``; ``noise_files``: background recordings looped
    under everything (none: silence plus ``noise_floor``). ``gap_s``: silence (noise) between
    events; ``distractor_share``: chance an event of a keyword stream is a distractor;
    ``noise_db``: noise level range in dBFS (RMS, one level per stream); ``speech_db``: speech
    RMS range in dBFS (None: each clip at its recorded level, the level the model trained on).
    """

    keywords: Sequence[tuple[str, str]] = ()
    distractors: Sequence[str | np.ndarray] = ()
    noise_files: Sequence[str] = ()
    sample_rate: int = 16000
    gap_s: tuple[float, float] = (0.8, 2.5)
    distractor_share: float = 0.5
    noise_db: tuple[float, float] = (-50.0, -35.0)
    speech_db: tuple[float, float] | None = None
    noise_floor: float = 1e-4


def trim_speech(
    clip: np.ndarray, rel_db: float = -30.0, margin: int = 1600
) -> tuple[np.ndarray, int, int]:
    """The speech of a clip: from the first to the last 20 ms frame within ``rel_db`` of the
    loudest and 10 dB above the quietest tenth, plus ``margin`` samples each side; and where
    the speech starts and ends in it (an all-quiet clip is returned whole)."""
    n = clip.shape[0] // TRIM_FRAME
    if n == 0:
        return clip, 0, clip.shape[0]
    rms = np.sqrt(np.mean(clip[: n * TRIM_FRAME].reshape(n, TRIM_FRAME) ** 2, axis=1) + 1e-12)
    # within rel_db of the loudest frame and well above the clip's own background
    floor = 3 * float(np.percentile(rms, 10))
    loud = np.nonzero(rms >= max(rms.max() * 10 ** (rel_db / 20), min(floor, rms.max())))[0]
    if rms.max() < 1e-4 or loud.size == 0:
        return clip, 0, clip.shape[0]
    s0, s1 = int(loud[0]) * TRIM_FRAME, (int(loud[-1]) + 1) * TRIM_FRAME
    a, b = max(0, s0 - margin), min(clip.shape[0], s1 + margin)
    return clip[a:b], s0 - a, s1 - a


class _NoiseLoop:
    """Background noise read in order from a random point, file after file, looping."""

    def __init__(self, files: Sequence[str], sample_rate: int, rng: np.random.Generator) -> None:
        from tfkws.data.audio import load_audio

        self._clips = [load_audio(f, sample_rate) for f in files]
        self._clips = [c for c in self._clips if c.size]
        self._rng = rng
        self._i = int(rng.integers(len(self._clips))) if self._clips else 0
        self._pos = int(rng.integers(self._clips[self._i].size)) if self._clips else 0
        whole = np.concatenate(self._clips) if self._clips else np.zeros(1, np.float32)
        self.level_db = _rms_db(whole)  # one gain for all: the noise keeps its own dynamics

    @property
    def has_noise(self) -> bool:
        return bool(self._clips)

    def take(self, n: int) -> np.ndarray:
        if not self._clips:
            return np.zeros(n, np.float32)
        out = []
        while n > 0:
            clip = self._clips[self._i]
            part = clip[self._pos : self._pos + n]
            out.append(part)
            n -= part.size
            self._pos += part.size
            if self._pos >= clip.size:
                self._i = int(self._rng.integers(len(self._clips)))
                self._pos = 0
        return np.concatenate(out)


def noise_tail(
    noise: _NoiseLoop, n: int, gain: float, recipe: StreamRecipe, rng: np.random.Generator
) -> np.ndarray:
    """``n`` samples of the stream's background alone."""
    seg = recipe.noise_floor * rng.standard_normal(n).astype(np.float32)
    if noise.has_noise:
        seg += noise.take(n) * np.float32(gain / 10 ** (noise.level_db / 20))
    return seg


def _rms_db(x: np.ndarray) -> float:
    return 20 * np.log10(float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) + 1e-12)


def _load(item: str | np.ndarray, sample_rate: int) -> np.ndarray:
    from tfkws.data.audio import load_audio

    if isinstance(item, np.ndarray):
        return item.astype(np.float32)
    return load_audio(item, sample_rate)


def write_stream(
    path: str | os.PathLike,
    recipe: StreamRecipe,
    seed: int,
    duration_s: float | None = None,
) -> list[Placement]:
    """Write a stream to ``path`` (FLAC/WAV, 16-bit); its keyword placements.

    Without ``duration_s``: every keyword clip once, in a seeded order, with distractors
    between them. With it: a keyword-free stream of about ``duration_s`` seconds (distractors
    drawn with replacement, or noise alone) of exactly ``duration_s``; no placements."""
    import soundfile as sf

    keyword_free = duration_s is not None
    if not keyword_free and not recipe.keywords:
        raise TfkwsError(f"{path}: a keyword stream needs keyword clips")
    if keyword_free and not recipe.distractors and not recipe.noise_files:
        raise TfkwsError(f"{path}: a keyword-free stream needs distractors or noise")
    sr = recipe.sample_rate
    rng = np.random.default_rng(seed)
    noise = _NoiseLoop(recipe.noise_files, sr, rng)
    noise_gain = 10 ** (rng.uniform(*recipe.noise_db) / 20)
    order = [] if keyword_free else list(rng.permutation(len(recipe.keywords)))
    placements: list[Placement] = []
    total = int(duration_s * sr) if keyword_free else None
    written = 0
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fmt = "FLAC" if path.suffix.lower() == ".flac" else "WAV"
    try:
        with sf.SoundFile(tmp, "w", sr, 1, "PCM_16", format=fmt) as out:
            while written < total if total is not None else order:
                gap = int(rng.uniform(*recipe.gap_s) * sr)
                use_distractor = keyword_free or (
                    bool(recipe.distractors) and rng.random() < recipe.distractor_share
                )
                if use_distractor and recipe.distractors:
                    item = recipe.distractors[int(rng.integers(len(recipe.distractors)))]
                    label = None
                elif use_distractor:
                    item, label = None, None
                else:
                    item, label = recipe.keywords[order.pop()]
                speech, s0, s1 = np.zeros(0, np.float32), 0, 0
                if item is not None:
                    speech, s0, s1 = trim_speech(_load(item, sr))
                    if speech.size and recipe.speech_db is not None:
                        gain_db = rng.uniform(*recipe.speech_db) - _rms_db(speech)
                        speech = speech * np.float32(10 ** (gain_db / 20))
                seg = np.zeros(gap + speech.size, np.float32)
                seg[gap:] += speech
                seg += noise_tail(noise, seg.size, noise_gain, recipe, rng)
                if label is not None:
                    at = written + gap
                    src = "" if isinstance(item, np.ndarray) else str(item)
                    placements.append(Placement(label, (at + s0) / sr, (at + s1) / sr, src))
                if total is not None:
                    seg = seg[: total - written]
                out.write(np.clip(seg, -1.0, 1.0))
                written += seg.size
            if not keyword_free:  # room after the last keyword for its detection
                tail = noise_tail(noise, int(recipe.gap_s[1] * sr), noise_gain, recipe, rng)
                out.write(np.clip(tail, -1.0, 1.0))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return placements


def write_labels(path: str | os.PathLike, placements: Sequence[Placement]) -> None:
    """The labels CSV (``keyword,start,end``, and ``source`` when a placement has one), written
    atomically."""
    import io

    from tfkws import atomic

    sources = any(p.source for p in placements)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*LABEL_COLUMNS, *([SOURCE_COLUMN] if sources else [])])
    for p in placements:
        w.writerow([p.keyword, f"{p.start:.4f}", f"{p.end:.4f}", *([p.source] if sources else [])])
    atomic.write_text(path, buf.getvalue())


def read_labels(path: str | os.PathLike, labels: Sequence[str] | None = None) -> list[Placement]:
    """Placements of a labels CSV; one-line ``TfkwsError`` naming the file and row for a
    missing column, a bad time, or (with ``labels``) a keyword the model does not know."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
    except FileNotFoundError:
        raise TfkwsError(f"{path}: labels CSV not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise TfkwsError(f"{path}: cannot read labels CSV ({e})") from None
    if not rows:
        raise TfkwsError(f"{path}: empty labels CSV (expected a header keyword,start,end)")
    header = [c.strip().lower() for c in rows[0]]
    missing = [c for c in LABEL_COLUMNS if c not in header]
    if missing:
        raise TfkwsError(
            f"{path}: missing column(s) {', '.join(missing)} (expected keyword,start,end)"
        )
    idx = [header.index(c) for c in LABEL_COLUMNS]
    src = header.index(SOURCE_COLUMN) if SOURCE_COLUMN in header else None
    out = []
    for line, row in enumerate(rows[1:], start=2):
        try:
            keyword = row[idx[0]].strip()
            start, end = float(row[idx[1]]), float(row[idx[2]])
        except (IndexError, ValueError):
            raise TfkwsError(f"{path}:{line}: expected keyword,start,end, got {row}") from None
        if not keyword or not 0 <= start <= end:
            raise TfkwsError(f"{path}:{line}: bad placement {row} (need 0 <= start <= end)")
        if labels is not None and keyword not in labels:
            raise TfkwsError(
                f"{path}:{line}: keyword {keyword!r} is not a label of the model "
                f"({', '.join(labels)})"
            )
        source = row[src].strip() if src is not None and src < len(row) else ""
        out.append(Placement(keyword, start, end, source))
    return sorted(out, key=lambda p: p.start)
