"""espeak-ng ctypes wrapper: real synthesis from the wheel's library, offline."""

import threading

import numpy as np
import pytest

from tfkws.data import espeak
from tfkws.errors import TfkwsError


def test_synthesize_returns_speech():
    x = espeak.synthesize("yes")
    assert x.dtype == np.float32
    assert 0.1 * espeak.SAMPLE_RATE < len(x) < 2 * espeak.SAMPLE_RATE
    assert np.abs(x).max() <= 1.0
    assert np.sqrt(np.mean(x**2)) > 0.01  # not silence


def test_rate_changes_duration():
    slow = espeak.synthesize("seven", rate=100)
    fast = espeak.synthesize("seven", rate=300)
    assert len(slow) > 1.5 * len(fast)


def test_variant_and_pitch_change_the_voice():
    base = espeak.synthesize("left", variant="m1", pitch=50)
    other = espeak.synthesize("left", variant="f3", pitch=50)
    higher = espeak.synthesize("left", variant="m1", pitch=95)

    def f0(x):  # crude pitch: autocorrelation peak in 60-500 Hz of the loudest 40 ms
        i = int(np.argmax(np.convolve(x**2, np.ones(882), "same")))
        seg = x[max(0, i - 441) : i + 441]
        ac = np.correlate(seg, seg, "full")[len(seg) - 1 :]
        lo, hi = espeak.SAMPLE_RATE // 500, espeak.SAMPLE_RATE // 60
        return espeak.SAMPLE_RATE / (lo + int(np.argmax(ac[lo:hi])))

    assert f0(other) > f0(base) * 1.3
    assert f0(higher) > f0(base) * 1.1


def test_list_variants():
    variants = espeak.list_variants()
    assert {"m1", "f1", "klatt", "whisper"} <= set(variants)
    assert "en-us" in espeak.list_voices()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"voice": "xx-nonexistent"},
        {"variant": "nobody"},
        {"rate": 10},
        {"pitch": 101},
        {"pitch_range": -1},
    ],
)
def test_bad_arguments_raise_one_line(kwargs):
    with pytest.raises(TfkwsError) as err:
        espeak.synthesize("yes", **kwargs)
    assert "\n" not in str(err.value)


def test_isolated_synthesis_is_reproducible_and_resampled():
    jobs = [
        {"text": "go", "variant": "f2"},
        {"text": "stop?", "voice": "en-gb-x-rp"},
        {"text": "up", "variant": "whisper", "rate": 140},
    ]
    espeak.synthesize("state left behind by an earlier call")
    a = espeak.synthesize_isolated(jobs, sample_rate=16000)
    b = espeak.synthesize_isolated(jobs, sample_rate=16000)
    assert len(a) == 3
    for x, y in zip(a, b, strict=True):
        assert x.dtype == np.int16
        assert np.array_equal(x, y)
    in_process = espeak.synthesize_many(jobs[:1], sample_rate=espeak.SAMPLE_RATE)[0]
    assert abs(len(a[0]) / 16000 - len(in_process) / espeak.SAMPLE_RATE) < 0.05


def test_isolated_worker_error_is_one_line():
    with pytest.raises(TfkwsError, match="unknown voice variant") as err:
        espeak.synthesize_isolated([{"text": "go", "variant": "nobody"}])
    assert "\n" not in str(err.value)


def test_concurrent_calls_are_serialised():
    results: dict[int, np.ndarray] = {}

    def work(i):
        results[i] = espeak.synthesize("right" if i % 2 else "down", variant="m3")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lengths = [len(results[i]) for i in range(6)]
    # every call got a whole word of its own, not a mixture of several
    assert all(abs(n - lengths[i % 2]) < 0.05 * espeak.SAMPLE_RATE for i, n in enumerate(lengths))


def _crashing_worker(monkeypatch):
    """``subprocess.run`` as the worker sees it, but a worker given a job saying "crash me" dies
    by SIGSEGV after reporting the jobs it started (as espeak-ng 1.51 does on a few Arabic
    voice/variant/pitch combinations); other workers run for real."""
    import json
    import subprocess

    real = subprocess.run

    def run(cmd, input=None, **kwargs):  # noqa: A002 (subprocess.run's own name)
        jobs = json.loads(input)["jobs"]
        texts = [j["text"] for j in jobs]
        if "crash me" in texts:
            started = "".join(f"{i}\n" for i in range(texts.index("crash me") + 1))
            return subprocess.CompletedProcess(cmd, -11, started.encode(), b"")
        return real(cmd, input=input, **kwargs)

    monkeypatch.setattr(espeak.subprocess, "run", run)


def test_isolated_crash_names_the_job(monkeypatch):
    _crashing_worker(monkeypatch)
    jobs = [{"text": "go"}, {"text": "crash me", "variant": "m2", "pitch": 43}, {"text": "up"}]
    with pytest.raises(TfkwsError, match=r"on 'crash me' \(en-us\+m2, pitch 43\): signal 11"):
        espeak.synthesize_isolated(jobs, sample_rate=16000)


def test_isolated_crash_skipped_leaves_the_others_as_without_it(monkeypatch):
    _crashing_worker(monkeypatch)
    jobs = [{"text": "go"}, {"text": "crash me"}, {"text": "up"}, {"text": "crash me"}]
    out = espeak.synthesize_isolated(jobs, sample_rate=16000, skip_crashes=True)
    assert out[1] is None and out[3] is None
    alone = espeak.synthesize_isolated([jobs[0], jobs[2]], sample_rate=16000)
    assert np.array_equal(out[0], alone[0]) and np.array_equal(out[2], alone[1])
