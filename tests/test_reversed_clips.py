"""Reversed keyword clips as `_unknown_`: exact reversal, seeded choice, reuse, bad input."""

import numpy as np
import pytest
import soundfile as sf

from tfkws.data.example import Example
from tfkws.data.reversed_clips import SOURCES, pick_keyword_clips, write_reversed
from tfkws.errors import AudioError

RATE = 16000


def _clip(path, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).integers(-8000, 8000, RATE).astype(np.int16)
    sf.write(path, x, RATE, subtype="PCM_16")
    return x


def test_clips_are_reversed_sample_for_sample(tmp_path):
    a = _clip(tmp_path / "a.wav", 0)
    b = _clip(tmp_path / "b.flac", 1)
    out = write_reversed([tmp_path / "a.wav", tmp_path / "b.flac"], tmp_path / "rev")
    assert [p.rsplit("/", 1)[1] for p in out] == ["rev_00000.wav", "rev_00001.wav"]
    for path, x in zip(out, [a, b], strict=True):
        y, sr = sf.read(path, dtype="int16")
        assert sr == RATE and np.array_equal(y, x[::-1])


def test_folder_is_reused_only_for_the_same_sources(tmp_path):
    _clip(tmp_path / "a.wav", 0)
    b = _clip(tmp_path / "b.wav", 1)
    first = write_reversed([tmp_path / "a.wav"], tmp_path / "rev")
    stamp = (tmp_path / "rev" / "rev_00000.wav").stat().st_mtime_ns
    assert write_reversed([tmp_path / "a.wav"], tmp_path / "rev") == first
    assert (tmp_path / "rev" / "rev_00000.wav").stat().st_mtime_ns == stamp  # not rewritten
    write_reversed([tmp_path / "b.wav"], tmp_path / "rev")  # other sources: made again
    y, _ = sf.read(first[0], dtype="int16")
    assert np.array_equal(y, b[::-1])
    assert (tmp_path / "rev" / SOURCES).read_text() == f"{tmp_path / 'b.wav'}\n"


def test_pick_takes_keywords_only_seeded():
    examples = [Example(f"k{i}.wav", "yes") for i in range(20)]
    examples += [Example("u.wav", "_unknown_"), Example(None, "_silence_")]
    picked = pick_keyword_clips(examples, 5, seed=3)
    assert len(picked) == 5 and len(set(picked)) == 5
    assert all(p.startswith("k") for p in picked)
    assert pick_keyword_clips(examples, 5, seed=3) == picked
    assert pick_keyword_clips(examples, 5, seed=4) != picked
    assert sorted(pick_keyword_clips(examples, 100, seed=3)) == sorted(
        f"k{i}.wav" for i in range(20)
    )


def test_bad_clip_is_one_line_and_leaves_nothing(tmp_path):
    _clip(tmp_path / "a.wav", 0)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really audio")
    with pytest.raises(AudioError) as e:
        write_reversed([tmp_path / "a.wav", bad], tmp_path / "rev")
    assert str(bad) in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "rev").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".rev")] == []
