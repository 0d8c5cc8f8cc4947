"""FeatureConfig: the contract saved beside every model must round-trip and reject bad input."""

import json

import pytest

from tfkws.errors import TfkwsError
from tfkws.features.config import KINDS, FeatureConfig


def test_default_shape_is_micro_speech():
    config = FeatureConfig()
    assert config.kind == "microfrontend"
    assert config.shape == (49, 40)


@pytest.mark.parametrize("kind", KINDS)
def test_dict_round_trip(kind):
    config = FeatureConfig(kind=kind, window_size_ms=25, window_stride_ms=10, num_mfcc=13)
    back = FeatureConfig.from_dict(config.to_dict())
    assert back == config
    assert json.loads(json.dumps(config.to_dict())) == config.to_dict()


def test_save_load_round_trip(tmp_path):
    config = FeatureConfig(kind="mfcc", num_channels=32, num_mfcc=12, clip_duration_ms=1500)
    path = tmp_path / "sub" / "features.json"
    config.save(path)
    assert FeatureConfig.load(path) == config
    assert FeatureConfig.load(path).shape == (74, 12)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_unknown_key_is_named(tmp_path):
    d = FeatureConfig().to_dict() | {"hop_ms": 10}
    with pytest.raises(TfkwsError, match="hop_ms"):
        FeatureConfig.from_dict(d)
    path = tmp_path / "f.json"
    path.write_text(json.dumps(d))
    with pytest.raises(TfkwsError, match="hop_ms"):
        FeatureConfig.load(path)


def test_bad_kind_is_rejected():
    with pytest.raises(TfkwsError, match="spectrogram"):
        FeatureConfig(kind="spectrogram")
    with pytest.raises(TfkwsError, match="spectrogram"):
        FeatureConfig.from_dict({"kind": "spectrogram"})


def test_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.json"
    with pytest.raises(TfkwsError, match="missing.json"):
        FeatureConfig.load(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(TfkwsError, match="broken.json"):
        FeatureConfig.load(broken)


def test_window_longer_than_clip_is_rejected():
    with pytest.raises(TfkwsError):
        FeatureConfig(clip_duration_ms=20, window_size_ms=30)
