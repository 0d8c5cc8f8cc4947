"""The files of a run folder, by name, and what they say about the run.

One place for the names, so the trainer that writes a run and every stage that reads one agree.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RUN_CONFIG = "run_config.json"
BEST_WEIGHTS = "best_weights.h5"  # legacy HDF5 weights (by layer name); QAT graph in QAT runs
FLOAT_BEST_WEIGHTS = "float_best_weights.h5"  # QAT runs: best float weights QAT starts from
CHECKPOINTS = "checkpoints"
QAT_CHECKPOINTS = "checkpoints_qat"  # the QAT graph has other variables: its own checkpoints
HISTORY = "history.json"
QAT_START = "qat_start.json"  # QAT runs: val accuracy of the calibrated fake-quant start
RESULTS = "results.json"


def kept_ptq_start(run_dir: str | os.PathLike, run: Any) -> Path | None:
    """The float run a QAT run started from, if no QAT epoch beat the calibrated start.

    That start is calibrated on the clips PTQ calibrates on
    (``tfkws.quantization.calibration.ptq_clips``), so it *is* the float run's PTQ model; its
    own conversion matches it only up to float32 rounding of the ranges (a clip or two of
    2,400). Exporting the PTQ model keeps QAT's promise of never handing back less than its
    start. None for other runs, a supernet width (cut by ``tfkws slim``), or when the float run
    is no longer there. ``run`` is the run's ``RunConfig``.
    """
    if not run.train.qat or not run.train.qat_source or run.train.slim_width is not None:
        return None
    results = Path(run_dir) / RESULTS
    source = Path(run.train.qat_source)
    if not results.exists() or not (source / RUN_CONFIG).exists():
        return None
    if not json.loads(results.read_text()).get("qat_kept_start"):
        return None
    return source
