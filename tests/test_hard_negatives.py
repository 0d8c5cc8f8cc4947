"""Hard-negative mining: detection times on keyword-free scores and the windows cut for them."""

import numpy as np
import pytest
import soundfile as sf

from tfkws.errors import TfkwsError
from tfkws.streaming.detector import detect, make_config
from tfkws.streaming.hard_negatives import cut_windows, detection_times
from tfkws.streaming.stream_scoring import StreamScores


def test_detection_times_are_the_detectors():
    labels = ["_silence_", "_unknown_", "yes", "no"]
    config = make_config(labels, 0.1, 0, threshold=0.5, window=2, refractory=3)
    rng = np.random.default_rng(0)
    scores = rng.integers(-128, 128, (400, 4)).astype(np.int8)
    scores[::17, 2] = 127  # bursts of "yes"
    scores[1::17, 2] = 127
    times = np.arange(400) * 0.04 + 1.0
    found = detection_times(config, StreamScores(scores, times, 17.0), 0.5)
    expected = [times[d.step] for d in detect(config, scores)]
    assert len(expected) > 5
    assert found.tolist() == expected


def test_cut_windows_are_the_audio_before_each_end(tmp_path):
    rate = 16000
    x = np.random.default_rng(1).integers(-3000, 3000, 5 * rate).astype(np.int16)
    audio = tmp_path / "free.flac"
    sf.write(audio, x, rate, subtype="PCM_16")
    out = cut_windows(audio, [2.5, 0.5, 4.0, 6.0], 1.0, tmp_path / "hard", prefix="h")
    # 0.5 s would start before the audio, 6.0 s ends after it: left out; time order kept
    assert [p.rsplit("/", 1)[1] for p in out] == ["h_00000.wav", "h_00001.wav"]
    for path, end in zip(out, [2.5, 4.0], strict=True):
        y, sr = sf.read(path, dtype="int16")
        assert sr == rate and np.array_equal(y, x[int(end * rate) - rate : int(end * rate)])


def test_cut_windows_bad_audio_is_one_line(tmp_path):
    bad = tmp_path / "broken.flac"
    bad.write_bytes(b"not audio")
    with pytest.raises(TfkwsError, match="broken.flac: cannot read audio") as err:
        cut_windows(bad, [1.0], 1.0, tmp_path / "hard")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "hard").exists()
