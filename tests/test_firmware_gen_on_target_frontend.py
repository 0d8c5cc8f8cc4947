"""Feature parity on the device: TFLM's micro frontend for Cortex-M4 in QEMU vs tfkws features.

Needs the arm toolchain, QEMU, a TFLM tree and kissfft's implementation files (kiss_fft.c,
_kiss_fft_guts.h, tools/kiss_fftr.c) in the tree's third_party/kissfft or $KISSFFT_ROOT.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firmware_gen import FirmwareGenError
from firmware_gen.frontend import KISSFFT_FILES, kissfft_root
from firmware_gen.toolchain import available, default_tflm_root

TFLM = default_tflm_root()


def _kissfft_problem() -> str | None:
    if TFLM is None:
        return "no TFLM source tree (set TFLM_ROOT or provide ../shared/tflm)"
    try:
        kissfft_root(TFLM)
    except FirmwareGenError as e:
        return str(e)
    return None


REASON = available() or _kissfft_problem()


def test_missing_kissfft_sources_are_named(tmp_path):
    (tmp_path / "kiss_fft.h").write_text("/* headers only */\n")
    with pytest.raises(FirmwareGenError) as e:
        kissfft_root(tmp_path, tmp_path)
    msg = str(e.value)
    assert all(f in msg for f in KISSFFT_FILES) and "KISSFFT_ROOT" in msg


@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_device_features_match_the_training_features(shared_data: Path):
    from tfkws.verification.frontend_parity import frontend_parity

    sc = shared_data / "speech_commands_test_dev"
    clips = [
        sorted((sc / "yes").glob("*.flac"))[0],
        sorted((sc / "left").glob("*.flac"))[1],
        sorted((sc / "_silence_").glob("*.flac"))[0],
        sorted((shared_data / "arabic_speech_commands").rglob("*.flac"))[0],
    ]
    r = frontend_parity(clips, TFLM)
    assert r["clips"] == 4 and r["shape"] == [49, 40]
    # The Cortex-M4 build changes nothing: it equals the same sources built for the host ...
    assert r["device_equals_host_build_of_same_sources"]
    # ... and against the training features (TensorFlow's own frontend and kissfft copies) the
    # rare differences are reported value by value (measured: 18-23 of 7,840, at most 19 units).
    assert r["identical"] or 0 < r["differing_values"] <= 0.01 * r["values"], r["per_clip"]
    assert r["instructions_per_clip"]["min"] > 100_000


def _noise_and_tone(seeds: range, seconds: float = 3.0, rate: int = 16000) -> np.ndarray:
    """Seeded white noise (0.05 of full scale) + a 900 Hz tone (0.17): int16 [clips, samples]."""
    t = np.arange(int(seconds * rate)) / rate
    clips = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        a = 0.05 * rng.standard_normal(t.size) + 0.17 * np.sin(2 * np.pi * 900 * t)
        clips.append(np.clip(np.round(a * 32767), -32768, 32767).astype(np.int16))
    return np.stack(clips)


@pytest.mark.skipif(REASON is not None, reason=REASON or "")
@pytest.mark.parametrize("cpu", ["m4", "m55"])
def test_device_frontend_equals_the_host_build_bit_for_bit(cpu: str):
    """`tfkws detect --frontend tflm` (host build) must compute the device's features exactly.

    With GCC's default FP contraction the Cortex-M builds fused multiply-adds in the float setup
    of the filterbank weights (one weight 1 LSB off): 1 raw value of clips 1 and 2 differed under
    the default features (PCAN, noise reduction, log), ~40 per clip in the linear config below.
    """
    from firmware_gen.frontend import run_frontend, run_frontend_host
    from tfkws.features.config import FeatureConfig

    clips = _noise_and_tone(range(4))
    default = FeatureConfig().to_dict()
    linear = {**default, "enable_pcan": False, "min_signal_remaining": 1.0, "enable_log": False}
    for settings in (default, linear):
        host = run_frontend_host(clips, settings, TFLM)
        dev = run_frontend(clips, settings, TFLM, cpu=cpu, count=False).features
        assert host.shape == dev.shape == (4, 149, 40)
        diff = np.argwhere(host != dev)
        assert len(diff) == 0, (
            f"{len(diff)} values differ, first [clip, frame, channel]: {diff[:5]}"
        )
