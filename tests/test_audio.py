"""load_audio: formats, rates, channels, lengths, and one-line errors for bad files."""

import os

import numpy as np
import pytest
import soundfile as sf

from tfkws.data.audio import fit_length, is_audio_file, load_audio, load_noise
from tfkws.errors import AudioError


def tone(freq=440.0, seconds=0.25, rate=16000, amp=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x, rate=16000):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spectrum) * rate / len(x)


def test_int16_wav_matches_written_samples(tmp_path):
    x = tone()
    sf.write(tmp_path / "a.wav", x, 16000, subtype="PCM_16")
    y = load_audio(tmp_path / "a.wav")
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=1.0 / 32768 + 1e-7)


def test_float_wav_is_exact_and_clipped(tmp_path):
    x = tone(amp=0.3)
    x[10] = 1.7
    x[11] = -2.5
    sf.write(tmp_path / "f.wav", x, 16000, subtype="FLOAT")
    y = load_audio(tmp_path / "f.wav")
    assert y[10] == 1.0 and y[11] == -1.0
    np.testing.assert_array_equal(y[12:], x[12:])


def test_stereo_is_averaged(tmp_path):
    left, right = tone(300), tone(900, amp=0.2)
    sf.write(tmp_path / "s.flac", np.stack([left, right], axis=1), 16000, subtype="PCM_24")
    y = load_audio(tmp_path / "s.flac")
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-5)


@pytest.mark.parametrize("rate", [8000, 22050, 44100])
def test_other_rates_are_resampled_to_16k(tmp_path, rate):
    sf.write(tmp_path / "r.flac", tone(1000, seconds=0.5, rate=rate), rate)
    y = load_audio(tmp_path / "r.flac")
    assert abs(len(y) - 8000) <= 1
    assert abs(peak_hz(y) - 1000) < 40


def test_num_samples_pads_and_trims(tmp_path):
    x = tone(seconds=0.25)
    sf.write(tmp_path / "a.wav", x, 16000, subtype="FLOAT")
    padded = load_audio(tmp_path / "a.wav", num_samples=6000)
    assert padded.shape == (6000,)
    np.testing.assert_array_equal(padded[:4000], x)
    assert not padded[4000:].any()
    trimmed = load_audio(tmp_path / "a.wav", num_samples=1000)
    np.testing.assert_array_equal(trimmed, x[:1000])
    with pytest.raises(ValueError):
        fit_length(x, 0)


def _bad_files(tmp_path):
    sf.write(tmp_path / "good.flac", tone(), 16000)
    flac = (tmp_path / "good.flac").read_bytes()
    sf.write(tmp_path / "good.wav", tone(), 16000)
    wav = (tmp_path / "good.wav").read_bytes()
    rng = np.random.default_rng(0)
    files = {
        "truncated.flac": flac[: len(flac) // 2],
        "header_only.flac": flac[:30],
        "garbage.wav": rng.integers(0, 256, 3000, dtype=np.uint8).tobytes(),
        "no_samples.wav": wav[:44],
        "empty.wav": b"",
        "text.flac": b"this is not audio\n" * 20,
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return sorted(files)


def test_bad_files_raise_one_line_audio_error_naming_the_file(tmp_path):
    for name in _bad_files(tmp_path):
        path = tmp_path / name
        with pytest.raises(AudioError) as info:
            load_audio(path)
        message = str(info.value)
        assert message.startswith(f"{path}: cannot read audio (")
        assert "\n" not in message


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(AudioError, match="file not found"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="is a folder"):
        load_audio(tmp_path)


def test_non_finite_samples_are_rejected(tmp_path):
    x = tone()
    x[5] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(tmp_path / "nan.wav")


def test_load_noise_skips_bad_files_and_tiles_short_ones(tmp_path):
    sf.write(tmp_path / "short.wav", tone(seconds=0.1), 16000)
    (tmp_path / "bad.wav").write_bytes(b"junk")
    clips = load_noise([str(tmp_path / "short.wav"), str(tmp_path / "bad.wav")], min_samples=4000)
    assert len(clips) == 1 and clips[0].shape[0] >= 4000
    np.testing.assert_array_equal(clips[0][1600:3200], clips[0][:1600])


def test_is_audio_file(tmp_path):
    for name in ("a.wav", "b.FLAC", "c.txt", ".hidden.wav"):
        (tmp_path / name).write_bytes(b"x")
    found = sorted(n for n in os.listdir(tmp_path) if is_audio_file(tmp_path / n))
    assert found == ["a.wav", "b.FLAC"]


@pytest.mark.shared_data
def test_real_flac_from_shared_data(shared_data):
    folder = shared_data / "speech_commands_test_dev" / "yes"
    path = sorted(folder.iterdir())[0]
    y = load_audio(path, num_samples=16000)
    assert y.shape == (16000,) and y.dtype == np.float32
    assert 0 < np.abs(y).max() <= 1.0
    noise = load_audio(shared_data / "speech_commands_noise" / "white_noise.flac")
    assert noise.shape[0] >= 60 * 16000
