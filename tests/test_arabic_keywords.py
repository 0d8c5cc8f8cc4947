"""Arabic keyword texts for espeak-ng and the synthetic Arabic Speech Commands clips."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tfkws.data import arabic_keywords as ak
from tfkws.data.synth import keyword_examples
from tfkws.errors import DatasetError

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "synth_arabic.json"
ASC_GLOSSES = {
    *"backward cancel close digit direction disable down eight enable enter five forward four "
    "left move next nine no ok one open options previous receive record right rotate send seven "
    "six start stop three two undo up yes zero".split(),
    "zoom in",
    "zoom out",
}


def test_candidates_cover_every_gloss_with_and_without_marks():
    c = ak.candidates()
    assert set(c) == ASC_GLOSSES == set(ak.ASC_CANDIDATES)
    assert ak.undiacritised("خَمْسَة") == "خمسة"
    for gloss, texts in ak.ASC_CANDIDATES.items():
        assert len(set(c[gloss])) == len(c[gloss])  # no text twice
        for t in texts:
            assert t in c[gloss] and ak.undiacritised(t) in c[gloss]


def test_texts_are_the_candidates_the_benchmark_kept():
    kept = json.loads(RESULTS.read_text(encoding="utf-8"))["kept"]
    assert {g: list(v) for g, v in ak.ASC_TEXTS.items()} == kept
    c = ak.candidates()
    assert all(set(v) <= set(c[g]) for g, v in ak.ASC_TEXTS.items())


def test_synthesize_keywords_layout(tmp_path):
    texts = {"zoom in": ["تَكْبِير"], "five": ["خَمْسَة", "خمسة"]}
    out = ak.synthesize_keywords(tmp_path / "ar", 3, 4, texts=texts, noise_seconds=2)
    config = json.loads((out / "synth_config.json").read_text(encoding="utf-8"))
    assert config["voices"] == ["ar"] and config["texts"]["five"] == ["خَمْسَة", "خمسة"]
    for gloss in texts:
        files = sorted((out / gloss).glob("*.wav"))
        assert len(files) == 3
        x, sr = sf.read(files[0], dtype="int16")
        assert sr == 16000 and len(x) == 16000 and np.abs(x).max() > 1000
    examples = keyword_examples(out)
    assert [(Path(e.path).parent.name, e.label) for e in examples] == [
        (g, g) for g in sorted(texts) for _ in range(3)
    ]
    # every clip is a training clip: the real recordings are the validation
    assert (out / "validation_list.txt").read_text() == ""
    assert (out / "testing_list.txt").read_text() == ""


def test_keyword_examples_of_a_folder_that_is_no_synth_dataset(tmp_path):
    with pytest.raises(DatasetError, match="not a synthesised dataset") as err:
        keyword_examples(tmp_path)
    assert "\n" not in str(err.value)
