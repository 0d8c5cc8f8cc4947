"""A device vocabulary: a few of a dataset's words stay keywords, the rest become ``_unknown_``.

A board listens for a handful of commands, not every word a corpus was recorded for. Training
on the corpus's other words as ``_unknown_`` gives the model what synthetic or reversed speech
could not (README, "Where the false accepts come from"): real non-keyword speech from the
keyword speakers' microphones and language (kws_streaming's ``wanted_words`` does the same to
Speech Commands).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from tfkws.data.example import SILENCE_LABEL, UNKNOWN_LABEL, Example
from tfkws.data.kws_dataset import KwsDataset
from tfkws.errors import DatasetError


def keep_keywords(ds: KwsDataset, keywords: Sequence[str], strict: bool = True) -> KwsDataset:
    """``ds`` with only ``keywords`` as keyword classes: every other word's clips (labels not
    starting with ``_``) relabelled ``_unknown_`` in every split; labels sorted, the dataset's
    own ``_`` labels kept and ``_unknown_`` added (no ``_silence_``: without silence clips it
    would be a class nothing teaches; the benchmarks add generated silence). ``strict``: a
    keyword ``ds`` has no clips of is an error naming it (training needs them; a model's labels
    read on one split may not)."""
    wanted = list(dict.fromkeys(keywords))
    if not wanted:
        raise DatasetError(f"{ds.root}: the vocabulary is empty")
    words = {e.label for ex in ds.splits.values() for e in ex if not e.label.startswith("_")}
    missing = [k for k in wanted if k not in words]
    if missing and strict:
        raise DatasetError(
            f"{ds.root}: no clips of {', '.join(missing)} (its words: {', '.join(sorted(words))})"
        )
    keep = set(wanted)
    splits = {
        name: [
            e if e.label in keep or e.label.startswith("_") else Example(e.path, UNKNOWN_LABEL)
            for e in ex
        ]
        for name, ex in ds.splits.items()
    }
    specials = {lab for lab in ds.labels if lab.startswith("_")} | {UNKNOWN_LABEL}
    return dataclasses.replace(ds, labels=sorted(keep | specials), splits=splits)


def repeat_keywords(ds: KwsDataset, times: int) -> KwsDataset:
    """``ds`` with each training clip of a keyword (a label other than ``_silence_`` and
    ``_unknown_``) used ``times`` times, the repeats after the split's own clips. The pipeline
    augments every use afresh, so repeats are new views: the keywords weighed up against an
    ``_unknown_`` a vocabulary makes large (one word of Arabic Speech Commands: 180 clips against
    the other 39 words' 7,020)."""
    if times < 1:
        raise DatasetError(f"{ds.root}: keyword repeats must be >= 1, got {times}")
    if times == 1:
        return ds
    train = list(ds.splits.get("training", []))
    extra = [e for e in train if e.label not in (SILENCE_LABEL, UNKNOWN_LABEL)] * (times - 1)
    return dataclasses.replace(ds, splits={**ds.splits, "training": train + extra})
