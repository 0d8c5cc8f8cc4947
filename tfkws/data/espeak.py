"""Speech synthesis with espeak-ng through ctypes, offline, from the ``espeakng-loader`` wheel.

The wheel ships ``libespeak-ng`` and its data folder, so a fresh machine can synthesise keyword
clips without a system install or a download. espeak-ng keeps global state (current voice,
parameters, callback), so every call goes through one process-wide lock.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging
from scipy.signal import firwin, resample_poly

from tfkws.data.audio import to_int16
from tfkws.errors import TfkwsError

SAMPLE_RATE = 22050
"""espeak-ng's output rate (fixed by the engine)."""

# espeak_AUDIO_OUTPUT / espeak_PARAMETER / flags from speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)

_lock = threading.Lock()
_state: dict = {}


def _data_path() -> Path:
    try:
        import espeakng_loader
    except ImportError as e:  # pragma: no cover - the wheel is a dependency
        raise TfkwsError("espeak-ng: the 'espeakng-loader' package is not installed") from e
    return Path(espeakng_loader.get_data_path())


def _library() -> ctypes.CDLL:
    """Load and initialise libespeak-ng once (caller holds the lock)."""
    if "lib" in _state:
        return _state["lib"]
    import espeakng_loader

    lib_path = espeakng_loader.get_library_path()
    try:
        lib = ctypes.CDLL(lib_path)
    except OSError as e:
        raise TfkwsError(f"{lib_path}: cannot load espeak-ng library ({e})") from e
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.argtypes = []
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = None
    libc = ctypes.CDLL(None)
    libc.srand.argtypes = [ctypes.c_uint]
    libc.srand.restype = None

    data = _data_path()
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data).encode(), 0)
    if rate != SAMPLE_RATE:
        raise TfkwsError(f"{data}: espeak-ng failed to initialise (returned {rate})")

    chunks: list[np.ndarray] = []

    def _on_audio(wav, n, _events) -> int:
        if n > 0 and wav:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    callback = _SYNTH_CALLBACK(_on_audio)  # kept referenced in _state: C holds the pointer
    lib.espeak_SetSynthCallback(callback)
    _state.update(lib=lib, libc=libc, callback=callback, chunks=chunks, voice=None)
    return lib


@lru_cache(maxsize=8)
def _resample_filter(up: int, down: int) -> np.ndarray:
    # scipy's default resample_poly filter, designed once instead of on every call
    max_rate = max(up, down)
    return firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling (same result as ``scipy.signal.resample_poly``, cached filter)."""
    if rate_in == rate_out:
        return x
    g = math.gcd(rate_in, rate_out)
    up, down = rate_out // g, rate_in // g
    return resample_poly(x, up, down, window=_resample_filter(up, down)).astype(x.dtype)


@lru_cache(maxsize=1)
def list_variants() -> tuple[str, ...]:
    """Names of the voice variants shipped in the wheel (``voices/!v``), usable as ``+variant``."""
    folder = _data_path() / "voices" / "!v"
    return tuple(sorted(p.name for p in folder.iterdir() if p.is_file()))


@lru_cache(maxsize=1)
def list_voices() -> tuple[str, ...]:
    """Language voice files shipped in the wheel (e.g. ``gmw/en-US``), lower-cased base names."""
    folder = _data_path() / "lang"
    return tuple(sorted(p.name.lower() for p in folder.rglob("*") if p.is_file()))


def synthesize(
    text: str,
    voice: str = "en-us",
    variant: str | None = None,
    rate: int = 175,
    pitch: int = 50,
    pitch_range: int = 50,
) -> np.ndarray:
    """Speak ``text`` and return float32 samples in [-1, 1] at 22,050 Hz (:data:`SAMPLE_RATE`).

    ``voice`` is an espeak-ng voice name (``en-us``, ``en-gb-x-rp``...), ``variant`` a name from
    :func:`list_variants` (``m3``, ``f2``, ``klatt``...). ``rate`` is words per minute (80-450),
    ``pitch`` and ``pitch_range`` are 0-100.
    """
    name = voice if not variant else f"{voice}+{variant}"
    if variant and variant not in list_variants():
        raise TfkwsError(f"espeak-ng: unknown voice variant '{variant}'")
    if not 80 <= rate <= 450:
        raise TfkwsError(f"espeak-ng: rate {rate} outside 80-450 words per minute")
    for label, value in (("pitch", pitch), ("pitch_range", pitch_range)):
        if not 0 <= value <= 100:
            raise TfkwsError(f"espeak-ng: {label} {value} outside 0-100")
    encoded = text.encode("utf-8") + b"\0"
    with _lock:
        lib = _library()
        if _state["voice"] != name:
            if lib.espeak_SetVoiceByName(name.encode()) != _EE_OK:
                raise TfkwsError(f"espeak-ng: unknown voice '{name}'")
            _state["voice"] = name
        # Setting a voice resets parameters, so set them for every call.
        lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
        lib.espeak_SetParameter(_PARAM_VOLUME, 100, 0)
        lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        lib.espeak_SetParameter(_PARAM_RANGE, int(pitch_range), 0)
        chunks: list[np.ndarray] = _state["chunks"]
        chunks.clear()
        # Breath/whisper noise comes from espeak's own generator and from libc rand(), both
        # seeded from the clock at start-up: fix them so the same call gives the same noise.
        lib.espeak_ng_SetRandSeed(0)
        _state["libc"].srand(0)
        buf = ctypes.create_string_buffer(encoded, len(encoded))
        err = lib.espeak_Synth(buf, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != _EE_OK:
            raise TfkwsError(f"espeak-ng: synthesis of {text!r} failed (error {err})")
        lib.espeak_Synchronize()
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        chunks.clear()
    return samples.astype(np.float32) / 32768.0


def synthesize_many(
    jobs: Sequence[Mapping[str, Any]],
    sample_rate: int = SAMPLE_RATE,
    on_start: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """Synthesise each job (keyword arguments of :func:`synthesize`) in this process, in order.

    Returns int16 arrays resampled to ``sample_rate``. espeak-ng carries state from one
    utterance to the next (waveform phase, pitch flutter), so the output of a job depends on the
    jobs before it in the same process: use :func:`synthesize_isolated` for reproducible output.
    ``on_start(i)`` is called before job ``i`` is spoken (the worker reports it, so a crash
    names its job).
    """
    # Changing voice reloads voice files and dictionaries: group jobs by voice (stable order).
    order = sorted(
        range(len(jobs)),
        key=lambda i: (jobs[i].get("voice", "en-us"), jobs[i].get("variant") or ""),
    )
    out: list[np.ndarray] = [np.zeros(0, np.int16)] * len(jobs)
    for i in order:
        if on_start is not None:
            on_start(i)
        x = synthesize(**jobs[i])
        if sample_rate != SAMPLE_RATE:
            x = resample(x, SAMPLE_RATE, sample_rate)
        out[i] = to_int16(x)
    return out


def synthesize_isolated(
    jobs: Sequence[Mapping[str, Any]],
    sample_rate: int = SAMPLE_RATE,
    skip_crashes: bool = False,
) -> list[np.ndarray | None]:
    """Like :func:`synthesize_many`, but in a fresh Python process, so the result is reproducible.

    A new process starts espeak-ng from the same state every time, so the same job list gives
    byte-identical audio whatever this process synthesised before.

    espeak-ng 1.51 crashes (segfault) on a few voice/variant/pitch combinations (e.g. the Arabic
    voice with some variants and wide pitch ranges). By default that is an error naming the job;
    with ``skip_crashes`` such a job gives ``None`` and the others are spoken as if it were not
    in the list (still reproducible: the same jobs crash every time).
    """
    out: list[np.ndarray | None] = [None] * len(jobs)
    todo = list(range(len(jobs)))
    while todo:
        code, started, clips = _run_worker([jobs[i] for i in todo], sample_rate)
        if code is None:
            for i, x in zip(todo, clips, strict=True):
                out[i] = x
            return out
        j = jobs[todo[started]] if started is not None else None
        if j is None or not skip_crashes:
            what = f" on {_describe(j)}" if j is not None else ""
            raise TfkwsError(f"espeak-ng worker failed{what}: {code}")
        logging.warning("espeak-ng crashed on %s: that utterance is left out", _describe(j))
        del todo[started]
    return out


def _describe(job: Mapping[str, Any]) -> str:
    voice = job.get("voice", "en-us") + (f"+{job['variant']}" if job.get("variant") else "")
    extra = ", ".join(f"{k} {job[k]}" for k in ("rate", "pitch", "pitch_range") if k in job)
    return f"{job.get('text')!r} ({voice}{', ' + extra if extra else ''})"


def _run_worker(
    jobs: Sequence[Mapping[str, Any]], sample_rate: int
) -> tuple[str | None, int | None, list[np.ndarray]]:
    """One worker process: (None, None, clips), or on failure (the error, the index of the job
    it was speaking or None, [])."""
    with tempfile.TemporaryDirectory(prefix="tfkws-espeak-") as tmp:
        out_path = Path(tmp) / "audio.npz"
        request = json.dumps(
            {"jobs": [dict(j) for j in jobs], "sample_rate": sample_rate, "out": str(out_path)}
        )
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        proc = subprocess.run(
            [sys.executable, "-m", "tfkws.data.espeak"],
            input=request.encode(),
            capture_output=True,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            lines = proc.stderr.decode(errors="replace").strip().splitlines()
            started = proc.stdout.decode(errors="replace").split()
            crashed = proc.returncode < 0  # killed by a signal: inside libespeak-ng
            error = f"signal {-proc.returncode}" if crashed else (lines or ["no output"])[-1]
            return error, int(started[-1]) if crashed and started else None, []
        with np.load(out_path) as z:
            data, lengths = z["data"], z["lengths"]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return None, None, [data[a:b].copy() for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _worker() -> int:
    """Entry point of :func:`synthesize_isolated`: JSON request on stdin, npz file out."""
    request = json.loads(sys.stdin.buffer.read())
    try:
        clips = synthesize_many(
            request["jobs"],
            int(request["sample_rate"]),
            on_start=lambda i: print(i, flush=True),  # the parent names the job of a crash
        )
    except TfkwsError as e:
        print(e, file=sys.stderr)
        return 2
    lengths = np.array([len(c) for c in clips], dtype=np.int64)
    data = np.concatenate(clips) if clips else np.zeros(0, np.int16)
    with open(request["out"], "wb") as f:
        np.savez(f, data=data, lengths=lengths)
    return 0


if __name__ == "__main__":
    sys.exit(_worker())
