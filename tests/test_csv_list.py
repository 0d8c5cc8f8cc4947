"""CSV layout: file,class lists per split, structural errors, missing files."""

import logging
from pathlib import Path

import pytest

from tfkws.data.csv_list import find_csv_splits, read_csv_list, split_name
from tfkws.data.dataset import open_dataset
from tfkws.errors import DatasetError


def touch(root, rel):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"fLaC")
    return rel


def write_csv(path, rows, header="file,class"):
    path.write_text("\n".join([header, *(f"{f},{c}" for f, c in rows)]) + "\n")
    return path


def make_csv_folder(root, names=("train", "val", "test")):
    files = {}
    for i, name in enumerate(names):
        rows = [
            (touch(root, f"audio/{w}/{name}_{j}.flac"), w)
            for w in ("open", "close", "zoom")
            for j in range(i + 1)
        ]
        files[name] = write_csv(root / f"{name}.csv", rows)
    return files


def test_folder_with_train_val_test(tmp_path):
    make_csv_folder(tmp_path)
    ds = open_dataset(tmp_path)
    assert ds.labels == ["close", "open", "zoom"]
    assert {s: len(e) for s, e in ds.splits.items()} == {
        "training": 3,
        "validation": 6,
        "testing": 9,
    }
    assert all(e.path.startswith(str(tmp_path / "audio")) for e in ds.split("all"))
    assert ds.noise_files == []


def test_long_split_names_and_noise_folder(tmp_path):
    make_csv_folder(tmp_path, names=("train", "validation", "testing"))
    touch(tmp_path, "_background_noise_/hum.wav")
    found = find_csv_splits(tmp_path)
    assert {s: p.name for s, p in found.items()} == {
        "training": "train.csv",
        "validation": "validation.csv",
        "testing": "testing.csv",
    }
    ds = open_dataset(tmp_path)
    assert set(ds.splits) == {"training", "validation", "testing"}
    assert [p.rsplit("/", 1)[-1] for p in ds.noise_files] == ["hum.wav"]


def test_single_csv_is_one_split_named_from_file(tmp_path):
    files = make_csv_folder(tmp_path)
    ds = open_dataset(files["val"])
    assert list(ds.splits) == ["validation"] and len(ds.split("all")) == 6
    assert split_name("my_list.csv") == "training" and split_name("Test.csv") == "testing"


def test_column_order_and_blank_lines_are_tolerated(tmp_path):
    touch(tmp_path, "a.flac")
    (tmp_path / "list.csv").write_text("\ufeffClass , File\n\nyes,a.flac\n\n")
    assert [(e.label, e.path) for e in read_csv_list(tmp_path / "list.csv")] == [
        ("yes", str(tmp_path / "a.flac"))
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("file,class,speaker\na.flac,yes,1\n", "unknown column"),
        ("path,label\na.flac,yes\n", "missing column"),
        ("file\na.flac\n", "missing column"),
        ("", "empty CSV"),
        ("\n\n", "empty CSV"),
        ("file,class\n", "header but no rows"),
        ("file,class\n,yes\n", ":2: missing file path"),
        ("file,class\na.flac,\n", ":2: missing class"),
        ("file,class\na.flac,yes,extra\n", ":2: expected 2 fields"),
    ],
)
def test_bad_csv_structure_names_the_csv(tmp_path, text, message):
    touch(tmp_path, "a.flac")
    (tmp_path / "train.csv").write_text(text)
    with pytest.raises(DatasetError, match=message) as info:
        open_dataset(tmp_path)
    assert str(tmp_path / "train.csv") in str(info.value)


def test_missing_audio_file_is_skipped_with_warning(tmp_path, caplog):
    touch(tmp_path, "a.flac")
    write_csv(tmp_path / "train.csv", [("a.flac", "yes"), ("gone.flac", "no")])
    with caplog.at_level(logging.WARNING):
        ds = open_dataset(tmp_path)
    assert [e.label for e in ds.split("training")] == ["yes"]
    assert "gone.flac" in caplog.text
    assert ds.labels == ["yes"]
    write_csv(tmp_path / "val.csv", [("gone.flac", "no")])
    with pytest.raises(DatasetError, match="none of the 1 listed audio files exist"):
        open_dataset(tmp_path)


def test_labels_given_must_cover_csv_classes(tmp_path):
    make_csv_folder(tmp_path)
    ds = open_dataset(tmp_path, labels=["zoom", "open", "close", "extra"])
    assert ds.labels == ["zoom", "open", "close", "extra"]
    with pytest.raises(DatasetError, match="labels absent from the model: zoom"):
        open_dataset(tmp_path, labels=["open", "close"])


def test_a_vocabulary_model_reads_the_other_words_as_unknown(tmp_path):
    """A model trained on a few of the words (``tfkws.data.vocabulary``) reopens its dataset."""
    make_csv_folder(tmp_path)
    labels = ["_silence_", "_unknown_", "open"]
    ds = open_dataset(tmp_path, labels=labels)
    assert ds.labels == labels
    got = [(Path(e.path).parent.name, e.label) for e in ds.split("validation")]
    unknown = [("close", "_unknown_")] * 2 + [("zoom", "_unknown_")] * 2
    assert got == [("open", "open")] * 2 + unknown
    with pytest.raises(DatasetError, match="labels absent from the model: close, zoom"):
        open_dataset(tmp_path, labels=["_silence_", "open"])  # no _unknown_: still an error


@pytest.mark.shared_data
def test_arabic_speech_commands_lists(shared_data):
    from tfkws.data.audio import load_audio

    root = shared_data / "arabic_speech_commands"
    ds = open_dataset(root)
    assert len(ds.labels) == 40 and ds.labels == sorted(ds.labels)
    assert len(ds.split("training")) == 7200 and len(ds.split("validation")) == 2400
    train_speakers = {e.path.rsplit("/", 1)[-1].split("_")[0] for e in ds.split("training")}
    val_speakers = {e.path.rsplit("/", 1)[-1].split("_")[0] for e in ds.split("validation")}
    assert not train_speakers & val_speakers
    clip = load_audio(ds.split("validation")[0].path, num_samples=16000)
    assert clip.shape == (16000,)
    single = open_dataset(root / "val.csv")
    assert list(single.splits) == ["validation"]
