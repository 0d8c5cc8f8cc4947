"""benchmarks/keyword_durations.py: speech spans as the streams measure them, misses per clip."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import keyword_durations  # noqa: E402


def _clip(path: Path, speech_s: float) -> None:
    rng = np.random.default_rng(0)
    x = 1e-3 * rng.standard_normal(16000)
    t = np.arange(int(speech_s * 16000)) / 16000
    x[1600 : 1600 + t.size] += 0.3 * np.sin(2 * np.pi * 440 * t)
    sf.write(path, x.astype(np.float32), 16000, subtype="PCM_16")


def test_speech_ms_is_the_span_of_the_word(tmp_path: Path) -> None:
    for speech_s in (0.3, 0.62):
        _clip(tmp_path / "c.wav", speech_s)
        assert abs(keyword_durations.speech_ms(tmp_path / "c.wav") - 1000 * speech_s) <= 20


def test_misses_are_counted_per_clip_over_forms_and_rows(tmp_path: Path) -> None:
    data = tmp_path / "asc"
    (data / "audio" / "go").mkdir(parents=True)
    rows = {"train": [("a", 0.5), ("b", 0.7)], "val": [("c", 0.3), ("d", 0.8)]}
    for split, clips in rows.items():
        lines = ["file,class"]
        for name, s in clips:
            _clip(data / "audio" / "go" / f"{name}.wav", s)
            lines.append(f"audio/go/{name}.wav,go")
        (data / f"{split}.csv").write_text("\n".join(lines) + "\n")

    def at(*names: str) -> dict:
        return {
            "at_target": {"missed": [{"source": str(data / "audio" / "go" / n)} for n in names]}
        }

    stream = tmp_path / "s.json"
    stream.write_text(json.dumps({"forms": {"sliding window": at("c.wav"), "streaming": at()}}))
    gating = tmp_path / "g.json"
    both = at("c.wav", "d.wav") | {"smoothing_ms": 120}
    gating.write_text(json.dumps({"rows": [both, at("d.wav") | {"smoothing_ms": 480}]}))
    res = keyword_durations.measure(data, ["go"], [stream, gating], smoothing_ms=120)
    assert res["measurements"] == ["s: sliding window", "s: streaming", "g: 120 ms"]
    go = res["words"]["go"]
    assert go["train"]["clips"] == 2 and go["val"]["clips"] == 2
    assert [(c["clip"], c["missed_in"]) for c in go["val_clips"]] == [("c.wav", 2), ("d.wav", 1)]
    assert "| c.wav | 300 ms | 2 of 3 |" in keyword_durations.markdown(
        res | {"command": "x", "machine": "y"}
    )
