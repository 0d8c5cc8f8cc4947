"""Speech Commands layout: hash split, split lists, 12-class mapping, errors."""

import hashlib
import math
from collections import Counter

import pytest

from tfkws.data.dataset import open_dataset
from tfkws.data.example import SILENCE_LABEL, UNKNOWN_LABEL, Example
from tfkws.data.kws_dataset import DEFAULT_KEYWORDS
from tfkws.data.speech_commands import speaker_id, which_set
from tfkws.errors import DatasetError

SPEAKERS = [f"{i:08x}" for i in range(0x1A2B3C00, 0x1A2B3C00 + 60)]


def make_folder(root, words, speakers=SPEAKERS, per_speaker=1, ext=".wav", noise=True):
    """A Speech Commands-shaped tree; open_dataset only lists files, so contents are dummies."""
    for word in words:
        (root / word).mkdir(parents=True, exist_ok=True)
        for s in speakers:
            for n in range(per_speaker):
                (root / word / f"{s}_nohash_{n}{ext}").write_bytes(b"RIFF")
    if noise:
        (root / "_background_noise_").mkdir(exist_ok=True)
        (root / "_background_noise_" / "pink.wav").write_bytes(b"RIFF")
        (root / "_background_noise_" / "README.md").write_text("not audio")
    return root


def reference_which_set(filename, val, test):
    """TF speech_commands/input_data.which_set, verbatim logic (for names without a prefix)."""
    import os
    import re

    hash_name = re.sub(r"_nohash_.*$", "", os.path.basename(filename))
    h = int(hashlib.sha1(hash_name.encode()).hexdigest(), 16)
    pct = (h % (2**27)) * (100.0 / (2**27 - 1))
    return "validation" if pct < val else "testing" if pct < val + test else "training"


def test_which_set_matches_tensorflow_reference():
    names = [f"{s}_nohash_{n}.wav" for s in SPEAKERS for n in range(2)] + ["123.wav", "x.flac"]
    for name in names:
        assert which_set(name, 10, 10) == reference_which_set(name, 10, 10)
        assert which_set(name, 30, 30) == reference_which_set(name, 30, 30)
    splits = Counter(which_set(n, 30, 30) for n in names)
    assert set(splits) == {"training", "validation", "testing"}


def test_speaker_id_ignores_word_prefix_and_take_number():
    assert speaker_id("right/0a7c2a8d_nohash_3.wav") == "0a7c2a8d"
    assert speaker_id("_unknown_/backward_0a7c2a8d_nohash_0.flac") == "0a7c2a8d"
    assert which_set("backward_0a7c2a8d_nohash_0.flac", 10, 10) == which_set(
        "0a7c2a8d_nohash_4.wav", 10, 10
    )


def test_hash_split_keeps_speakers_together(tmp_path):
    make_folder(tmp_path, ["yes", "no"], per_speaker=2)
    ds = open_dataset(tmp_path, mode="all", validation_percentage=20, testing_percentage=20)
    split_of_speaker = {}
    for split, examples in ds.splits.items():
        for e in examples:
            assert split_of_speaker.setdefault(speaker_id(e.path), split) == split
    assert set(ds.splits) == {"training", "validation", "testing"}
    assert ds.labels == ["no", "yes"]
    assert len(ds.split("all")) == 2 * 2 * len(SPEAKERS)
    assert ds.noise_files == [str(tmp_path / "_background_noise_" / "pink.wav")]


def test_split_lists_are_used_and_match_other_extensions(tmp_path):
    make_folder(tmp_path, ["yes", "no"], speakers=SPEAKERS[:4], ext=".flac")
    (tmp_path / "validation_list.txt").write_text(
        f"yes/{SPEAKERS[0]}_nohash_0.wav\nno/{SPEAKERS[1]}_nohash_0.wav\nno/gone_nohash_0.wav\n"
    )
    (tmp_path / "testing_list.txt").write_text(f"yes/{SPEAKERS[2]}_nohash_0.wav\n\n")
    ds = open_dataset(tmp_path, mode="all")
    cut = len(str(tmp_path)) + 1
    as_rel = {s: sorted(e.path[cut:] for e in ex) for s, ex in ds.splits.items()}
    assert as_rel["validation"] == [
        f"no/{SPEAKERS[1]}_nohash_0.flac",
        f"yes/{SPEAKERS[0]}_nohash_0.flac",
    ]
    assert as_rel["testing"] == [f"yes/{SPEAKERS[2]}_nohash_0.flac"]
    assert len(as_rel["training"]) == 8 - 3


def test_12class_mapping_caps_unknown_and_adds_silence(tmp_path):
    make_folder(tmp_path, ["yes", "no", "cat", "dog", "bird"], per_speaker=2)
    ds = open_dataset(
        tmp_path, keywords=["yes", "no"], unknown_percentage=25, silence_percentage=15, seed=3
    )
    assert ds.labels == [SILENCE_LABEL, UNKNOWN_LABEL, "yes", "no"]
    for split, examples in ds.splits.items():
        counts = Counter(e.label for e in examples)
        known = counts["yes"] + counts["no"]
        assert counts[SILENCE_LABEL] == math.ceil(known * 15 / 100)
        assert all(e.path is None for e in examples if e.label == SILENCE_LABEL)
        pool = 3 * known // 2  # three other words per two keywords, same speakers
        if split == "testing":
            assert counts[UNKNOWN_LABEL] == pool
        else:
            assert counts[UNKNOWN_LABEL] == min(pool, math.ceil(known * 25 / 100))
        unknown_words = {e.path.split("/")[-2] for e in examples if e.label == UNKNOWN_LABEL}
        assert unknown_words <= {"cat", "dog", "bird"}
    # deterministic for a seed; another seed picks other unknowns
    again = open_dataset(
        tmp_path, keywords=["yes", "no"], unknown_percentage=25, silence_percentage=15, seed=3
    )
    assert again.splits == ds.splits
    other = open_dataset(
        tmp_path, keywords=["yes", "no"], unknown_percentage=25, silence_percentage=15, seed=4
    )
    assert other.split("training") != ds.split("training")


def test_explicit_silence_and_unknown_folders_are_kept_as_is(tmp_path):
    make_folder(tmp_path, ["yes", "no", "_unknown_", "_silence_"], noise=False)
    ds = open_dataset(tmp_path, validation_percentage=0, testing_percentage=0, unknown_percentage=1)
    train = ds.split("training")
    counts = Counter(e.label for e in train)
    assert counts[UNKNOWN_LABEL] == len(SPEAKERS)  # not capped
    assert counts[SILENCE_LABEL] == len(SPEAKERS)  # from the folder, none generated
    assert all(e.path is not None for e in train)
    assert ds.noise_files == []


def test_labels_from_a_model(tmp_path):
    make_folder(tmp_path, ["yes", "no"], speakers=SPEAKERS[:3])
    ds = open_dataset(tmp_path, mode="all", labels=["yes", "no", "maybe"])
    assert ds.labels == ["yes", "no", "maybe"]
    assert ds.label_index["maybe"] == 2
    with pytest.raises(DatasetError, match=r"labels absent from the model: no") as info:
        open_dataset(tmp_path, mode="all", labels=["yes"])
    assert str(tmp_path) in str(info.value)


def test_split_access_errors(tmp_path):
    make_folder(tmp_path, ["yes"], speakers=SPEAKERS[:2])
    ds = open_dataset(tmp_path, mode="all", validation_percentage=0, testing_percentage=0)
    assert len(ds.split("training")) == 2
    with pytest.raises(DatasetError, match="split 'validation' is empty"):
        ds.split("validation")
    with pytest.raises(DatasetError, match="unknown split 'train'"):
        ds.split("train")
    assert ds.class_counts() == {"yes": 2}
    assert ds.has_split("training") and ds.has_split("all") and not ds.has_split("testing")
    assert "training: 2 examples" in ds.summary()


def test_missing_empty_and_bad_mode(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        open_dataset(tmp_path / "nope")
    (tmp_path / "empty" / "yes").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no audio files"):
        open_dataset(tmp_path / "empty")
    make_folder(tmp_path / "ok", ["yes"], speakers=SPEAKERS[:1])
    with pytest.raises(DatasetError, match="unknown dataset mode"):
        open_dataset(tmp_path / "ok", mode="35class")
    with pytest.raises(DatasetError, match="keywords must be distinct"):
        open_dataset(tmp_path / "ok", keywords=["yes", "yes"])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="not a dataset"):
        open_dataset(tmp_path / "notes.txt")


def test_noise_dir_adds_noise_files(tmp_path):
    make_folder(tmp_path / "ds", ["yes"], speakers=SPEAKERS[:1])
    (tmp_path / "noise").mkdir()
    (tmp_path / "noise" / "hum.flac").write_bytes(b"fLaC")
    ds = open_dataset(tmp_path / "ds", noise_dir=tmp_path / "noise")
    assert sorted(n.rsplit("/", 1)[-1] for n in ds.noise_files) == ["hum.flac", "pink.wav"]
    with pytest.raises(DatasetError, match="noise folder not found"):
        open_dataset(tmp_path / "ds", noise_dir=tmp_path / "none")


def test_example_is_frozen():
    e = Example(None, SILENCE_LABEL)
    assert e.is_generated_silence
    with pytest.raises(AttributeError):
        e.label = "x"


@pytest.mark.shared_data
def test_shared_test_dev_set(shared_data):
    root = shared_data / "speech_commands_test_dev"
    ds = open_dataset(root, noise_dir=shared_data / "speech_commands_noise")
    assert ds.labels == [SILENCE_LABEL, UNKNOWN_LABEL, *DEFAULT_KEYWORDS]
    folder_counts = {d.name: len(list(d.iterdir())) for d in root.iterdir() if d.is_dir()}
    assert ds.class_counts("all") == {label: folder_counts[label] for label in ds.labels}
    # these are canonical test-set speakers: the canonical hash puts every keyword in testing
    assert all(
        e.label in (SILENCE_LABEL,)
        for s in ("training", "validation")
        for e in ds.splits.get(s, [])
    )
    assert len(ds.noise_files) == 6
