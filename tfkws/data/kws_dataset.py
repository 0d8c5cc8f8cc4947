"""What a keyword-spotting dataset is once opened: class order, examples per split, noise files.

Its own module so the layout readers (``csv_list``, ``speech_commands``) build one without
importing ``dataset.open_dataset``, which picks between them.
"""

from __future__ import annotations

import collections
import dataclasses

from tfkws.data.example import Example
from tfkws.errors import DatasetError

SPLITS = ("training", "validation", "testing")
BACKGROUND_NOISE_DIR = "_background_noise_"
DEFAULT_KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
MODES = ("12class", "all")


@dataclasses.dataclass
class KwsDataset:
    """Examples of a dataset grouped by split; ``labels[i]`` is the name of class id ``i``."""

    root: str
    labels: list[str]
    splits: dict[str, list[Example]]
    noise_files: list[str] = dataclasses.field(default_factory=list)

    def split(self, name: str) -> list[Example]:
        """Examples of split ``name`` (``training``/``validation``/``testing``, or ``all``)."""
        if name == "all":
            examples = [e for s in SPLITS for e in self.splits.get(s, [])]
        elif name in SPLITS:
            examples = list(self.splits.get(name, []))
        else:
            raise DatasetError(
                f"{self.root}: unknown split {name!r}; choose one of {', '.join(SPLITS)} or all"
            )
        if not examples:
            have = ", ".join(s for s in SPLITS if self.splits.get(s)) or "none"
            raise DatasetError(f"{self.root}: split {name!r} is empty (non-empty splits: {have})")
        return examples

    def has_split(self, name: str) -> bool:
        """True when ``split(name)`` would return examples (``all``: any split has some)."""
        if name == "all":
            return any(self.splits.get(s) for s in SPLITS)
        return bool(self.splits.get(name))

    @property
    def label_index(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def class_counts(self, name: str = "all") -> dict[str, int]:
        """Number of examples per label (every label listed, in class order)."""
        counts = collections.Counter(e.label for e in self.split(name))
        return {label: counts.get(label, 0) for label in self.labels}

    def summary(self) -> str:
        """A short human-readable table: examples per split and per class."""
        lines = [
            f"dataset {self.root}: {len(self.labels)} classes, {len(self.noise_files)} noise files"
        ]
        for s in SPLITS:
            if self.splits.get(s):
                counts = self.class_counts(s)
                parts = ", ".join(f"{k}={v}" for k, v in counts.items())
                lines.append(f"  {s}: {len(self.splits[s])} examples ({parts})")
        return "\n".join(lines)
