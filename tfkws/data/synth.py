"""A keyword dataset synthesised offline with espeak-ng, in the Speech Commands folder layout.

It lets the demo and the tests train a keyword model on a fresh machine with no download. Text-to-
speech alone is far from real speech, so each clip is varied the way real recordings vary: many
voices, variants, speeds and pitches ("speakers"), intonation from punctuation, random gain, a
synthetic room response, microphone band-limiting and background noise. Speakers are split
between training, validation and testing so the validation score measures unseen voices.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import time
import wave
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging
from scipy.signal import butter, fftconvolve, resample, sosfilt

from tfkws import __version__
from tfkws.atomic import output_dir
from tfkws.data import espeak
from tfkws.data.example import Example
from tfkws.errors import AudioError, DatasetError
from tfkws.progress import Progress

KEYWORDS: tuple[str, ...] = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")

UNKNOWN_WORDS: tuple[str, ...] = (
    # sound-alikes of the keywords, so "unknown" learns the boundaries that matter
    "yet",
    "yell",
    "less",
    "know",
    "now",
    "note",
    "cup",
    "us",
    "town",
    "dawn",
    "gown",
    "lift",
    "let",
    "write",
    "ride",
    "light",
    "own",
    "one",
    "of",
    "ought",
    "top",
    "stock",
    "shop",
    "goal",
    "code",
    "get",
    "long",
    "done",
    "dog",
    "doe",
    "bet",
    # everyday short words, numbers and names like those of Speech Commands' other words
    "zero",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "bed",
    "bird",
    "cat",
    "happy",
    "house",
    "tree",
    "wow",
    "learn",
    "follow",
    "forward",
    "backward",
    "visual",
    "marvin",
    "sheila",
    "water",
    "hello",
    "maybe",
    "table",
    "music",
)

VOICES: tuple[str, ...] = (
    "en-us",
    "en",
    "en-gb-x-rp",
    "en-gb-scotland",
    "en-029",
    "en-us-nyc",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
)
"""English espeak-ng voices (accents)."""

VARIANTS: tuple[str, ...] = (
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "m8",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "klatt",
    "klatt2",
    "klatt3",
    "klatt4",
    "Alex",
    "Andy",
    "Annie",
    "Denis",
    "Gene",
    "Lee",
    "Michael",
    "Mike",
    "adam",
    "anika",
    "aunty",
    "belinda",
    "benjamin",
    "boris",
    "caleb",
    "david",
    "ed",
    "edward",
    "grandma",
    "grandpa",
    "iven",
    "john",
    "linda",
    "max",
    "norbert",
    "paul",
    "quincy",
    "rob",
    "robert",
    "shelby",
    "steph",
    "travis",
    "victor",
    "zac",
    "whisper",
    "whisperf",
)
"""Voice variants (speaker characters) that sound like people rather than robots."""

TEXT_FORMS: tuple[str, ...] = ("{}", "{}.", "{}!", "{}?", "{},")
"""Punctuation changes espeak-ng's intonation (statement, exclamation, question, continuation)."""

SIZES: dict[str, dict[str, int]] = {
    "tiny": {
        "clips_per_keyword": 4,
        "clips_per_unknown_word": 1,
        "speakers": 8,
        "noise_seconds": 10,
    },
    "default": {
        "clips_per_keyword": 200,
        "clips_per_unknown_word": 24,
        "speakers": 160,
        "noise_seconds": 45,
    },
    "large": {
        "clips_per_keyword": 1000,
        "clips_per_unknown_word": 120,
        "speakers": 800,
        "noise_seconds": 60,
    },
}
"""Presets: ``tiny`` for tests, ``default`` (~3.4k clips) for the demo, ``large`` for training."""

NOISE_DIR = "_background_noise_"
_NOISE_KINDS = ("white_noise", "pink_noise", "brown_noise", "hum", "babble")
_AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif"}
# a label: lower-case letters, digits, apostrophes and inner spaces (Arabic Speech Commands'
# "zoom in"); a leading "_" is reserved for _silence_ / _unknown_
_WORD_RE = re.compile(r"^[a-z0-9](?:[a-z0-9' ]*[a-z0-9'])?$")


@dataclass(frozen=True)
class Recipe:
    """Random ranges of the variation applied to each clip (recorded in ``synth_config.json``)."""

    rate: tuple[int, int] = (110, 230)  # words per minute
    pitch: tuple[int, int] = (15, 85)
    pitch_range: tuple[int, int] = (10, 90)
    peak_dbfs: tuple[float, float] = (-30.0, -1.0)
    reverb_prob: float = 0.6
    rt60: tuple[float, float] = (0.1, 0.8)  # seconds
    wet: tuple[float, float] = (0.1, 0.6)
    highpass_prob: float = 0.7
    highpass_hz: tuple[float, float] = (40.0, 400.0)
    lowpass_prob: float = 0.5
    lowpass_hz: tuple[float, float] = (2500.0, 7500.0)
    tilt: tuple[float, float] = (-0.5, 0.7)  # first-order pre-emphasis coefficient
    noise_prob: float = 0.8
    snr_db: tuple[float, float] = (3.0, 30.0)
    floor_dbfs: tuple[float, float] = (-80.0, -55.0)  # microphone self-noise, always present
    # Resampling factor: shifts formants, pitch and length together, like another vocal-tract
    # length. (0.85, 1.18) took the demo model from 43 % to 54 % on real Speech Commands.
    warp: tuple[float, float] = (0.85, 1.18)


@dataclass(frozen=True)
class Speaker:
    """One synthetic talker: a voice, a variant and a manner of speaking."""

    id: str
    voice: str
    variant: str
    rate: int
    pitch: int
    pitch_range: int


def synthesize_dataset(
    out_dir: str | Path,
    keywords: Sequence[str] = KEYWORDS,
    unknown_words: Sequence[str] = UNKNOWN_WORDS,
    clips_per_keyword: int | None = None,
    clips_per_unknown_word: int | None = None,
    seed: int = 0,
    noise_dir: str | Path | None = None,
    sample_rate: int = 16000,
    progress: bool = True,
    size: str = "default",
    speakers: int | None = None,
    noise_seconds: int | None = None,
    validation_fraction: float = 0.1,
    testing_fraction: float = 0.1,
    recipe: Recipe | None = None,
    texts: Mapping[str, Sequence[str]] | None = None,
    voices: Sequence[str] = VOICES,
) -> Path:
    """Write a synthetic keyword dataset to ``out_dir`` in the Speech Commands layout; return it.

    Layout: ``<word>/<speaker>_nohash_<n>.wav`` (16-bit PCM, exactly one second),
    ``_background_noise_/*.wav`` (generated noise plus the audio files of ``noise_dir``),
    ``validation_list.txt`` and ``testing_list.txt`` (split by speaker) and ``synth_config.json``.
    ``size`` picks the preset counts of :data:`SIZES`; explicit arguments override it. The same
    arguments give byte-identical files.

    ``texts`` maps a word (the folder name, e.g. an English gloss) to what is spoken for it (one
    of them per clip, seeded): other languages or spellings (``tfkws.data.arabic_keywords``);
    ``voices`` are the espeak-ng voices speakers are drawn from (``ar`` for Arabic).
    """
    if size not in SIZES:
        raise DatasetError(f"{out_dir}: unknown size '{size}' (choose from {', '.join(SIZES)})")
    preset = SIZES[size]
    n_kw = preset["clips_per_keyword"] if clips_per_keyword is None else int(clips_per_keyword)
    n_unk = (
        preset["clips_per_unknown_word"]
        if clips_per_unknown_word is None
        else int(clips_per_unknown_word)
    )
    n_spk = preset["speakers"] if speakers is None else int(speakers)
    n_noise_s = preset["noise_seconds"] if noise_seconds is None else int(noise_seconds)
    recipe = recipe or Recipe()
    keywords, unknown_words = list(keywords), list(unknown_words)
    _check_words(out_dir, keywords, unknown_words)
    spoken = _spoken_texts(out_dir, keywords + unknown_words, texts)
    voices = list(voices)
    if not voices:
        raise DatasetError(f"{out_dir}: at least one espeak-ng voice is needed")
    if n_kw < 1 or n_unk < 0 or n_spk < 1 or n_noise_s < 1 or sample_rate < 8000:
        raise DatasetError(f"{out_dir}: clip, speaker and noise counts must be positive")
    if not (
        0 <= validation_fraction < 1
        and 0 <= testing_fraction < 1
        and validation_fraction + testing_fraction < 1
    ):
        raise DatasetError(f"{out_dir}: validation and testing fractions must sum below 1")
    user_noise = _read_noise_dir(noise_dir, sample_rate) if noise_dir is not None else {}

    start = time.monotonic()
    speaker_pool = make_speakers(n_spk, seed, recipe, voices)
    val_ids, test_ids = _split_speakers(speaker_pool, seed, validation_fraction, testing_fraction)

    # 1. Plan every clip (word, speaker, repetition, text form, small per-clip jitter).
    plan: list[dict[str, Any]] = []
    for word in keywords + unknown_words:
        count = n_kw if word in keywords else n_unk
        order = np.random.default_rng([seed, zlib.crc32(word.encode()), 1]).permutation(n_spk)
        repeats: dict[str, int] = {}
        for i in range(count):
            spk = speaker_pool[int(order[i % n_spk])]
            rng = np.random.default_rng([seed, zlib.crc32(word.encode()), 2, i])
            rep = repeats.get(spk.id, 0)
            repeats[spk.id] = rep + 1
            form = TEXT_FORMS[int(rng.integers(len(TEXT_FORMS)))]
            options = spoken[word]
            text = options[int(rng.integers(len(options)))] if len(options) > 1 else options[0]
            job = {
                "text": form.format(text),
                "voice": spk.voice,
                "variant": spk.variant,
                "rate": int(np.clip(spk.rate + rng.integers(-12, 13), 80, 450)),
                "pitch": int(np.clip(spk.pitch + rng.integers(-6, 7), 0, 100)),
                "pitch_range": spk.pitch_range,
            }
            plan.append({"word": word, "speaker": spk.id, "rep": rep, "rng": rng, "job": job})

    # 2. Babble noise needs speech too: talkers saying unknown words (never keywords).
    babble_rng = np.random.default_rng([seed, 3])
    babble_words = unknown_words or ["hello", "water", "music", "table"]
    babble_jobs = []
    for _ in range(max(8, n_noise_s * 3 * 6 // 2)):  # ~3 words/s for 6 overlapping talkers
        spk = speaker_pool[int(babble_rng.integers(n_spk))]
        word = babble_words[int(babble_rng.integers(len(babble_words)))]
        babble_jobs.append(
            {
                "text": word,
                "voice": spk.voice,
                "variant": spk.variant,
                "rate": spk.rate,
                "pitch": spk.pitch,
                "pitch_range": spk.pitch_range,
            }
        )

    # 3. Synthesise in a fresh process: espeak-ng state would otherwise leak between calls.
    #    Utterances espeak-ng crashes on (a few Arabic voice/variant/pitch combinations) are
    #    left out: that clip is not written (``skipped_clips`` in synth_config.json).
    audio = espeak.synthesize_isolated(
        [p["job"] for p in plan] + babble_jobs, sample_rate, skip_crashes=True
    )
    if progress:
        logging.info("synth: %d utterances spoken in %.1f s", len(audio), time.monotonic() - start)
    speech = audio[: len(plan)]
    babble_speech = [x for x in audio[len(plan) :] if x is not None]
    skipped: list[str] = []

    noises = _make_noises(np.random.default_rng([seed, 4]), babble_speech, n_noise_s, sample_rate)
    mix_noises = list(noises.values()) + list(user_noise.values())

    validation: list[str] = []
    testing: list[str] = []
    bar = Progress("synth: rendering clips", len(plan), enabled=progress)
    with output_dir(out_dir) as tmp:
        for name, samples in {**noises, **user_noise}.items():
            _write_wav(tmp / NOISE_DIR / f"{name}.wav", samples, sample_rate)
        for item, raw in zip(plan, speech, strict=True):
            rel = f"{item['word']}/{item['speaker']}_nohash_{item['rep']}.wav"
            if raw is None:
                skipped.append(rel)
                bar.update()
                continue
            clip = _render_clip(raw, item["rng"], mix_noises, sample_rate, recipe)
            _write_wav(tmp / rel, clip, sample_rate)
            if item["speaker"] in val_ids:
                validation.append(rel)
            elif item["speaker"] in test_ids:
                testing.append(rel)
            bar.update()
        bar.close()
        (tmp / "validation_list.txt").write_text("".join(f"{r}\n" for r in sorted(validation)))
        (tmp / "testing_list.txt").write_text("".join(f"{r}\n" for r in sorted(testing)))
        config = {
            "format": "tfkws-synth-dataset",
            "version": 1,
            "tfkws_version": __version__,
            "seed": seed,
            "size": size,
            "sample_rate": sample_rate,
            "keywords": keywords,
            "unknown_words": unknown_words,
            "texts": {w: list(spoken[w]) for w in keywords + unknown_words},
            "voices": voices,
            "clips_per_keyword": n_kw,
            "clips_per_unknown_word": n_unk,
            "noise_seconds": n_noise_s,
            "noise_files": sorted(noises) + sorted(user_noise),
            "noise_dir": None if noise_dir is None else str(noise_dir),
            "validation_fraction": validation_fraction,
            "testing_fraction": testing_fraction,
            "recipe": asdict(recipe),
            "text_forms": list(TEXT_FORMS),
            "speakers": [asdict(s) for s in speaker_pool],
            "validation_speakers": sorted(val_ids),
            "testing_speakers": sorted(test_ids),
            "clips": len(plan) - len(skipped),
            "skipped_clips": skipped,
        }
        (tmp / "synth_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if progress:
        elapsed = time.monotonic() - start
        logging.info(
            "synth: wrote %d clips to %s in %.1f s (%.0f clips/s)",
            len(plan) - len(skipped),
            out_dir,
            elapsed,
            len(plan) / max(elapsed, 1e-9),
        )
    return Path(out_dir)


def keyword_examples(out_dir: str | Path) -> list[Example]:
    """Every clip of a synthesised dataset's keywords (``synth_config.json``), labelled by its
    word folder, word by word in file order: extra training clips for another dataset with
    those labels."""
    root = Path(out_dir)
    try:
        words = json.loads((root / "synth_config.json").read_text(encoding="utf-8"))["keywords"]
    except (OSError, ValueError, KeyError) as e:
        raise DatasetError(f"{root}: not a synthesised dataset ({e})") from None
    return [Example(str(f), w) for w in sorted(words) for f in sorted((root / w).glob("*.wav"))]


def make_speakers(
    count: int, seed: int, recipe: Recipe | None = None, voices: Sequence[str] = VOICES
) -> list[Speaker]:
    """Draw ``count`` distinct synthetic speakers (voice x variant x rate x pitch x range)."""
    recipe = recipe or Recipe()
    rng = np.random.default_rng([seed, 0])
    speakers: list[Speaker] = []
    seen: set[str] = set()
    # Cycle through shuffled voice/variant pairs so small pools still cover many characters.
    pairs = [(v, w) for v in voices for w in VARIANTS]
    order = rng.permutation(len(pairs))
    i = 0
    while len(speakers) < count:
        voice, variant = pairs[int(order[i % len(pairs)])]
        i += 1
        rate = int(rng.integers(recipe.rate[0], recipe.rate[1] + 1))
        pitch = int(rng.integers(recipe.pitch[0], recipe.pitch[1] + 1))
        prange = int(rng.integers(recipe.pitch_range[0], recipe.pitch_range[1] + 1))
        key = f"{voice}|{variant}|{rate}|{pitch}|{prange}"
        sid = hashlib.sha1(f"{seed}|{key}".encode()).hexdigest()[:8]
        if sid in seen:
            continue
        seen.add(sid)
        speakers.append(Speaker(sid, voice, variant, rate, pitch, prange))
    return speakers


def _split_speakers(
    speakers: list[Speaker], seed: int, val_frac: float, test_frac: float
) -> tuple[set[str], set[str]]:
    """Hold out whole speakers (at least one each when fractions > 0 and speakers suffice)."""
    order = np.random.default_rng([seed, 5]).permutation(len(speakers))
    ids = [speakers[int(i)].id for i in order]
    n_val = max(1, round(val_frac * len(ids))) if val_frac > 0 and len(ids) >= 3 else 0
    n_test = max(1, round(test_frac * len(ids))) if test_frac > 0 and len(ids) >= 3 else 0
    return set(ids[:n_val]), set(ids[n_val : n_val + n_test])


def _check_words(out_dir: str | Path, keywords: list[str], unknown: list[str]) -> None:
    if not keywords:
        raise DatasetError(f"{out_dir}: at least one keyword is needed")
    for w in keywords + unknown:
        if not _WORD_RE.match(w):
            raise DatasetError(f"{out_dir}: word '{w}' must be lower-case letters/digits")
    dup = sorted({w for w in keywords + unknown if (keywords + unknown).count(w) > 1})
    if dup:
        raise DatasetError(f"{out_dir}: words listed twice or as both keyword and unknown: {dup}")


def _spoken_texts(
    out_dir: str | Path, words: list[str], texts: Mapping[str, Sequence[str]] | None
) -> dict[str, tuple[str, ...]]:
    """Word -> the texts spoken for it (the word itself unless ``texts`` says otherwise)."""
    texts = dict(texts or {})
    unknown = sorted(set(texts) - set(words))
    if unknown:
        raise DatasetError(f"{out_dir}: texts given for words not in the dataset: {unknown}")
    out = {}
    for w in words:
        options = tuple(texts.get(w, (w,)))
        if isinstance(texts.get(w), str) or not options or not all(t.strip() for t in options):
            raise DatasetError(f"{out_dir}: texts for '{w}' must be a list of non-empty strings")
        out[w] = options
    return out


def _read_noise_dir(noise_dir: str | Path, sample_rate: int) -> dict[str, np.ndarray]:
    """Load the user's noise recordings as mono float32 at ``sample_rate``."""
    import soundfile as sf

    folder = Path(noise_dir)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: noise folder not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _AUDIO_SUFFIXES)
    if not files:
        raise DatasetError(f"{folder}: no audio files (.wav/.flac/.ogg) in noise folder")
    out = {}
    for path in files:
        try:
            x, sr = sf.read(path, dtype="float32", always_2d=True)
        except Exception as e:  # soundfile raises several types for bad files
            raise AudioError(f"{path}: cannot read noise file ({e})") from e
        x = x.mean(axis=1)
        x = espeak.resample(x, sr, sample_rate)
        if len(x) < sample_rate:
            raise AudioError(f"{path}: noise file shorter than one second")
        name = path.stem if path.stem not in _NOISE_KINDS else f"{path.stem}_user"
        out[name] = x
    return out


def _make_noises(
    rng: np.random.Generator, babble_speech: list[np.ndarray], seconds: int, sr: int
) -> dict[str, np.ndarray]:
    """White, pink, brown, mains hum and speech babble, each ``seconds`` long, RMS ~0.05-0.1."""
    n = seconds * sr
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    f[0] = f[1]
    white = rng.standard_normal(n)
    pink = np.fft.irfft(spectrum / np.sqrt(f), n)
    brown = np.fft.irfft(spectrum / np.maximum(f, 20.0), n)  # 1/f^2 power above 20 Hz
    mains = 50.0 if rng.random() < 0.5 else 60.0
    t = np.arange(n) / sr
    hum = sum(
        (0.6**k) * np.sin(2 * np.pi * mains * (k + 1) * t + rng.uniform(0, 2 * np.pi))
        for k in range(8)
    )
    hum = hum * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t)) + 0.05 * pink / (
        np.std(pink) + 1e-9
    )
    babble = np.zeros(n)
    talkers = 6
    for k, utt in enumerate(babble_speech):
        x = _trim(utt.astype(np.float64) / 32768.0)
        if len(x) == 0 or len(x) >= n:
            continue
        pos = int(rng.integers(0, n - len(x)))
        babble[pos : pos + len(x)] += x * rng.uniform(0.3, 1.0) * (1.0 if k % talkers else 0.7)
    levels = {
        "white_noise": 0.05,
        "pink_noise": 0.08,
        "brown_noise": 0.08,
        "hum": 0.05,
        "babble": 0.08,
    }
    out = {}
    for name, x in zip(_NOISE_KINDS, (white, pink, brown, hum, babble), strict=True):
        x = x - x.mean()
        out[name] = (x * (levels[name] / (np.sqrt(np.mean(x**2)) + 1e-12))).astype(np.float32)
    return out


def _trim(x: np.ndarray, rel: float = 0.02) -> np.ndarray:
    """Cut espeak-ng's leading and trailing silence (samples below ``rel`` of the peak)."""
    peak = np.max(np.abs(x)) if len(x) else 0.0
    if peak == 0:
        return x[:0]
    idx = np.flatnonzero(np.abs(x) > rel * peak)
    return x[max(0, idx[0] - 80) : idx[-1] + 80]


def _butter(order: int, fc: float, kind: str, sr: int) -> np.ndarray:
    """Butterworth sections with the cutoff snapped to a 2 % grid, so designs can be cached."""
    return _butter_cached(order, round(math.log(fc) / math.log(1.02)), kind, sr)


@lru_cache(maxsize=4096)
def _butter_cached(order: int, step: int, kind: str, sr: int) -> np.ndarray:
    return butter(order, 1.02**step, kind, fs=sr, output="sos")


def _render_clip(
    raw: np.ndarray, rng: np.random.Generator, noises: list[np.ndarray], sr: int, r: Recipe
) -> np.ndarray:
    """Turn one utterance into a 1 s "recording": colour, room, placement, gain, noise."""
    x = _trim(raw.astype(np.float64) / 32768.0)
    if len(x) == 0:
        x = np.zeros(sr // 10)
    # vocal-tract-length-like warp: stretch by f, which lowers every frequency by 1/f
    f = rng.uniform(*r.warp)
    if f != 1.0:
        x = resample(x, max(1, round(len(x) * f)))
    # microphone / channel colouration
    if rng.random() < r.highpass_prob:
        fc = math.exp(rng.uniform(math.log(r.highpass_hz[0]), math.log(r.highpass_hz[1])))
        x = sosfilt(_butter(2, fc, "highpass", sr), x)
    if rng.random() < r.lowpass_prob:
        fc = min(rng.uniform(*r.lowpass_hz), 0.45 * sr)
        x = sosfilt(_butter(int(rng.integers(2, 7)), fc, "lowpass", sr), x)
    a = rng.uniform(*r.tilt)
    x = np.append(x[:1], x[1:] - a * x[:-1])
    # room: exponentially decaying noise tail, mixed wet/dry
    if rng.random() < r.reverb_prob:
        rt60 = rng.uniform(*r.rt60)
        n = int(rt60 * sr)
        t = np.arange(n) / sr
        h = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
        h[0] = 0.0
        h /= np.sqrt(np.sum(h**2)) + 1e-12
        wet = rng.uniform(*r.wet)
        tail = fftconvolve(x, h)[: len(x) + n // 2]
        x = (1 - wet) * np.pad(x, (0, len(tail) - len(x))) + wet * tail
    # place the word at a random offset in exactly one second
    clip = np.zeros(sr)
    if len(x) >= sr:
        s = int(rng.integers(0, len(x) - sr + 1))
        clip[:] = x[s : s + sr]
        active = clip
    else:
        off = int(rng.integers(0, sr - len(x) + 1))
        clip[off : off + len(x)] = x
        active = clip[off : off + len(x)]
    # gain: peak at a random level
    clip *= 10 ** (rng.uniform(*r.peak_dbfs) / 20) / (np.max(np.abs(clip)) + 1e-12)
    speech_rms = np.sqrt(np.mean(active**2))
    # background noise at a random SNR, and always a faint microphone noise floor
    if noises and rng.random() < r.noise_prob:
        noise = noises[int(rng.integers(len(noises)))]
        s = int(rng.integers(0, len(noise) - sr + 1))
        seg = noise[s : s + sr].astype(np.float64)
        seg_rms = np.sqrt(np.mean(seg**2)) + 1e-12
        snr = rng.uniform(*r.snr_db)
        clip += seg * (speech_rms / seg_rms) * 10 ** (-snr / 20)
    clip += rng.standard_normal(sr) * 10 ** (rng.uniform(*r.floor_dbfs) / 20)
    return np.clip(clip, -1.0, 1.0).astype(np.float32)


def _write_wav(path: Path, samples: np.ndarray, sr: int) -> None:
    """16-bit PCM mono WAV; the bytes depend only on the samples (no timestamps)."""
    pcm = np.clip(np.round(np.asarray(samples, np.float64) * 32767.0), -32768, 32767)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.astype("<i2").tobytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
