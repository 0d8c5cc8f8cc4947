"""Device vocabulary: kept words stay, the others become _unknown_, bad words are named; keyword
clips can be weighed up (``--keyword_repeat``)."""

import pytest

from tfkws.data.example import UNKNOWN_LABEL, Example
from tfkws.data.kws_dataset import KwsDataset
from tfkws.data.vocabulary import keep_keywords, repeat_keywords
from tfkws.errors import DatasetError


def _ds() -> KwsDataset:
    train = [Example("a.wav", "yes"), Example("b.wav", "zoom"), Example(None, "_silence_")]
    val = [Example("c.wav", "no"), Example("d.wav", "yes")]
    labels = ["_silence_", "no", "yes", "zoom"]
    return KwsDataset("root", labels, {"training": train, "validation": val})


def test_other_words_become_unknown_in_every_split():
    ds = keep_keywords(_ds(), ["yes"])
    assert ds.labels == ["_silence_", "_unknown_", "yes"]
    assert [(e.path, e.label) for e in ds.splits["training"]] == [
        ("a.wav", "yes"),
        ("b.wav", "_unknown_"),
        (None, "_silence_"),
    ]
    assert [e.label for e in ds.splits["validation"]] == ["_unknown_", "yes"]
    assert [e.label for e in _ds().splits["training"]] == ["yes", "zoom", "_silence_"]  # a copy


def test_every_word_kept_changes_only_the_labels_list():
    ds = keep_keywords(_ds(), ["zoom", "no", "yes", "no"])
    assert ds.labels == ["_silence_", "_unknown_", "no", "yes", "zoom"]
    assert ds.splits == _ds().splits


def test_no_silence_label_is_made_up():
    ds = KwsDataset("root", ["no", "yes"], {"training": [Example("a.wav", "yes")]})
    assert keep_keywords(ds, ["yes"]).labels == ["_unknown_", "yes"]


@pytest.mark.parametrize(("words", "named"), [(["yes", "go"], "go"), ([], "empty")])
def test_a_word_without_clips_is_named(words, named):
    with pytest.raises(DatasetError, match=f"root: .*{named}"):
        keep_keywords(_ds(), words)


def test_keyword_repeat_repeats_keyword_training_clips_only():
    train = [Example("a.wav", "yes"), Example("b.wav", UNKNOWN_LABEL), Example(None, "_silence_")]
    val = [Example("c.wav", "yes")]
    ds = KwsDataset(
        "data", ["_silence_", "_unknown_", "yes"], {"training": train, "validation": val}
    )
    out = repeat_keywords(ds, 3)
    assert [e.path for e in out.splits["training"]] == ["a.wav", "b.wav", None, "a.wav", "a.wav"]
    assert out.splits["validation"] == val and out.labels == ds.labels
    assert repeat_keywords(ds, 1) is ds
    with pytest.raises(DatasetError, match="repeats must be >= 1"):
        repeat_keywords(ds, 0)
