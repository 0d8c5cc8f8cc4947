"""One labelled clip of a dataset, and the two special labels of the Speech Commands benchmark."""

from __future__ import annotations

import dataclasses

SILENCE_LABEL = "_silence_"
UNKNOWN_LABEL = "_unknown_"


@dataclasses.dataclass(frozen=True)
class Example:
    """A clip path and its label.

    ``path=None`` stands for a silence clip with no file behind it: the pipeline cuts it from
    background noise at low volume (zeros without noise), as the canonical Speech Commands
    benchmark does, so a dataset without recorded silence can still teach ``_silence_``.
    """

    path: str | None
    label: str

    @property
    def is_generated_silence(self) -> bool:
        return self.path is None
